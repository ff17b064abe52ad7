//! FIX session layer.
