//! `runner eval`.

/// Arguments of `runner eval`.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {}

/// Runs the verb; returns the exit code.
pub fn run(_args: EvalArgs) -> anyhow::Result<u8> {
    anyhow::bail!("not implemented yet")
}
