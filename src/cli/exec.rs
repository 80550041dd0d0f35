//! `runner exec`.

/// Arguments of `runner exec`.
#[derive(Debug, clap::Args)]
pub struct ExecArgs {}

/// Runs the verb; returns the exit code.
pub fn run(_args: ExecArgs) -> anyhow::Result<u8> {
    anyhow::bail!("not implemented yet")
}
