//! `runner hash-files`.

/// Arguments of `runner hash-files`.
#[derive(Debug, clap::Args)]
pub struct HashFilesArgs {}

/// Runs the verb; returns the exit code.
pub fn run(_args: HashFilesArgs) -> anyhow::Result<u8> {
    anyhow::bail!("not implemented yet")
}
