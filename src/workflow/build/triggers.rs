//! `on:` as GitHub's workflow parser validates it: event names, each event's filters and
//! activity types, `schedule` crons, and the typed inputs of `workflow_dispatch` and
//! `workflow_call` (which become the `inputs` context at run time).

use indexmap::IndexMap;

use crate::expr::Value;

use super::super::model::{InputSpec, InputType, Inputs, ScalarKind, Spanned};
use super::super::yaml::{Node, NodeKind};
use super::{Cx, describe, find_expression, is_null, resolve};

/// Branch, tag and path filters (each a string or a list of strings).
const PUSH: &[&str] = &[
    "branches",
    "branches-ignore",
    "tags",
    "tags-ignore",
    "paths",
    "paths-ignore",
];
const PULL_REQUEST: &[&str] = &[
    "types",
    "branches",
    "branches-ignore",
    "paths",
    "paths-ignore",
];
const TYPES: &[&str] = &["types"];
const NONE: &[&str] = &[];
const PR_TYPES: &[&str] = &[
    "assigned",
    "unassigned",
    "labeled",
    "unlabeled",
    "opened",
    "edited",
    "closed",
    "reopened",
    "synchronize",
    "converted_to_draft",
    "ready_for_review",
    "locked",
    "unlocked",
    "review_requested",
    "review_request_removed",
    "auto_merge_enabled",
    "auto_merge_disabled",
];
const CREATED_EDITED_DELETED: &[&str] = &["created", "edited", "deleted"];

type Event = (
    &'static str,
    &'static [&'static str],
    Option<&'static [&'static str]>,
);

/// `(event, the keys its mapping takes, its activity types; None = any type)`, from GitHub's
/// workflow schema (workflow-v1.0.json in actions/runner).
const EVENTS: &[Event] = &[
    (
        "branch_protection_rule",
        TYPES,
        Some(CREATED_EDITED_DELETED),
    ),
    (
        "check_run",
        TYPES,
        Some(&["completed", "created", "rerequested", "requested_action"]),
    ),
    ("check_suite", TYPES, Some(&["completed"])),
    ("create", NONE, None),
    ("delete", NONE, None),
    ("deployment", NONE, None),
    ("deployment_status", NONE, None),
    (
        "discussion",
        TYPES,
        Some(&[
            "created",
            "edited",
            "deleted",
            "transferred",
            "pinned",
            "unpinned",
            "labeled",
            "unlabeled",
            "locked",
            "unlocked",
            "category_changed",
            "answered",
            "unanswered",
        ]),
    ),
    ("discussion_comment", TYPES, Some(CREATED_EDITED_DELETED)),
    ("fork", NONE, None),
    ("gollum", NONE, None),
    (
        "image_version",
        &["names", "types", "versions"],
        Some(&["created", "ready", "deleted"]),
    ),
    ("issue_comment", TYPES, Some(CREATED_EDITED_DELETED)),
    (
        "issues",
        TYPES,
        Some(&[
            "opened",
            "edited",
            "deleted",
            "transferred",
            "pinned",
            "unpinned",
            "closed",
            "reopened",
            "assigned",
            "unassigned",
            "labeled",
            "unlabeled",
            "locked",
            "unlocked",
            "milestoned",
            "demilestoned",
        ]),
    ),
    ("label", TYPES, Some(CREATED_EDITED_DELETED)),
    ("merge_group", TYPES, Some(&["checks_requested"])),
    (
        "milestone",
        TYPES,
        Some(&["created", "closed", "opened", "edited", "deleted"]),
    ),
    ("page_build", NONE, None),
    (
        "project",
        TYPES,
        Some(&["created", "closed", "reopened", "edited", "deleted"]),
    ),
    (
        "project_card",
        TYPES,
        Some(&["created", "moved", "converted", "edited", "deleted"]),
    ),
    (
        "project_column",
        TYPES,
        Some(&["created", "updated", "moved", "deleted"]),
    ),
    ("public", NONE, None),
    ("pull_request", PULL_REQUEST, Some(PR_TYPES)),
    ("pull_request_comment", TYPES, Some(CREATED_EDITED_DELETED)),
    (
        "pull_request_review",
        TYPES,
        Some(&["submitted", "edited", "dismissed"]),
    ),
    (
        "pull_request_review_comment",
        TYPES,
        Some(CREATED_EDITED_DELETED),
    ),
    ("pull_request_target", PULL_REQUEST, Some(PR_TYPES)),
    ("push", PUSH, None),
    ("registry_package", TYPES, Some(&["published", "updated"])),
    (
        "release",
        TYPES,
        Some(&[
            "published",
            "unpublished",
            "created",
            "edited",
            "deleted",
            "prereleased",
            "released",
        ]),
    ),
    ("repository_dispatch", TYPES, None),
    ("schedule", NONE, None),
    ("status", NONE, None),
    ("watch", TYPES, Some(&["started"])),
    ("workflow_call", &["inputs", "outputs", "secrets"], None),
    ("workflow_dispatch", &["inputs"], None),
    (
        "workflow_run",
        &["types", "workflows", "branches", "branches-ignore"],
        Some(&["requested", "completed", "in_progress"]),
    ),
];

const DISPATCH_INPUT_KEYS: &[&str] = &["description", "type", "required", "default", "options"];
const CALL_INPUT_KEYS: &[&str] = &["description", "type", "required", "default"];
/// Cron fields: name, lowest and highest value, names accepted for values (from 1 or 0).
const CRON_FIELDS: &[(&str, u32, u32, &[&str])] = &[
    ("minute", 0, 59, &[]),
    ("hour", 0, 23, &[]),
    ("day of month", 1, 31, &[]),
    (
        "month",
        1,
        12,
        &[
            "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
        ],
    ),
    (
        "day of week",
        0,
        6,
        &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
    ),
];

impl Cx<'_> {
    /// Validates `on:` and returns the inputs it declares.
    pub(super) fn triggers(&mut self, node: &Node) -> Inputs {
        let mut inputs = Inputs::default();
        match &node.kind {
            NodeKind::Scalar(s) if is_null(s) => {
                self.error(node.pos(), "'on' must name at least one event");
            }
            NodeKind::Scalar(s) => self.event_name(&s.value, node),
            NodeKind::Seq(items) => {
                if items.is_empty() {
                    self.error(node.pos(), "'on' must name at least one event");
                }
                for item in items {
                    if let NodeKind::Scalar(s) = &item.kind {
                        self.event_name(&s.value, item);
                    }
                }
            }
            NodeKind::Map(_) => {
                let Some(entries) = self.loose_mapping(node, "'on'") else {
                    return inputs;
                };
                for (name, (k, v)) in entries {
                    let Some(&(_, keys, types)) = EVENTS.iter().find(|(e, ..)| *e == name) else {
                        self.event_name(name, k);
                        continue;
                    };
                    match name {
                        "schedule" => self.schedule(v),
                        "workflow_dispatch" => {
                            inputs.dispatch = self.event_inputs(v, name, keys, true);
                        }
                        "workflow_call" => {
                            inputs.call = self.event_inputs(v, name, keys, false);
                        }
                        _ => self.event_settings(v, name, keys, types),
                    }
                }
            }
        }
        inputs
    }

    fn event_name(&mut self, name: &str, at: &Node) {
        if !EVENTS.iter().any(|(e, ..)| *e == name) {
            let hint = super::did_you_mean(name, EVENTS.iter().map(|(e, ..)| *e))
                .map(|s| format!(" (did you mean '{s}'?)"))
                .unwrap_or_default();
            self.error(at.pos(), format!("unknown event '{name}'{hint}"));
        }
    }

    /// One event's mapping: known filters, each a string or a list of strings.
    fn event_settings(&mut self, node: &Node, event: &str, keys: &[&str], types: Option<&[&str]>) {
        if matches!(&node.kind, NodeKind::Scalar(s) if is_null(s)) {
            return;
        }
        if keys.is_empty() {
            self.error(
                node.pos(),
                format!("'{event}' takes no settings, found {}", describe(node)),
            );
            return;
        }
        let what = format!("'on.{event}'");
        let Some(entries) = self.mapping(node, &what, keys, &[]) else {
            return;
        };
        for (key, (_, v)) in &entries {
            let values = self.string_list(v, &format!("'{key}' of {what}"));
            if *key == "types"
                && let Some(allowed) = types
            {
                for (value, at) in values {
                    if !allowed.contains(&value.as_str()) {
                        self.error(
                            at,
                            format!(
                                "unknown activity type '{value}' for '{event}' (one of: {})",
                                allowed.join(", ")
                            ),
                        );
                    }
                }
            }
        }
        for (include, exclude) in [("branches", "branches-ignore"), ("tags", "tags-ignore")] {
            if entries.contains_key(include)
                && let Some((k, _)) = entries.get(exclude)
            {
                self.error(
                    k.pos(),
                    format!(
                        "you may only define one of '{include}' and '{exclude}' for a single event"
                    ),
                );
            }
        }
        if entries.contains_key("paths")
            && let Some((k, _)) = entries.get("paths-ignore")
        {
            self.error(
                k.pos(),
                "you may only define one of 'paths' and 'paths-ignore' for a single event",
            );
        }
    }

    /// A non-empty string or a list of them, with where each is written.
    fn string_list(&mut self, node: &Node, what: &str) -> Vec<(String, super::Pos)> {
        let items: Vec<&Node> = match &node.kind {
            NodeKind::Seq(items) => items.iter().collect(),
            _ => vec![node],
        };
        let mut out = Vec::new();
        for item in items {
            match &item.kind {
                NodeKind::Scalar(s) if !is_null(s) && !s.value.is_empty() => {
                    out.push((s.value.clone(), item.pos()));
                }
                _ => self.error(
                    item.pos(),
                    format!(
                        "{what} must be a non-empty string or a list of them, found {}",
                        describe(item)
                    ),
                ),
            }
        }
        out
    }

    /// `schedule:` is a list of `- cron: '<five fields>'`.
    fn schedule(&mut self, node: &Node) {
        let NodeKind::Seq(items) = &node.kind else {
            self.error(
                node.pos(),
                format!(
                    "'schedule' must be a list of '- cron: ...' entries, found {}",
                    describe(node)
                ),
            );
            return;
        };
        for item in items {
            let Some(entries) = self.mapping(item, "a 'schedule' entry", &["cron"], &[]) else {
                continue;
            };
            let Some((_, cron)) = entries.get("cron") else {
                self.error(item.pos(), "a 'schedule' entry needs 'cron'");
                continue;
            };
            let Some(s) = self.scalar(cron, "'cron'", "a string") else {
                continue;
            };
            if let Err(problem) = check_cron(&s.value) {
                self.error(
                    cron.pos(),
                    format!("invalid cron expression '{}': {problem}", s.value),
                );
            }
        }
    }

    /// The `inputs:` of `workflow_dispatch` (`dispatch`) or `workflow_call`.
    fn event_inputs(
        &mut self,
        node: &Node,
        event: &str,
        keys: &[&str],
        dispatch: bool,
    ) -> IndexMap<String, InputSpec> {
        let mut out = IndexMap::new();
        if matches!(&node.kind, NodeKind::Scalar(s) if is_null(s)) {
            return out;
        }
        let what = format!("'on.{event}'");
        let Some(entries) = self.mapping(node, &what, keys, &[]) else {
            return out;
        };
        let Some((_, inputs)) = entries.get("inputs") else {
            return out;
        };
        if matches!(&inputs.kind, NodeKind::Scalar(s) if is_null(s)) {
            return out;
        }
        let Some(declared) = self.loose_mapping(inputs, &format!("the inputs of {what}")) else {
            return out;
        };
        for (name, (k, v)) in declared {
            let spec = self.input(Spanned::new(name.to_string(), k.pos()), v, dispatch);
            if let Some(spec) = spec {
                out.insert(name.to_string(), spec);
            }
        }
        out
    }

    fn input(&mut self, name: Spanned<String>, node: &Node, dispatch: bool) -> Option<InputSpec> {
        let what = format!("input '{}'", name.value);
        let keys = if dispatch {
            DISPATCH_INPUT_KEYS
        } else {
            CALL_INPUT_KEYS
        };
        let entries = self.mapping(node, &what, keys, &[])?;
        let types: &[&str] = if dispatch {
            &["string", "boolean", "number", "choice", "environment"]
        } else {
            &["string", "boolean", "number"]
        };
        let kind = match entries.get("type") {
            None if dispatch => InputType::String,
            None => {
                self.error(
                    name.pos,
                    format!("{what} needs a 'type' (one of: {})", types.join(", ")),
                );
                return None;
            }
            Some((_, t)) => {
                let s = self.scalar(t, "'type'", "a string")?;
                match InputType::parse(&s.value).filter(|k| types.contains(&k.name())) {
                    Some(kind) => kind,
                    None => {
                        self.error(
                            t.pos(),
                            format!(
                                "unknown type '{}' for {what} (one of: {})",
                                s.value,
                                types.join(", ")
                            ),
                        );
                        return None;
                    }
                }
            }
        };
        let required = match entries.get("required") {
            None => false,
            Some((_, r)) => match &r.kind {
                NodeKind::Scalar(s) if matches!(resolve(s), ScalarKind::Bool(_)) => {
                    matches!(resolve(s), ScalarKind::Bool(true))
                }
                _ => {
                    self.error(
                        r.pos(),
                        format!("'required' must be true or false, found {}", describe(r)),
                    );
                    false
                }
            },
        };
        let mut options = Vec::new();
        if let Some((k, o)) = entries.get("options") {
            if kind != InputType::Choice {
                self.error(k.pos(), "'options' is only for inputs of type choice");
            }
            match &o.kind {
                NodeKind::Seq(_) => {
                    options = self
                        .string_list(o, "'options'")
                        .into_iter()
                        .map(|(v, _)| v)
                        .collect();
                }
                _ => self.error(
                    o.pos(),
                    format!("'options' must be a list of strings, found {}", describe(o)),
                ),
            }
        } else if kind == InputType::Choice {
            self.error(name.pos, format!("{what} is a choice and needs 'options'"));
        }
        let default = match entries.get("default") {
            None => None,
            Some((_, d)) => self.input_default(d, kind, &options, &what, dispatch),
        };
        Some(InputSpec {
            name,
            kind,
            required,
            default,
            options,
        })
    }

    /// The `default:` of an input, checked against its type.
    fn input_default(
        &mut self,
        node: &Node,
        kind: InputType,
        options: &[String],
        what: &str,
        dispatch: bool,
    ) -> Option<Value> {
        let s = self.scalar(node, "'default'", "a string, a boolean or a number")?;
        if !dispatch && find_expression(&s.value).is_some() {
            // A `workflow_call` default may be an expression; it is kept as written.
            return Some(Value::String(s.value.clone()));
        }
        let resolved = resolve(s);
        let value = match (kind, resolved) {
            (InputType::Boolean, ScalarKind::Bool(b)) => Value::Bool(b),
            (InputType::Boolean, _) => {
                self.error(
                    node.pos(),
                    format!(
                        "the default of boolean {what} must be true or false, found {}",
                        describe(node)
                    ),
                );
                return None;
            }
            (InputType::Number, ScalarKind::Number(n)) => Value::Number(n),
            (InputType::Number, _) => {
                self.error(
                    node.pos(),
                    format!(
                        "the default of number {what} must be a number, found {}",
                        describe(node)
                    ),
                );
                return None;
            }
            (_, ScalarKind::Null) => Value::String(String::new()),
            _ => Value::String(s.value.clone()),
        };
        if kind == InputType::Choice && !options.is_empty() && !options.contains(&s.value) {
            self.error(
                node.pos(),
                format!(
                    "the default '{}' of {what} is not one of its options ({})",
                    s.value,
                    options.join(", ")
                ),
            );
            return None;
        }
        Some(value)
    }
}

/// Checks a five-field POSIX cron expression as GitHub's scheduler accepts it.
fn check_cron(text: &str) -> Result<(), String> {
    let fields: Vec<&str> = text.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "expected 5 fields (minute hour day-of-month month day-of-week), found {}",
            fields.len()
        ));
    }
    for (field, &(name, low, high, names)) in fields.iter().zip(CRON_FIELDS) {
        let value = |v: &str| -> Result<u32, String> {
            let n = match v.parse::<u32>() {
                Ok(n) => n,
                Err(_) => names
                    .iter()
                    .position(|m| m.eq_ignore_ascii_case(v))
                    .and_then(|i| u32::try_from(i).ok())
                    .map(|i| i + low)
                    .ok_or_else(|| format!("'{v}' is not a valid {name}"))?,
            };
            if n < low || n > high {
                return Err(format!("{name} {n} is out of range {low}-{high}"));
            }
            Ok(n)
        };
        for item in field.split(',') {
            let (range, step) = match item.split_once('/') {
                Some((r, s)) => (r, Some(s)),
                None => (item, None),
            };
            if let Some(step) = step
                && !step.parse::<u32>().is_ok_and(|s| s > 0)
            {
                return Err(format!("'{step}' is not a valid step in the {name} field"));
            }
            if range == "*" {
                continue;
            }
            match range.split_once('-') {
                Some((a, b)) => {
                    if value(a)? > value(b)? {
                        return Err(format!("the {name} range '{range}' runs backwards"));
                    }
                }
                None => {
                    value(range)?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_cron;

    #[test]
    fn crons() {
        for ok in [
            "0 0 * * *",
            "*/15 * * * 1-5",
            "30 5,17 * * MON-FRI",
            "0 12 1 jan,jul *",
            "5 4 * * sun",
        ] {
            assert_eq!(check_cron(ok), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("0 0 * *", "expected 5 fields"),
            ("60 * * * *", "minute 60 is out of range 0-59"),
            ("* 24 * * *", "hour 24 is out of range 0-23"),
            ("* * 0 * *", "day of month 0 is out of range 1-31"),
            ("* * * 13 *", "month 13 is out of range 1-12"),
            ("* * * * 7", "day of week 7 is out of range 0-6"),
            ("*/0 * * * *", "'0' is not a valid step"),
            ("5-1 * * * *", "runs backwards"),
            ("x * * * *", "'x' is not a valid minute"),
        ] {
            let err = check_cron(bad).expect_err(bad);
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}
