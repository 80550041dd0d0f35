//! The `inputs` context: each input the workflow declares for the event being run
//! (`workflow_dispatch` or `workflow_call`), typed as declared, from its default, the event
//! payload's `inputs` or `--input name=value`.

use indexmap::IndexMap;

use crate::expr::Value;
use crate::workflow::{InputSpec, InputType, Workflow};

use super::ExecError;

/// The `inputs` context and the `github.event.inputs` GitHub sends with it (every value a
/// string, as in a `workflow_dispatch` payload).
pub(super) struct ResolvedInputs {
    pub(super) context: Value,
    pub(super) event: serde_json::Map<String, serde_json::Value>,
}

/// Resolves the inputs of `event_name`. `payload` is the event file's `inputs` object, `given`
/// the `--input` values; both are checked against the declarations, `given` winning.
pub(super) fn resolve(
    workflow: &Workflow,
    event_name: &str,
    payload: Option<&serde_json::Value>,
    given: &IndexMap<String, String>,
) -> Result<ResolvedInputs, ExecError> {
    let declared = match event_name {
        "workflow_dispatch" => &workflow.inputs.dispatch,
        "workflow_call" => &workflow.inputs.call,
        _ => {
            if let Some(name) = given.keys().next() {
                return Err(ExecError::Input {
                    name: name.clone(),
                    problem: format!(
                        "inputs are for workflow_dispatch and workflow_call runs, not '{event_name}' (pass --event workflow_dispatch)"
                    ),
                });
            }
            // Other events carry no inputs of their own; a payload's are passed through.
            let context = payload
                .cloned()
                .map_or_else(|| Value::Object(IndexMap::new()), Value::from_json);
            return Ok(ResolvedInputs {
                context,
                event: serde_json::Map::new(),
            });
        }
    };
    // `--input` names must be declared (GitHub's API refuses unexpected inputs); an event
    // file's undeclared inputs are passed through untyped, as the payload the user gave.
    for name in given.keys() {
        if !declared.contains_key(name) {
            let available = if declared.is_empty() {
                "it declares none".to_string()
            } else {
                format!(
                    "declared: {}",
                    declared.keys().cloned().collect::<Vec<_>>().join(", ")
                )
            };
            return Err(ExecError::Input {
                name: name.clone(),
                problem: format!("the workflow declares no such {event_name} input ({available})"),
            });
        }
    }
    let payload = match payload {
        Some(serde_json::Value::Object(map)) => map.clone(),
        _ => serde_json::Map::new(),
    };
    let mut raw: IndexMap<String, serde_json::Value> = IndexMap::new();
    for (k, v) in &payload {
        raw.insert(k.clone(), v.clone());
    }
    for (k, v) in given {
        raw.insert(k.clone(), serde_json::Value::String(v.clone()));
    }
    let mut context = IndexMap::new();
    let mut event = payload;
    for (name, spec) in declared {
        let value = match raw.get(name) {
            Some(v) => typed(spec, v)?,
            None => match &spec.default {
                Some(d) => d.clone(),
                None if spec.required => {
                    return Err(ExecError::Input {
                        name: name.clone(),
                        problem: "required, and it has no default (pass --input NAME=VALUE)"
                            .to_string(),
                    });
                }
                None => empty(spec.kind),
            },
        };
        event.insert(
            name.clone(),
            serde_json::Value::String(value.to_display_string()),
        );
        context.insert(name.clone(), value);
    }
    for (name, value) in raw {
        if !declared.contains_key(&name) {
            context.insert(name, Value::from_json(value));
        }
    }
    Ok(ResolvedInputs {
        context: Value::Object(context),
        event,
    })
}

/// What an input that is neither given nor defaulted holds (GitHub sends `false` for an unset
/// boolean and an empty string otherwise).
fn empty(kind: InputType) -> Value {
    match kind {
        InputType::Boolean => Value::Bool(false),
        _ => Value::String(String::new()),
    }
}

/// `value` converted to the input's declared type.
fn typed(spec: &InputSpec, value: &serde_json::Value) -> Result<Value, ExecError> {
    let problem = |p: String| ExecError::Input {
        name: spec.name.value.clone(),
        problem: p,
    };
    let text = match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Bool(b) => b.to_string(),
        serde_json::Value::Number(n) => n.to_string(),
        other => {
            return Err(problem(format!(
                "expected a {} value, found {other}",
                spec.kind.name()
            )));
        }
    };
    match spec.kind {
        InputType::Boolean => match text.as_str() {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(problem(format!(
                "a boolean input takes true or false, not '{text}'"
            ))),
        },
        InputType::Number => match text.trim().parse::<f64>() {
            Ok(n) if n.is_finite() => Ok(Value::Number(n)),
            _ => Err(problem(format!(
                "a number input takes a number, not '{text}'"
            ))),
        },
        InputType::Choice => {
            if spec.options.contains(&text) {
                Ok(Value::String(text))
            } else {
                Err(problem(format!(
                    "'{text}' is not one of its options ({})",
                    spec.options.join(", ")
                )))
            }
        }
        InputType::String | InputType::Environment => Ok(Value::String(text)),
    }
}
