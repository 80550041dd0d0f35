//! Integration tests: glob.
