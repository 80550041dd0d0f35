//! `action.yml` / `action.yaml` → a typed [`Manifest`], loaded with the workflow's positioned
//! parser so every error reads `action.yml:LINE:COL: message` with the line shown.

use std::path::{Path, PathBuf};

use indexmap::IndexMap;

use crate::workflow::{
    Condition, Diagnostic, Fragment, FragmentNode, Step, StepKind, Text, WorkflowError,
};

const ROOT_KEYS: &[&str] = &["name", "description", "inputs", "outputs", "runs"];
const ROOT_IGNORED_SILENTLY: &[&str] = &["author", "branding"];
const INPUT_KEYS: &[&str] = &["description", "required", "default", "deprecationMessage"];
const OUTPUT_KEYS: &[&str] = &["description", "value"];
const RUNS_KEYS: &[&str] = &[
    "using",
    "main",
    "pre",
    "post",
    "pre-if",
    "post-if",
    "steps",
    "image",
    "entrypoint",
    "pre-entrypoint",
    "post-entrypoint",
    "args",
    "env",
];
/// The `runs.using` values of JavaScript actions, with the node major each asks for.
const NODE_RUNTIMES: &[(&str, u32)] = &[
    ("node12", 12),
    ("node16", 16),
    ("node20", 20),
    ("node24", 24),
];

/// One declared input.
#[derive(Debug, Clone)]
pub struct InputDef {
    /// `default:` (may hold expressions such as `${{ github.token }}`).
    pub default: Option<Text>,
    /// `required: true`.
    pub required: bool,
    /// `deprecationMessage:`, shown when the input is given.
    pub deprecation: Option<String>,
}

/// How the action runs.
// One per action; boxing the conditions would only make matching clumsier.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Runs {
    /// `using: node20` (or another node runtime).
    Node {
        /// `using:` as written.
        using: String,
        /// The node major version it asks for.
        major: u32,
        /// `main:` relative to the action directory.
        main: String,
        /// `pre:`
        pre: Option<String>,
        /// `post:`
        post: Option<String>,
        /// `pre-if:`
        pre_if: Option<Condition>,
        /// `post-if:`
        post_if: Option<Condition>,
    },
    /// `using: composite`.
    Composite {
        /// `steps:`
        steps: Vec<Step>,
    },
    /// `using: docker` (or a Dockerfile without action.yml): never run here.
    Docker {
        /// `image:`
        image: String,
    },
}

/// A loaded action definition.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The file (`.../action.yml`).
    pub path: PathBuf,
    /// Its text, for diagnostics at run time.
    pub source: String,
    /// `name:`
    pub name: Option<String>,
    /// `inputs:` by name as written.
    pub inputs: IndexMap<String, InputDef>,
    /// `outputs:` with their `value:` (composite actions map them from `steps.*.outputs`).
    pub outputs: IndexMap<String, Option<Text>>,
    /// `runs:`
    pub runs: Runs,
    /// Load warnings (ignored keys).
    pub warnings: Vec<Diagnostic>,
}

impl Manifest {
    /// What kind of action this is, as `runner exec --list` says it.
    pub fn kind(&self) -> &'static str {
        match self.runs {
            Runs::Node { .. } => "node",
            Runs::Composite { .. } => "composite",
            Runs::Docker { .. } => "docker",
        }
    }

    /// A diagnostic at `pos` in this file.
    pub fn diagnostic(&self, pos: crate::workflow::Pos, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(&self.path, &self.source, pos, message)
    }
}

/// Why an action definition could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The directory holds neither file.
    #[error("can't find 'action.yml', 'action.yaml' or 'Dockerfile' under '{}'", dir.display())]
    Missing {
        /// The action directory.
        dir: PathBuf,
    },
    /// The file could not be read.
    #[error("cannot read {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid action definition.
    #[error(transparent)]
    Invalid(#[from] WorkflowError),
}

/// Loads the action in `dir`.
pub fn load(dir: &Path) -> Result<Manifest, ManifestError> {
    for name in ["action.yml", "action.yaml"] {
        let path = dir.join(name);
        match std::fs::read_to_string(&path) {
            Ok(source) => return parse(&path, &source),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => return Err(ManifestError::Io { path, source }),
        }
    }
    if dir.join("Dockerfile").is_file() {
        return Ok(Manifest {
            path: dir.join("Dockerfile"),
            source: String::new(),
            name: None,
            inputs: IndexMap::new(),
            outputs: IndexMap::new(),
            runs: Runs::Docker {
                image: "Dockerfile".into(),
            },
            warnings: Vec::new(),
        });
    }
    Err(ManifestError::Missing {
        dir: dir.to_path_buf(),
    })
}

/// Parses action definition text; `path` names the file in diagnostics.
pub fn parse(path: &Path, source: &str) -> Result<Manifest, ManifestError> {
    let source = source.strip_prefix('\u{feff}').unwrap_or(source);
    let mut f = Fragment::new(path, source);
    let built = f.root().and_then(|root| build(&mut f, &root));
    let warnings = f.finish()?;
    match built {
        Some((name, inputs, outputs, runs)) => Ok(Manifest {
            path: path.to_path_buf(),
            source: source.to_string(),
            name,
            inputs,
            outputs,
            runs,
            warnings,
        }),
        // Every `None` recorded an error, so `finish` has already returned it.
        None => Err(ManifestError::Invalid(WorkflowError::Invalid {
            path: path.to_path_buf(),
            errors: vec![Diagnostic::new(
                path,
                source,
                crate::workflow::Pos::new(1, 1),
                "invalid action definition",
            )],
        })),
    }
}

type Built = (
    Option<String>,
    IndexMap<String, InputDef>,
    IndexMap<String, Option<Text>>,
    Runs,
);

fn build(f: &mut Fragment<'_>, root: &FragmentNode) -> Option<Built> {
    let mut known: Vec<&str> = ROOT_KEYS.to_vec();
    known.extend(ROOT_IGNORED_SILENTLY);
    let entries = f.mapping(root, "an action definition", &known, &[])?;
    let name = match entries.get("name") {
        Some((_, v)) => f.string(v, "'name'"),
        None => None,
    };
    let mut inputs = IndexMap::new();
    if let Some((_, node)) = entries.get("inputs")
        && let Some(items) = f.loose_mapping(node, "'inputs'")
    {
        for (input, (_, v)) in items {
            let Some(def) = f.mapping(v, &format!("input '{input}'"), INPUT_KEYS, &[]) else {
                continue;
            };
            let default = match def.get("default") {
                Some((_, d)) => f.text(d, "'default'"),
                None => None,
            };
            let required = match def.get("required") {
                Some((_, r)) => f
                    .string(r, "'required'")
                    .is_some_and(|r| r.eq_ignore_ascii_case("true")),
                None => false,
            };
            let deprecation = match def.get("deprecationMessage") {
                Some((_, d)) => f.string(d, "'deprecationMessage'"),
                None => None,
            };
            inputs.insert(
                input.to_string(),
                InputDef {
                    default,
                    required,
                    deprecation,
                },
            );
        }
    }
    let mut outputs = IndexMap::new();
    if let Some((_, node)) = entries.get("outputs")
        && let Some(items) = f.loose_mapping(node, "'outputs'")
    {
        for (output, (_, v)) in items {
            let Some(def) = f.mapping(v, &format!("output '{output}'"), OUTPUT_KEYS, &[]) else {
                continue;
            };
            let value = match def.get("value") {
                Some((_, t)) => f.text(t, "'value'"),
                None => None,
            };
            outputs.insert(output.to_string(), value);
        }
    }
    let Some((runs_key, runs_node)) = entries.get("runs").copied() else {
        f.error(root.pos(), "an action definition needs 'runs'");
        return None;
    };
    let _ = runs_key;
    let runs = runs(f, runs_node)?;
    Some((name, inputs, outputs, runs))
}

fn runs(f: &mut Fragment<'_>, node: &FragmentNode) -> Option<Runs> {
    let entries = f.mapping(node, "'runs'", RUNS_KEYS, &[])?;
    let Some((_, using_node)) = entries.get("using").copied() else {
        f.error(node.pos(), "'runs' needs 'using'");
        return None;
    };
    let using = f.string(using_node, "'using'")?;
    let lower = using.to_ascii_lowercase();
    let field = |f: &mut Fragment<'_>, key: &str| match entries.get(key) {
        Some((_, v)) => f.string(v, &format!("'{key}'")),
        None => None,
    };
    let cond = |f: &mut Fragment<'_>, key: &str| match entries.get(key) {
        Some((_, v)) => f.condition(v),
        None => None,
    };
    if let Some((_, major)) = NODE_RUNTIMES.iter().find(|(name, _)| *name == lower) {
        let Some(main) = field(f, "main") else {
            f.error(node.pos(), format!("a '{using}' action needs 'main'"));
            return None;
        };
        return Some(Runs::Node {
            using,
            major: *major,
            main,
            pre: field(f, "pre"),
            post: field(f, "post"),
            pre_if: cond(f, "pre-if"),
            post_if: cond(f, "post-if"),
        });
    }
    match lower.as_str() {
        "composite" => {
            let Some((_, steps_node)) = entries.get("steps").copied() else {
                f.error(node.pos(), "a composite action needs 'steps'");
                return None;
            };
            if !Fragment::is_seq(steps_node) {
                f.error(steps_node.pos(), "'steps' must be a list");
                return None;
            }
            let steps = f.steps(steps_node);
            for step in &steps {
                // GitHub requires an explicit shell in composite `run:` steps.
                if let StepKind::Run { shell: None, .. } = &step.kind {
                    f.error(
                        step.pos,
                        "'shell' is required for 'run' steps in a composite action",
                    );
                }
            }
            Some(Runs::Composite { steps })
        }
        "docker" => Some(Runs::Docker {
            image: field(f, "image").unwrap_or_default(),
        }),
        _ => {
            f.error(
                using_node.pos(),
                format!(
                    "unknown 'using: {using}' (expected node12, node16, node20, node24, composite or docker)"
                ),
            );
            None
        }
    }
}
