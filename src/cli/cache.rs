//! `runner cache`: list, show, delete, clear, stats, prune, verify.

/// The `runner cache` verbs.
#[derive(Debug, clap::Subcommand)]
pub enum CacheCommand {
    /// List cache entries.
    List,
}

/// Runs the verb; returns the exit code.
pub fn run(_command: CacheCommand) -> anyhow::Result<u8> {
    anyhow::bail!("not implemented yet")
}
