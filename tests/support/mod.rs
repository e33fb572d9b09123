//! Helpers shared by the library's integration tests (the application's, in
//! `cli/tests/support`, include `hostile.rs` and `tls.rs` from here).
#![allow(dead_code)]

pub mod hostile;
pub mod invariants;
#[cfg(feature = "tls")]
pub mod tls;
