//! `runner token`: prints an `ACTIONS_RUNTIME_TOKEN` for `runner serve`, signed with the same
//! secret, for a CI runner to hand to its jobs.

use std::path::PathBuf;

use anyhow::Context as _;

use runner::clock::{Clock, SystemClock};
use runner::server::{TokenRequest, mint_token, parse_duration_secs};

use super::EXIT_OK;
use super::printer::Printer;

/// Where the token secret comes from (shared by `serve` and `token`).
#[derive(Debug, Clone, clap::Args)]
pub struct SecretArgs {
    /// The HS256 secret tokens are signed with.
    #[arg(long, env = "RUNNER_SERVE_TOKEN_SECRET", hide_env_values = true)]
    pub token_secret: Option<String>,
    /// A file holding the secret (trailing newlines ignored).
    #[arg(long, value_name = "PATH", conflicts_with = "token_secret")]
    pub token_secret_file: Option<PathBuf>,
}

impl SecretArgs {
    /// The secret, if one was given; an empty one is refused.
    pub fn secret(&self) -> anyhow::Result<Option<Vec<u8>>> {
        let secret = match (&self.token_secret, &self.token_secret_file) {
            (Some(text), _) => text.clone(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .with_context(|| format!("reading --token-secret-file {}", path.display()))?,
            (None, None) => return Ok(None),
        };
        let secret = secret.trim_end_matches(['\n', '\r']);
        if secret.is_empty() {
            anyhow::bail!("the token secret is empty");
        }
        Ok(Some(secret.as_bytes().to_vec()))
    }
}

/// Arguments of `runner token`.
#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    /// The repository, `owner/name`.
    #[arg(long)]
    repo: String,
    /// GitHub's numeric repository id (default: derived from the name).
    #[arg(long)]
    repo_id: Option<String>,
    /// The ref the job runs on; its caches are saved there.
    #[arg(long = "ref", value_name = "REF")]
    git_ref: String,
    /// A pull request's base ref, read after the ref.
    #[arg(long, value_name = "REF")]
    base: Option<String>,
    /// The default branch ref, read last.
    #[arg(long, value_name = "REF")]
    default_branch: Option<String>,
    /// Restore only: no write permission anywhere.
    #[arg(long)]
    read_only: bool,
    /// How long the token is valid (`90s`, `30m`, `6h`, `2d`).
    #[arg(long, default_value = "6h", value_parser = parse_duration_secs)]
    ttl: i64,
    #[command(flatten)]
    secret: SecretArgs,
}

/// Prints the token.
pub fn run(args: TokenArgs, printer: &mut Printer) -> anyhow::Result<u8> {
    let Some(secret) = args.secret.secret()? else {
        anyhow::bail!("no token secret: set RUNNER_SERVE_TOKEN_SECRET or --token-secret-file");
    };
    if args.repo.trim().is_empty() || args.git_ref.trim().is_empty() {
        anyhow::bail!("--repo and --ref must not be empty");
    }
    let request = TokenRequest {
        repository: args.repo,
        repository_id: args.repo_id,
        git_ref: args.git_ref,
        base_ref: args.base,
        default_branch: args.default_branch,
        read_only: args.read_only,
        ttl_secs: args.ttl,
    };
    let now = SystemClock.now_millis().div_euclid(1000);
    printer.data(&mint_token(&secret, &request, now));
    Ok(EXIT_OK)
}
