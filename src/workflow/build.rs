//! Marked YAML tree → typed [`Workflow`], with validation. Collects every error it finds (sorted by
//! position) instead of stopping at the first, so one run shows all problems.

use std::collections::HashMap;
use std::path::Path;

use indexmap::IndexMap;

use crate::expr;

use super::contexts::{self, Scope};
use super::error::{Diagnostic, WorkflowError};
use super::model::{
    Condition, Env, Inputs, Job, Located, OrExpr, Pos, RunDefaults, RunsOn, ScalarKind, Spanned,
    Step, StepKind, Strategy, Text, Tree, TreeKind, Workflow,
};
use super::order;
use super::yaml::{self, Node, NodeKind, Scalar, Style};

mod permissions;
mod triggers;

const ROOT_KEYS: &[&str] = &["name", "run-name", "on", "env", "defaults", "jobs"];
const ROOT_IGNORED: &[&str] = &["permissions", "concurrency"];
const JOB_KEYS: &[&str] = &[
    "name",
    "needs",
    "if",
    "runs-on",
    "env",
    "defaults",
    "strategy",
    "outputs",
    "timeout-minutes",
    "continue-on-error",
    "steps",
];
const JOB_IGNORED: &[&str] = &[
    "permissions",
    "concurrency",
    "container",
    "services",
    "environment",
    "cancel-timeout-minutes",
    "snapshot",
];
const USES_JOB_KEYS: &[&str] = &["name", "needs", "if", "uses", "strategy"];
const USES_JOB_IGNORED: &[&str] = &["with", "secrets", "permissions", "concurrency"];
const STEP_KEYS: &[&str] = &[
    "id",
    "name",
    "if",
    "uses",
    "with",
    "run",
    "shell",
    "env",
    "working-directory",
    "continue-on-error",
    "timeout-minutes",
];
const DEFAULTS_KEYS: &[&str] = &["run"];
const DEFAULTS_RUN_KEYS: &[&str] = &["shell", "working-directory"];
const STRATEGY_KEYS: &[&str] = &["matrix", "fail-fast", "max-parallel"];
const RUNS_ON_KEYS: &[&str] = &["group", "labels"];
/// What GitHub requires of job and step ids.
const ID_RULE: &str =
    "ids must start with a letter or '_' and contain only letters, digits, '-' and '_'";
/// Shells GitHub knows that need Windows.
const WINDOWS_SHELLS: &[&str] = &["cmd", "powershell"];

pub(crate) fn build(path: &Path, source: &str) -> Result<Workflow, WorkflowError> {
    let mut cx = Cx {
        path,
        source,
        errors: Vec::new(),
        warnings: Vec::new(),
        scope: Scope::Workflow,
    };
    let root = match yaml::parse(source) {
        Ok(doc) => {
            for pos in doc.merge_keys {
                // GitHub reads YAML 1.2, where `<<` is an ordinary (and there unknown) key.
                cx.error(
                    pos,
                    "Unexpected value '<<' (YAML merge keys are not supported by GitHub)",
                );
            }
            if doc.root.is_none() {
                cx.error(
                    Pos::new(1, 1),
                    "the workflow file is empty (it needs 'on' and 'jobs')",
                );
            }
            doc.root
        }
        Err(e) => {
            cx.error(e.pos, e.message);
            None
        }
    };
    let workflow = root.and_then(|root| cx.workflow(&root));
    if !cx.errors.is_empty() {
        let mut errors = cx.errors;
        errors.sort_by_key(|e| (e.line, e.column));
        return Err(WorkflowError::Invalid {
            path: path.to_path_buf(),
            errors,
        });
    }
    match workflow {
        Some(mut w) => {
            cx.warnings.sort_by_key(|e| (e.line, e.column));
            w.warnings = cx.warnings;
            Ok(w)
        }
        None => Err(WorkflowError::Invalid {
            path: path.to_path_buf(),
            errors: vec![Diagnostic::new(
                path,
                source,
                Pos::new(1, 1),
                "invalid workflow",
            )],
        }),
    }
}

/// A mapping's entries by key, after key validation.
type Entries<'n> = IndexMap<&'n str, (&'n Node, &'n Node)>;

struct Cx<'a> {
    path: &'a Path,
    source: &'a str,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
    /// Where expressions being parsed now are written (decides which contexts they may use).
    scope: Scope,
}

impl Cx<'_> {
    fn error(&mut self, pos: Pos, message: impl Into<String>) {
        self.errors
            .push(Diagnostic::new(self.path, self.source, pos, message));
    }

    fn warn(&mut self, pos: Pos, message: impl Into<String>) {
        self.warnings
            .push(Diagnostic::new(self.path, self.source, pos, message));
    }

    /// Runs `f` with expressions checked against `scope`.
    fn scoped<T>(&mut self, scope: Scope, f: impl FnOnce(&mut Self) -> T) -> T {
        let outer = std::mem::replace(&mut self.scope, scope);
        let out = f(self);
        self.scope = outer;
        out
    }

    // ----- generic shapes ------------------------------------------------------------------

    /// The entries of a mapping with string keys; reports duplicates, unknown keys (with a
    /// suggestion) and keys we accept but cannot honour.
    fn mapping<'n>(
        &mut self,
        node: &'n Node,
        what: &str,
        known: &[&str],
        ignored: &[&str],
    ) -> Option<Entries<'n>> {
        let entries = self.loose_mapping(node, what)?;
        let mut out = IndexMap::new();
        for (key, (k, v)) in entries {
            if known.contains(&key) {
                out.insert(key, (k, v));
            } else if ignored.contains(&key) {
                self.warn(
                    k.pos(),
                    format!("'{key}' is not supported when running locally and is ignored"),
                );
            } else {
                let candidates = known.iter().chain(ignored).copied();
                let hint = did_you_mean(key, candidates)
                    .map(|s| format!(" (did you mean '{s}'?)"))
                    .unwrap_or_default();
                self.error(k.pos(), format!("unknown key '{key}' in {what}{hint}"));
            }
        }
        Some(out)
    }

    /// The entries of a mapping with arbitrary (non-empty string) keys.
    fn loose_mapping<'n>(&mut self, node: &'n Node, what: &str) -> Option<Entries<'n>> {
        let NodeKind::Map(pairs) = &node.kind else {
            self.error(
                node.pos(),
                format!("{what} must be a mapping, found {}", describe(node)),
            );
            return None;
        };
        let mut out: Entries<'n> = IndexMap::new();
        for (k, v) in pairs {
            let NodeKind::Scalar(s) = &k.kind else {
                self.error(k.pos(), format!("keys in {what} must be strings"));
                continue;
            };
            if s.value.is_empty() {
                self.error(k.pos(), format!("keys in {what} must not be empty"));
                continue;
            }
            if let Some((first, _)) = out.get(s.value.as_str()) {
                let line = first.pos().line;
                self.error(
                    k.pos(),
                    format!("'{}' is already defined on line {line}", s.value),
                );
                continue;
            }
            out.insert(s.value.as_str(), (k, v));
        }
        Some(out)
    }

    fn scalar<'n>(&mut self, node: &'n Node, what: &str, expected: &str) -> Option<&'n Scalar> {
        match &node.kind {
            NodeKind::Scalar(s) => Some(s),
            _ => {
                self.error(
                    node.pos(),
                    format!("{what} must be {expected}, found {}", describe(node)),
                );
                None
            }
        }
    }

    /// A string that may contain expressions. Numbers and booleans keep their source text; null
    /// is the empty string.
    fn text(&mut self, node: &Node, what: &str) -> Option<Text> {
        self.parsed(
            node,
            what,
            true,
            expr::parse_template,
            contexts::check_template,
        )
    }

    /// Parses a scalar with `parse`, checks the contexts it uses with `check`, and reports
    /// either failure at its exact position inside the scalar.
    fn parsed<T>(
        &mut self,
        node: &Node,
        what: &str,
        null_is_empty: bool,
        parse: impl FnOnce(&str) -> Result<T, expr::ParseError>,
        check: impl FnOnce(&T, Scope) -> Option<(usize, String)>,
    ) -> Option<Located<T>> {
        let s = self.scalar(node, what, "a string")?;
        let raw = if null_is_empty && is_null(s) {
            String::new()
        } else {
            s.value.clone()
        };
        let pos = s.map.pos_at(&s.value, 0);
        match parse(&raw) {
            Ok(value) => {
                if let Some((offset, message)) = check(&value, self.scope) {
                    self.error(s.map.pos_at(&s.value, offset), message);
                    return None;
                }
                Some(Located {
                    value,
                    raw,
                    pos,
                    map: s.map.clone(),
                })
            }
            Err(e) => {
                let at = s.map.pos_at(&s.value, e.offset);
                self.error(at, e.message);
                None
            }
        }
    }

    /// A string in which GitHub allows no expressions (`uses`, `id`, step `shell`).
    fn plain(&mut self, node: &Node, what: &str) -> Option<Spanned<String>> {
        let s = self.scalar(node, what, "a string")?;
        let pos = s.map.pos_at(&s.value, 0);
        if let Some(off) = find_expression(&s.value) {
            self.error(
                s.map.pos_at(&s.value, off),
                format!("expressions are not allowed in {what}"),
            );
            return None;
        }
        if s.value.trim().is_empty() || is_null(s) {
            self.error(pos, format!("{what} must not be empty"));
            return None;
        }
        Some(Spanned::new(s.value.clone(), pos))
    }

    fn condition(&mut self, node: &Node) -> Option<Condition> {
        self.parsed(
            node,
            "'if'",
            false,
            expr::parse_condition,
            contexts::check_expr,
        )
    }

    fn or_expr_number(&mut self, node: &Node, what: &str) -> Option<OrExpr<f64>> {
        self.or_expr(node, what, ["a number", "a number"], |k| match k {
            ScalarKind::Number(n) => Some(n),
            _ => None,
        })
    }

    fn or_expr_bool(&mut self, node: &Node, what: &str) -> Option<OrExpr<bool>> {
        self.or_expr(node, what, ["a boolean", "true or false"], |k| match k {
            ScalarKind::Bool(b) => Some(b),
            _ => None,
        })
    }

    /// A scalar that is either an expression or a plain value `pick` accepts. `expected` names
    /// what the field must be when it is not a scalar, and when its value is wrong.
    fn or_expr<T>(
        &mut self,
        node: &Node,
        what: &str,
        [kind, expected]: [&str; 2],
        pick: impl Fn(ScalarKind) -> Option<T>,
    ) -> Option<OrExpr<T>> {
        let s = self.scalar(node, what, kind)?;
        if find_expression(&s.value).is_some() {
            return self.text(node, what).map(OrExpr::Expr);
        }
        let pos = s.map.pos_at(&s.value, 0);
        match pick(resolve(s)) {
            Some(value) => Some(OrExpr::Value {
                value,
                raw: s.value.clone(),
                pos,
            }),
            None => {
                self.error(
                    pos,
                    format!("{what} must be {expected}, found '{}'", s.value),
                );
                None
            }
        }
    }

    fn env(&mut self, node: &Node, what: &str) -> Env {
        let mut env = Env::new();
        let Some(entries) = self.loose_mapping(node, what) else {
            return env;
        };
        for (key, (_, v)) in entries {
            if let Some(t) = self.text(v, &format!("the value of '{key}'")) {
                env.insert(key.to_string(), t);
            }
        }
        env
    }

    fn tree(&mut self, node: &Node) -> Option<Tree> {
        let pos = node.pos();
        let kind = match &node.kind {
            NodeKind::Scalar(s) => {
                let kind = resolve(s);
                let text = self.text(node, "a value")?;
                TreeKind::Scalar(text, kind)
            }
            NodeKind::Seq(items) => {
                TreeKind::Seq(items.iter().filter_map(|i| self.tree(i)).collect())
            }
            NodeKind::Map(_) => {
                let entries = self.loose_mapping(node, "a mapping")?;
                let mut out = Vec::new();
                for (key, (k, v)) in entries {
                    if let Some(t) = self.tree(v) {
                        out.push((Spanned::new(key.to_string(), k.pos()), t));
                    }
                }
                TreeKind::Map(out)
            }
        };
        Some(Tree { pos, kind })
    }

    // ----- the workflow ----------------------------------------------------------------------

    fn workflow(&mut self, root: &Node) -> Option<Workflow> {
        let NodeKind::Map(_) = &root.kind else {
            self.error(
                root.pos(),
                format!("a workflow must be a mapping, found {}", describe(root)),
            );
            return None;
        };
        let entries = self.mapping(root, "the workflow", ROOT_KEYS, ROOT_IGNORED)?;
        let mut wf = Workflow {
            path: self.path.to_path_buf(),
            source: self.source.to_string(),
            name: None,
            run_name: None,
            on: None,
            events: Vec::new(),
            inputs: Inputs::default(),
            env: Env::new(),
            defaults: RunDefaults::default(),
            jobs: IndexMap::new(),
            warnings: Vec::new(),
        };
        for (key, (_, v)) in &entries {
            match *key {
                "name" => wf.name = self.plain_or_empty(v, "'name'"),
                "run-name" => wf.run_name = self.text(v, "'run-name'"),
                "on" => {
                    wf.events = self.events(v);
                    wf.inputs = self.triggers(v);
                    wf.on = self.scoped(Scope::Unchecked, |cx| cx.tree(v));
                }
                "env" => wf.env = self.env(v, "'env'"),
                "defaults" => wf.defaults = self.defaults(v),
                _ => {}
            }
        }
        if let Some(p) = map_value(root, "permissions") {
            self.permissions(p);
        }
        if !entries.contains_key("on") {
            // GitHub refuses such a file ("Required property is missing: on").
            self.error(root.pos(), "the workflow is missing 'on'");
        }
        match entries.get("jobs") {
            None => self.error(root.pos(), "the workflow is missing 'jobs'"),
            Some((_, jobs)) => wf.jobs = self.jobs(jobs),
        }
        self.check_needs(&wf);
        Some(wf)
    }

    fn plain_or_empty(&mut self, node: &Node, what: &str) -> Option<Spanned<String>> {
        let s = self.scalar(node, what, "a string")?;
        Some(Spanned::new(s.value.clone(), s.map.pos_at(&s.value, 0)))
    }

    fn events(&mut self, node: &Node) -> Vec<Spanned<String>> {
        let mut out = Vec::new();
        match &node.kind {
            NodeKind::Scalar(s) => {
                if !is_null(s) {
                    out.push(Spanned::new(s.value.clone(), node.pos()));
                }
            }
            NodeKind::Seq(items) => {
                for item in items {
                    if let Some(s) = self.plain(item, "an event name") {
                        out.push(s);
                    }
                }
            }
            NodeKind::Map(pairs) => {
                for (k, _) in pairs {
                    if let NodeKind::Scalar(s) = &k.kind {
                        out.push(Spanned::new(s.value.clone(), k.pos()));
                    }
                }
            }
        }
        out
    }

    fn defaults(&mut self, node: &Node) -> RunDefaults {
        let mut out = RunDefaults::default();
        let Some(entries) = self.mapping(node, "'defaults'", DEFAULTS_KEYS, &[]) else {
            return out;
        };
        let Some((_, run)) = entries.get("run") else {
            return out;
        };
        let Some(run) = self.mapping(run, "'defaults.run'", DEFAULTS_RUN_KEYS, &[]) else {
            return out;
        };
        if let Some((_, v)) = run.get("shell") {
            out.shell = self.text(v, "'shell'");
            if let Some(shell) = &out.shell {
                self.check_shell(shell);
            }
        }
        if let Some((_, v)) = run.get("working-directory") {
            out.working_directory = self.text(v, "'working-directory'");
        }
        out
    }

    fn check_shell(&mut self, shell: &Text) {
        let name = shell.raw.split_whitespace().next().unwrap_or("");
        if WINDOWS_SHELLS.contains(&name) {
            self.warn(
                shell.pos,
                format!("shell '{name}' is only available on Windows runners"),
            );
        }
    }

    fn jobs(&mut self, node: &Node) -> IndexMap<String, Job> {
        let mut jobs = IndexMap::new();
        let Some(entries) = self.loose_mapping(node, "'jobs'") else {
            return jobs;
        };
        if entries.is_empty() {
            self.error(node.pos(), "'jobs' must define at least one job");
        }
        for (id, (k, v)) in entries {
            if let Some(problem) = id_problem(id) {
                self.error(k.pos(), format!("invalid job id '{id}': {problem}"));
            }
            if let Some(job) = self.job(Spanned::new(id.to_string(), k.pos()), v) {
                jobs.insert(id.to_string(), job);
            }
        }
        jobs
    }

    fn job(&mut self, id: Spanned<String>, node: &Node) -> Option<Job> {
        self.scoped(Scope::Job, |cx| cx.job_in_scope(id, node))
    }

    fn job_in_scope(&mut self, id: Spanned<String>, node: &Node) -> Option<Job> {
        let is_call = matches!(&node.kind, NodeKind::Map(pairs)
            if pairs.iter().any(|(k, _)| matches!(&k.kind, NodeKind::Scalar(s) if s.value == "uses")));
        let what = format!("job '{}'", id.value);
        let entries = if is_call {
            self.mapping(node, &what, USES_JOB_KEYS, USES_JOB_IGNORED)?
        } else {
            self.mapping(node, &what, JOB_KEYS, JOB_IGNORED)?
        };
        if let Some(p) = map_value(node, "permissions") {
            self.permissions(p);
        }
        let mut job = Job {
            pos: id.pos,
            id,
            name: None,
            runs_on: None,
            needs: Vec::new(),
            if_: None,
            env: Env::new(),
            defaults: RunDefaults::default(),
            strategy: None,
            outputs: IndexMap::new(),
            timeout_minutes: None,
            continue_on_error: None,
            steps: Vec::new(),
            uses: None,
        };
        for (key, (_, v)) in &entries {
            match *key {
                "name" => job.name = self.text(v, "'name'"),
                "needs" => job.needs = self.needs(v),
                "if" => job.if_ = self.scoped(Scope::JobIf, |cx| cx.condition(v)),
                "runs-on" => job.runs_on = self.runs_on(v),
                "env" => job.env = self.env(v, "'env'"),
                "defaults" => job.defaults = self.scoped(Scope::JobOutputs, |cx| cx.defaults(v)),
                "strategy" => job.strategy = self.scoped(Scope::Strategy, |cx| cx.strategy(v)),
                "outputs" => {
                    job.outputs = self.scoped(Scope::JobOutputs, |cx| cx.env(v, "'outputs'"));
                }
                "timeout-minutes" => {
                    job.timeout_minutes = self.or_expr_number(v, "'timeout-minutes'");
                }
                "continue-on-error" => {
                    job.continue_on_error = self.or_expr_bool(v, "'continue-on-error'");
                }
                "steps" => job.steps = self.steps(v),
                "uses" => {
                    job.uses = self.plain(v, "'uses'");
                    self.warn(
                        v.pos(),
                        format!(
                            "job '{}' calls a reusable workflow, which is not supported locally; it will be skipped",
                            job.id.value
                        ),
                    );
                }
                _ => {}
            }
        }
        if !is_call {
            if !entries.contains_key("runs-on") {
                self.error(job.pos, format!("{what} is missing 'runs-on'"));
            }
            if !entries.contains_key("steps") {
                self.error(job.pos, format!("{what} is missing 'steps'"));
            }
        }
        Some(job)
    }

    fn needs(&mut self, node: &Node) -> Vec<Spanned<String>> {
        match &node.kind {
            NodeKind::Seq(items) => items
                .iter()
                .filter_map(|i| self.plain(i, "'needs'"))
                .collect(),
            _ => self.plain(node, "'needs'").into_iter().collect(),
        }
    }

    fn runs_on(&mut self, node: &Node) -> Option<RunsOn> {
        let pos = node.pos();
        match &node.kind {
            NodeKind::Scalar(_) => Some(RunsOn {
                labels: vec![self.text(node, "'runs-on'")?],
                group: None,
                pos,
            }),
            NodeKind::Seq(items) => Some(RunsOn {
                labels: items
                    .iter()
                    .filter_map(|i| self.text(i, "a 'runs-on' label"))
                    .collect(),
                group: None,
                pos,
            }),
            NodeKind::Map(_) => {
                let entries = self.mapping(node, "'runs-on'", RUNS_ON_KEYS, &[])?;
                let group = match entries.get("group") {
                    Some((_, g)) => self.text(g, "'group'"),
                    None => None,
                };
                let labels = match entries.get("labels") {
                    Some((_, l)) => match &l.kind {
                        NodeKind::Seq(items) => items
                            .iter()
                            .filter_map(|i| self.text(i, "a 'runs-on' label"))
                            .collect(),
                        _ => self.text(l, "'labels'").into_iter().collect(),
                    },
                    None => Vec::new(),
                };
                Some(RunsOn { labels, group, pos })
            }
        }
    }

    fn strategy(&mut self, node: &Node) -> Option<Strategy> {
        let entries = self.mapping(node, "'strategy'", STRATEGY_KEYS, &[])?;
        let mut out = Strategy {
            matrix: None,
            fail_fast: None,
            max_parallel: None,
            pos: node.pos(),
        };
        if let Some((_, v)) = entries.get("matrix") {
            out.matrix = self.matrix(v);
        }
        if let Some((_, v)) = entries.get("fail-fast") {
            out.fail_fast = self.or_expr_bool(v, "'fail-fast'");
        }
        if let Some((_, v)) = entries.get("max-parallel") {
            out.max_parallel = self.or_expr_number(v, "'max-parallel'");
        }
        Some(out)
    }

    fn matrix(&mut self, node: &Node) -> Option<Tree> {
        match &node.kind {
            NodeKind::Scalar(s) if find_expression(&s.value).is_some() => self.tree(node),
            NodeKind::Map(pairs) => {
                for (k, v) in pairs {
                    let NodeKind::Scalar(key) = &k.kind else {
                        continue;
                    };
                    let is_expr = matches!(&v.kind, NodeKind::Scalar(s) if find_expression(&s.value).is_some());
                    match (key.value.as_str(), &v.kind) {
                        (_, _) if is_expr => {}
                        ("include" | "exclude", NodeKind::Seq(items)) => {
                            for item in items {
                                let item_expr = matches!(&item.kind,
                                    NodeKind::Scalar(s) if find_expression(&s.value).is_some());
                                if !item_expr && !matches!(item.kind, NodeKind::Map(_)) {
                                    self.error(
                                        item.pos(),
                                        format!(
                                            "items of matrix '{}' must be mappings, found {}",
                                            key.value,
                                            describe(item)
                                        ),
                                    );
                                }
                            }
                        }
                        ("include" | "exclude", _) => self.error(
                            v.pos(),
                            format!(
                                "matrix '{}' must be a list of mappings, found {}",
                                key.value,
                                describe(v)
                            ),
                        ),
                        (_, NodeKind::Seq(_)) => {}
                        (name, _) => self.error(
                            v.pos(),
                            format!("matrix '{name}' must be a list, found {}", describe(v)),
                        ),
                    }
                }
                self.tree(node)
            }
            _ => {
                self.error(
                    node.pos(),
                    format!(
                        "'matrix' must be a mapping or an expression, found {}",
                        describe(node)
                    ),
                );
                None
            }
        }
    }

    fn steps(&mut self, node: &Node) -> Vec<Step> {
        let NodeKind::Seq(items) = &node.kind else {
            self.error(
                node.pos(),
                format!("'steps' must be a list, found {}", describe(node)),
            );
            return Vec::new();
        };
        let mut steps: Vec<Step> = Vec::new();
        let mut ids: HashMap<String, Pos> = HashMap::new();
        for (index, item) in items.iter().enumerate() {
            let Some(step) = self.step(index, item) else {
                continue;
            };
            if let Some(id) = &step.id {
                if let Some(first) = ids.get(&id.value) {
                    self.error(
                        id.pos,
                        format!(
                            "duplicate step id '{}' (first used on line {})",
                            id.value, first.line
                        ),
                    );
                } else {
                    ids.insert(id.value.clone(), id.pos);
                }
            }
            steps.push(step);
        }
        steps
    }

    fn step(&mut self, index: usize, node: &Node) -> Option<Step> {
        self.scoped(Scope::Step, |cx| cx.step_in_scope(index, node))
    }

    fn step_in_scope(&mut self, index: usize, node: &Node) -> Option<Step> {
        let entries = self.mapping(node, "a step", STEP_KEYS, &[])?;
        let pos = node.pos();
        let run = entries.get("run").copied();
        let uses = entries.get("uses").copied();
        let mut ok = true;
        match (run, uses) {
            (Some((rk, _)), Some((uk, _))) => {
                let second = if rk.pos() > uk.pos() { rk } else { uk };
                self.error(second.pos(), "a step cannot have both 'run' and 'uses'");
                ok = false;
            }
            (None, None) => {
                self.error(pos, "a step needs either 'run' or 'uses'");
                ok = false;
            }
            (Some(_), None) => {
                if let Some((k, _)) = entries.get("with") {
                    self.error(k.pos(), "'with' is only valid in a step with 'uses'");
                    ok = false;
                }
            }
            (None, Some(_)) => {
                for key in ["shell", "working-directory"] {
                    if let Some((k, _)) = entries.get(key) {
                        self.error(
                            k.pos(),
                            format!("'{key}' is only valid in a step with 'run'"),
                        );
                        ok = false;
                    }
                }
            }
        }
        let id = match entries.get("id") {
            Some((_, v)) => {
                let id = self.plain(v, "'id'");
                if let Some(id) = &id
                    && let Some(problem) = id_problem(&id.value)
                {
                    self.error(id.pos, format!("invalid step id '{}': {problem}", id.value));
                }
                id
            }
            None => None,
        };
        let name = match entries.get("name") {
            Some((_, v)) => self.text(v, "'name'"),
            None => None,
        };
        let if_ = match entries.get("if") {
            Some((_, v)) => self.scoped(Scope::StepIf, |cx| cx.condition(v)),
            None => None,
        };
        let env = match entries.get("env") {
            Some((_, v)) => self.env(v, "'env'"),
            None => Env::new(),
        };
        let continue_on_error = match entries.get("continue-on-error") {
            Some((_, v)) => self.or_expr_bool(v, "'continue-on-error'"),
            None => None,
        };
        let timeout_minutes = match entries.get("timeout-minutes") {
            Some((_, v)) => self.or_expr_number(v, "'timeout-minutes'"),
            None => None,
        };
        let kind = match (run, uses) {
            (Some((_, r)), None) => {
                let run = self.text(r, "'run'");
                let shell = match entries.get("shell") {
                    Some((_, v)) => self.text_without_expressions(v, "'shell'"),
                    None => None,
                };
                if let Some(shell) = &shell {
                    self.check_shell(shell);
                }
                let working_directory = match entries.get("working-directory") {
                    Some((_, v)) => self.text(v, "'working-directory'"),
                    None => None,
                };
                run.map(|run| StepKind::Run {
                    run,
                    shell,
                    working_directory,
                })
            }
            (None, Some((_, u))) => {
                let uses = self.plain(u, "'uses'");
                if let Some(uses) = &uses {
                    self.check_uses(uses);
                }
                let with = match entries.get("with") {
                    Some((_, v)) => self.env(v, "'with'"),
                    None => IndexMap::new(),
                };
                uses.map(|uses| StepKind::Uses { uses, with })
            }
            _ => None,
        };
        if !ok {
            return None;
        }
        Some(Step {
            index,
            id,
            name,
            if_,
            kind: kind?,
            env,
            continue_on_error,
            timeout_minutes,
            pos,
        })
    }

    fn text_without_expressions(&mut self, node: &Node, what: &str) -> Option<Text> {
        self.plain(node, what)?;
        self.text(node, what)
    }

    fn check_uses(&mut self, uses: &Spanned<String>) {
        let v = uses.value.as_str();
        if v.starts_with("./") || v.starts_with("docker://") {
            return;
        }
        let ok = match v.split_once('@') {
            Some((name, reference)) => {
                let mut parts = name.split('/');
                let owner = parts.next().unwrap_or("");
                let repo = parts.next().unwrap_or("");
                !owner.is_empty() && !repo.is_empty() && !reference.is_empty()
            }
            None => false,
        };
        if !ok {
            self.error(
                uses.pos,
                format!("expected '{{owner}}/{{repo}}[/path]@{{ref}}', './path' or 'docker://image' in 'uses', found '{v}'"),
            );
        }
    }

    /// `needs` naming missing jobs, and cycles.
    fn check_needs(&mut self, wf: &Workflow) {
        let names: Vec<&str> = wf.jobs.keys().map(String::as_str).collect();
        for job in wf.jobs.values() {
            for need in &job.needs {
                if !wf.jobs.contains_key(&need.value) {
                    let hint = did_you_mean(&need.value, names.iter().copied())
                        .map(|s| format!(" (did you mean '{s}'?)"))
                        .unwrap_or_default();
                    self.error(
                        need.pos,
                        format!(
                            "job '{}' needs '{}', which is not a job in this workflow{hint}",
                            job.id.value, need.value
                        ),
                    );
                }
            }
        }
        if let Some((cycle, pos)) = order::find_cycle(wf) {
            self.error(pos, format!("'needs' form a cycle: {}", cycle.join(" → ")));
        }
    }
}

fn describe(node: &Node) -> String {
    match &node.kind {
        NodeKind::Scalar(s) if is_null(s) => "nothing".into(),
        NodeKind::Scalar(s) => {
            let kind = match resolve(s) {
                ScalarKind::Bool(_) => "a boolean",
                ScalarKind::Number(_) => "a number",
                _ => "a string",
            };
            let mut shown: String = s.value.chars().take(40).collect();
            if shown.len() < s.value.len() {
                shown.push('…');
            }
            format!("{kind} '{shown}'")
        }
        NodeKind::Seq(_) => "a list".into(),
        NodeKind::Map(_) => "a mapping".into(),
    }
}

/// The value of `key` in a mapping node (ignored keys are not in a mapping's entries).
fn map_value<'n>(node: &'n Node, key: &str) -> Option<&'n Node> {
    let NodeKind::Map(pairs) = &node.kind else {
        return None;
    };
    pairs
        .iter()
        .find(|(k, _)| matches!(&k.kind, NodeKind::Scalar(s) if s.value == key))
        .map(|(_, v)| v)
}

fn is_null(s: &Scalar) -> bool {
    matches!(resolve(s), ScalarKind::Null)
}

/// Byte offset of the first `${{` in `s`.
fn find_expression(s: &str) -> Option<usize> {
    s.find("${{")
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Why GitHub rejects `id` as a job or step id, if it does.
fn id_problem(id: &str) -> Option<String> {
    if !is_identifier(id) {
        Some(ID_RULE.to_string())
    } else if id.starts_with("__") {
        Some("ids starting with '__' are reserved".to_string())
    } else if id.len() >= 100 {
        Some("ids must be shorter than 100 characters".to_string())
    } else {
        None
    }
}

/// Resolves a scalar as GitHub's YAML reader does (YAML 1.2 core schema): only plain scalars can
/// be null/bool/number; `yes`, `no`, `on`, `off` stay strings.
pub(crate) fn resolve(s: &Scalar) -> ScalarKind {
    match s.tag.as_deref() {
        Some("tag:yaml.org,2002:str") => return ScalarKind::String,
        Some(_) => {}
        None if s.style != Style::Plain => return ScalarKind::String,
        None => {}
    }
    let v = s.value.as_str();
    match v {
        "" | "~" | "null" | "Null" | "NULL" => return ScalarKind::Null,
        "true" | "True" | "TRUE" => return ScalarKind::Bool(true),
        "false" | "False" | "FALSE" => return ScalarKind::Bool(false),
        ".nan" | ".NaN" | ".NAN" => return ScalarKind::Number(f64::NAN),
        _ => {}
    }
    parse_number(v).map_or(ScalarKind::String, ScalarKind::Number)
}

fn parse_number(v: &str) -> Option<f64> {
    if let Some(hex) = v.strip_prefix("0x") {
        return u64::from_str_radix(hex, 16).ok().map(|n| n as f64);
    }
    if let Some(oct) = v.strip_prefix("0o") {
        return u64::from_str_radix(oct, 8).ok().map(|n| n as f64);
    }
    let unsigned = v.strip_prefix(['-', '+']).unwrap_or(v);
    let negative = v.starts_with('-');
    if matches!(unsigned, ".inf" | ".Inf" | ".INF") {
        return Some(if negative {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        });
    }
    // [0-9]+(\.[0-9]*)?|\.[0-9]+ then an optional exponent.
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(i) => (&unsigned[..i], Some(&unsigned[i + 1..])),
        None => (unsigned, None),
    };
    let (int, frac) = match mantissa.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (mantissa, None),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match frac {
        None => !int.is_empty() && digits(int),
        Some(f) => digits(int) && digits(f) && (!int.is_empty() || !f.is_empty()),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    if !(mantissa_ok && exponent_ok) {
        return None;
    }
    v.parse::<f64>().ok()
}

/// The closest candidate within a small edit distance (or equal ignoring case and `_`/`-`).
pub(crate) fn did_you_mean<'c>(
    word: &str,
    candidates: impl Iterator<Item = &'c str>,
) -> Option<&'c str> {
    let norm = |s: &str| s.to_ascii_lowercase().replace('_', "-");
    let w = norm(word);
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let d = if norm(c) == w {
            0
        } else {
            edit_distance(&w, &norm(c))
        };
        let limit = (c.chars().count().max(word.chars().count()) / 3).clamp(1, 3);
        if d <= limit && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

/// Optimal-string-alignment distance: insertions, deletions, substitutions and swaps of two
/// neighbouring characters (`biuld` → `build`) each cost one.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    for i in 0..=a.len() {
        d[i * width] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(width) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[(i - 1) * width + j] + 1)
                .min(d[i * width + j - 1] + 1)
                .min(d[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[(i - 2) * width + j - 2] + 1);
            }
            d[i * width + j] = best;
        }
    }
    d[a.len() * width + b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::model::SourceMap;

    fn plain(v: &str) -> Scalar {
        Scalar {
            value: v.into(),
            style: Style::Plain,
            tag: None,
            map: SourceMap::single(Pos::new(1, 1)),
        }
    }

    #[test]
    fn resolves_scalars_like_the_yaml_core_schema() {
        let cases: &[(&str, ScalarKind)] = &[
            ("", ScalarKind::Null),
            ("~", ScalarKind::Null),
            ("null", ScalarKind::Null),
            ("true", ScalarKind::Bool(true)),
            ("False", ScalarKind::Bool(false)),
            ("yes", ScalarKind::String),
            ("no", ScalarKind::String),
            ("on", ScalarKind::String),
            ("off", ScalarKind::String),
            ("18", ScalarKind::Number(18.0)),
            ("-3", ScalarKind::Number(-3.0)),
            ("20.10", ScalarKind::Number(20.1)),
            (".5", ScalarKind::Number(0.5)),
            ("1e3", ScalarKind::Number(1000.0)),
            ("0x1F", ScalarKind::Number(31.0)),
            ("0o17", ScalarKind::Number(15.0)),
            ("1.2.3", ScalarKind::String),
            ("1_000", ScalarKind::String),
            ("ubuntu-latest", ScalarKind::String),
            (".", ScalarKind::String),
            ("1e", ScalarKind::String),
            ("-.inf", ScalarKind::Number(f64::NEG_INFINITY)),
        ];
        for (v, want) in cases {
            assert_eq!(resolve(&plain(v)), *want, "{v:?}");
        }
        let mut quoted = plain("18");
        quoted.style = Style::DoubleQuoted;
        assert_eq!(resolve(&quoted), ScalarKind::String);
    }

    #[test]
    fn suggestions() {
        let keys = JOB_KEYS.iter().copied();
        assert_eq!(did_you_mean("runs_on", keys.clone()), Some("runs-on"));
        assert_eq!(did_you_mean("step", keys.clone()), Some("steps"));
        assert_eq!(did_you_mean("timeout", keys.clone()), None);
        assert_eq!(did_you_mean("xyz", keys), None);
        assert_eq!(
            did_you_mean("biuld", ["build", "test"].into_iter()),
            Some("build")
        );
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
