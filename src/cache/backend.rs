//! Which backend the cache steps use, and why: a cache server given on the command line or in
//! the environment, GitHub's own cache when `runner exec` runs inside a GitHub Actions job, else
//! the local store. The CLI reads the settings; this decides from their values.

use super::remote::{Protocol, RemoteConfig};

/// What the user asked for (`--cache-backend`, `RUNNER_CACHE_BACKEND`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendChoice {
    /// Pick the first available: a configured server, GitHub's job environment, the local store.
    #[default]
    Auto,
    /// The local store, whatever else is configured.
    Local,
    /// A cache server; an error if none is configured.
    Server,
}

/// The settings the choice is made from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackendSettings {
    /// The requested backend.
    pub choice: BackendChoice,
    /// `--cache-server` / `RUNNER_CACHE_SERVER`, and where it came from.
    pub server: Option<(String, &'static str)>,
    /// `--cache-token` / `RUNNER_CACHE_TOKEN`.
    pub token: Option<String>,
    /// `ACTIONS_RESULTS_URL` of the environment `runner exec` itself runs in.
    pub actions_results_url: Option<String>,
    /// `ACTIONS_CACHE_URL` of that environment.
    pub actions_cache_url: Option<String>,
    /// `ACTIONS_RUNTIME_TOKEN` of that environment.
    pub actions_runtime_token: Option<String>,
    /// Whether `ACTIONS_CACHE_SERVICE_V2` is set there.
    pub actions_cache_service_v2: bool,
}

/// The backend chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// The local store.
    Local,
    /// A cache server.
    Remote(RemoteConfig),
}

/// A choice that cannot be satisfied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// `--cache-backend server` without a server to talk to.
    #[error(
        "--cache-backend server needs a cache server: --cache-server URL (or RUNNER_CACHE_SERVER), or ACTIONS_RESULTS_URL / ACTIONS_CACHE_URL with ACTIONS_RUNTIME_TOKEN"
    )]
    NoServer,
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// Chooses the backend and says why (one line for the log).
pub fn select_backend(settings: &BackendSettings) -> Result<(Backend, String), BackendError> {
    if settings.choice == BackendChoice::Local {
        return Ok((Backend::Local, "local store (--cache-backend local)".into()));
    }
    if let Some((url, source)) = &settings.server {
        let config = RemoteConfig {
            url: url.clone(),
            token: settings.token.clone().unwrap_or_default(),
            protocol: Protocol::V2,
        };
        let why = format!("cache server {url} (v2, from {source})");
        return Ok((Backend::Remote(config), why));
    }
    if let Some(token) = non_empty(&settings.actions_runtime_token) {
        let results = non_empty(&settings.actions_results_url);
        let v1 = non_empty(&settings.actions_cache_url);
        // As @actions/cache decides: v2 when the service flag is set (or only the results
        // URL exists), else v1 at ACTIONS_CACHE_URL.
        let pick = match (results, v1) {
            (Some(url), _) if settings.actions_cache_service_v2 => Some((url, Protocol::V2)),
            (Some(url), None) => Some((url, Protocol::V2)),
            (_, Some(url)) => Some((url, Protocol::V1)),
            (None, None) => None,
        };
        if let Some((url, protocol)) = pick {
            let (name, var) = match protocol {
                Protocol::V2 => ("v2", "ACTIONS_RESULTS_URL"),
                Protocol::V1 => ("v1", "ACTIONS_CACHE_URL"),
            };
            let config = RemoteConfig {
                url: url.to_string(),
                token: token.to_string(),
                protocol,
            };
            let why = format!(
                "GitHub's cache service {url} ({name}, from {var} and ACTIONS_RUNTIME_TOKEN: running inside a GitHub Actions job)"
            );
            return Ok((Backend::Remote(config), why));
        }
    }
    if settings.choice == BackendChoice::Server {
        return Err(BackendError::NoServer);
    }
    Ok((
        Backend::Local,
        "local store (no cache server configured)".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_picks_flag_then_job_environment_then_local() {
        let github = BackendSettings {
            actions_results_url: Some("https://results/".into()),
            actions_cache_url: Some("https://v1/".into()),
            actions_runtime_token: Some("t".into()),
            ..BackendSettings::default()
        };
        let rows: Vec<(BackendSettings, Option<(&str, Protocol)>)> = vec![
            (BackendSettings::default(), None),
            (
                BackendSettings {
                    server: Some(("http://s:1/".into(), "--cache-server")),
                    ..github.clone()
                },
                Some(("http://s:1/", Protocol::V2)),
            ),
            (
                BackendSettings {
                    actions_cache_service_v2: true,
                    ..github.clone()
                },
                Some(("https://results/", Protocol::V2)),
            ),
            (github.clone(), Some(("https://v1/", Protocol::V1))),
            (
                BackendSettings {
                    actions_cache_url: None,
                    ..github.clone()
                },
                Some(("https://results/", Protocol::V2)),
            ),
            (
                BackendSettings {
                    actions_runtime_token: None,
                    ..github.clone()
                },
                None,
            ),
            (
                BackendSettings {
                    choice: BackendChoice::Local,
                    ..github.clone()
                },
                None,
            ),
        ];
        for (settings, want) in rows {
            let (backend, why) = select_backend(&settings).expect("select");
            let got = match &backend {
                Backend::Local => None,
                Backend::Remote(c) => Some((c.url.as_str(), c.protocol)),
            };
            assert_eq!(got, want, "{settings:?} ({why})");
        }
        let server_only = BackendSettings {
            choice: BackendChoice::Server,
            ..BackendSettings::default()
        };
        assert_eq!(select_backend(&server_only), Err(BackendError::NoServer));
    }
}
