//! Integration tests: build.
