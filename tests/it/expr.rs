//! Integration tests: expr.
