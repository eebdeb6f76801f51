//! Integration tests: terraform.
