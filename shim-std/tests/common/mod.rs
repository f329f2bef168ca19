//! Shared pieces of the shim's integration tests.

pub mod schema;
