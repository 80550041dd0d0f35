//! Integration tests: exec.
