//! Unit tests of order entry.
