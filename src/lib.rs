//! `runner`: runs GitHub Actions workflow steps on this host and implements `actions/cache`
//! natively over a database-indexed, content-addressed store.
//!
//! The module map and data flow are described in `DESIGN.md` of the shared folder; each module's
//! doc comment says what it owns.

pub mod archive;
pub mod cache;
pub mod cancel;
pub mod clock;
pub mod error;
pub mod exec;
pub mod expr;
pub mod glob;
#[cfg(feature = "server")]
pub mod server;
pub mod store;
pub mod workflow;
