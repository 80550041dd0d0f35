//! The one integration test binary; a module per area.

mod actions;
mod archive;
mod cache;
mod cli;
mod exec;
mod expr;
mod glob;
#[cfg(feature = "server")]
mod server;
mod restore;
mod store;
mod support;
mod workflow;
