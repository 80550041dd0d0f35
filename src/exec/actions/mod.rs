//! `uses:` actions that really run: where their files come from ([`sources`]), their
//! `action.yml` ([`manifest`]), composite steps and JavaScript actions run with the host's node
//! under the runner's contract. Knows nothing of how caches are stored: the embedded cache
//! server's URL and token arrive as plain environment from [`ActionsOptions::job_env`].

mod composite;
pub mod manifest;
mod node;
mod run;
pub mod sources;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use indexmap::IndexMap;

use super::action::JobInfo;

pub use manifest::{InputDef, Manifest, ManifestError, Runs};
pub use sources::{ActionRef, SourceError, Sources};

/// GitHub's limit on composite actions nested in composite actions.
pub const MAX_COMPOSITE_DEPTH: usize = 10;

/// How `uses:` steps without a built-in handler are found and run.
#[derive(Debug, Clone)]
pub struct ActionsOptions {
    /// Where `owner/repo@ref` actions come from and are cached.
    pub sources: Sources,
    /// The node executable (`--node`; a bare name is looked up in `PATH`).
    pub node: PathBuf,
    /// Skip (instead of failing) steps whose action cannot run here.
    pub skip_unsupported: bool,
    /// Run `actions/cache*` as the real JavaScript action instead of natively.
    pub cache_action_node: bool,
    /// Extra environment for the JavaScript actions of a job, asked once per job (the
    /// embedded cache server's `ACTIONS_CACHE_URL`, `ACTIONS_RESULTS_URL`, and an
    /// `ACTIONS_RUNTIME_TOKEN` scoped to the job's repository and ref).
    pub job_env: Option<JobEnv>,
}

/// A function from a job's facts to environment variables.
pub type JobEnvFn = dyn Fn(&JobInfo) -> IndexMap<String, String> + Send + Sync;

/// Makes the extra environment of a job's JavaScript actions from the job's facts.
#[derive(Clone)]
pub struct JobEnv(pub Arc<JobEnvFn>);

impl std::fmt::Debug for JobEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JobEnv(..)")
    }
}

/// Variables whose values are credentials: masked wherever they would be printed.
pub const SECRET_ENV: &[&str] = &["ACTIONS_RUNTIME_TOKEN"];

impl Default for ActionsOptions {
    fn default() -> Self {
        let cache_root = crate::store::default_cache_dir()
            .unwrap_or_else(std::env::temp_dir)
            .join("actions-v1");
        Self {
            sources: Sources {
                base_url: "https://github.com".to_string(),
                cache_root,
                offline: false,
            },
            node: PathBuf::from("node"),
            skip_unsupported: false,
            cache_action_node: false,
            job_env: None,
        }
    }
}

/// An action whose files are here and whose definition loaded.
#[derive(Debug)]
pub struct Resolved {
    /// The `uses:` value, parsed.
    pub action: ActionRef,
    /// The directory holding `action.yml` (`github.action_path`).
    pub dir: PathBuf,
    /// The definition.
    pub manifest: Manifest,
}

/// What a `uses:` value resolves to.
#[derive(Debug, Clone)]
pub enum Resolution {
    /// A runnable action.
    Action(Arc<Resolved>),
    /// Cannot run on this host (Docker, not fetchable): fails its step unless skipped.
    Unsupported(String),
    /// The action is broken (bad `action.yml`): the step fails.
    Broken(String),
}

impl Resolution {
    /// How `runner exec --list` describes it.
    pub fn describe(&self) -> String {
        match self {
            Resolution::Action(r) => match &r.manifest.runs {
                Runs::Docker { .. } => "not run: Docker actions are not supported".to_string(),
                Runs::Node { using, .. } => format!("node ({using})"),
                Runs::Composite { .. } => "composite".to_string(),
            },
            Resolution::Unsupported(reason) => format!("not run: {reason}"),
            Resolution::Broken(message) => format!("error: {message}"),
        }
    }
}

/// Resolves `uses:` values once per run, so a job's pre steps, main steps and `--list` agree and
/// a repository is fetched once.
#[derive(Debug, Default)]
pub struct Resolver {
    cache: Mutex<HashMap<String, Resolution>>,
}

impl Resolver {
    /// The action `uses` names, found (and fetched) as `options` says.
    pub fn resolve(
        &self,
        uses: &str,
        workspace: &std::path::Path,
        options: &ActionsOptions,
    ) -> Resolution {
        if let Ok(cache) = self.cache.lock()
            && let Some(hit) = cache.get(uses)
        {
            return hit.clone();
        }
        let resolution = resolve_uncached(uses, workspace, options);
        // A local action may change while the job runs; only remote ones are remembered.
        if !uses.starts_with("./")
            && let Ok(mut cache) = self.cache.lock()
        {
            cache.insert(uses.to_string(), resolution.clone());
        }
        resolution
    }
}

fn resolve_uncached(
    uses: &str,
    workspace: &std::path::Path,
    options: &ActionsOptions,
) -> Resolution {
    let Some(action) = ActionRef::parse(uses) else {
        return Resolution::Broken(format!("'{uses}' is not an action reference"));
    };
    if let ActionRef::Docker(_) = action {
        return Resolution::Unsupported("Docker actions are not supported".to_string());
    }
    let dir = match options.sources.locate(uses, &action, workspace) {
        Ok(dir) => dir,
        Err(e @ SourceError::NoLocalDir { .. }) => return Resolution::Broken(e.to_string()),
        Err(e) => return Resolution::Unsupported(error_chain(&e)),
    };
    match manifest::load(&dir) {
        Ok(manifest) => {
            if let Runs::Docker { .. } = manifest.runs {
                return Resolution::Unsupported("Docker actions are not supported".to_string());
            }
            Resolution::Action(Arc::new(Resolved {
                action,
                dir,
                manifest,
            }))
        }
        Err(e) => Resolution::Broken(error_chain(&e)),
    }
}

/// An error and its sources, each once.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}
