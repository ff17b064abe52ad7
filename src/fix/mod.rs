//! FIX wire format.
