//! `runner token`: prints an `ACTIONS_RUNTIME_TOKEN` for `runner serve`, signed with the same
//! secret, for a CI runner to hand to its jobs; with `--admin`, a token for the REST caches API
//! and the UI.

use std::path::PathBuf;

use runner::clock::{Clock, SystemClock};
use runner::server::{
    AdminTokenRequest, Keys, RepoMatch, TokenRequest, mint_token, parse_duration_secs,
};

use super::EXIT_OK;

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
            (None, Some(path)) => std::fs::read_to_string(path).map_err(|err| {
                anyhow::anyhow!("reading --token-secret-file {}: {err}", path.display())
            })?,
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
    /// The repository, `owner/name` (with `--admin`, also `*`: every repository).
    #[arg(long)]
    repo: String,
    /// An admin token for the REST caches API and the UI instead of a job's runtime token.
    #[arg(long, conflicts_with_all = ["git_ref", "base", "default_branch", "read_only", "repo_id"])]
    admin: bool,
    /// With `--admin`: may delete caches (without it the token lists and reads usage only).
    #[arg(long)]
    write: bool,
    /// With `--admin`: who holds the token, written to the audit log with each deletion
    /// (default `admin`).
    #[arg(long, value_name = "WHO")]
    name: Option<String>,
    /// GitHub's numeric repository id (default: derived from the name).
    #[arg(long)]
    repo_id: Option<String>,
    /// The ref the job runs on; its caches are saved there.
    #[arg(long = "ref", value_name = "REF", required_unless_present = "admin")]
    git_ref: Option<String>,
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
pub fn run(args: TokenArgs) -> anyhow::Result<u8> {
    let Some(secret) = args.secret.secret()? else {
        anyhow::bail!("no token secret: set RUNNER_SERVE_TOKEN_SECRET or --token-secret-file");
    };
    let now = SystemClock.now_millis().div_euclid(1000);
    // clap's `requires` counts a flag's default as present, so this is checked here.
    if !args.admin && (args.write || args.name.is_some()) {
        anyhow::bail!("--write and --name are for admin tokens: add --admin");
    }
    if args.admin {
        let repos = RepoMatch::parse(&args.repo)
            .map_err(|_| anyhow::anyhow!("--repo {:?}: expected owner/name or '*'", args.repo))?;
        let request = AdminTokenRequest {
            repos,
            write: args.write,
            subject: args.name.unwrap_or_else(|| "admin".to_string()),
            ttl_secs: args.ttl,
        };
        println!("{}", Keys::new(&secret).mint_admin(&request, now));
        return Ok(EXIT_OK);
    }
    let git_ref = args.git_ref.unwrap_or_default();
    if args.repo.trim().is_empty() || git_ref.trim().is_empty() {
        anyhow::bail!("--repo and --ref must not be empty");
    }
    let request = TokenRequest {
        repository: args.repo,
        repository_id: args.repo_id,
        git_ref,
        base_ref: args.base,
        default_branch: args.default_branch,
        read_only: args.read_only,
        ttl_secs: args.ttl,
    };
    println!("{}", mint_token(&secret, &request, now));
    Ok(EXIT_OK)
}
