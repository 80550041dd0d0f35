//! The one integration test binary; a module per area.

mod actions;
mod archive;
mod cache;
mod cli;
mod embed;
mod exec;
mod expr;
mod glob;
mod restore;
#[cfg(feature = "server")]
mod server;
mod store;
mod support;
mod workflow;
