//! Expression values and GitHub's coercion rules.

use indexmap::IndexMap;

/// A value an expression produces or a context holds.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    /// `null`
    #[default]
    Null,
    /// `true` / `false`
    Bool(bool),
    /// Every number is an f64, as in GitHub's evaluator.
    Number(f64),
    /// A string.
    String(String),
    /// An array.
    Array(Vec<Value>),
    /// An object; keys keep insertion order and are looked up case-insensitively.
    Object(IndexMap<String, Value>),
}

impl Value {
    /// Converts to the string GitHub substitutes into a template (`null` → `''`, numbers like
    /// .NET `G15`, arrays/objects → `Array`/`Object`).
    pub fn to_display_string(&self) -> String {
        todo!("expr issue")
    }
    /// GitHub's truthiness.
    pub fn is_truthy(&self) -> bool {
        todo!("expr issue")
    }
    /// Property lookup, case-insensitive; `None` when absent or not an object.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(map) => map.get(key).or_else(|| {
                map.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(key))
                    .map(|(_, v)| v)
            }),
            _ => None,
        }
    }
    /// Converts JSON (event payloads, `--contexts` files) into a value.
    pub fn from_json(json: serde_json::Value) -> Value {
        match json {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(b),
            serde_json::Value::Number(n) => Value::Number(n.as_f64().unwrap_or(f64::NAN)),
            serde_json::Value::String(s) => Value::String(s),
            serde_json::Value::Array(a) => {
                Value::Array(a.into_iter().map(Value::from_json).collect())
            }
            serde_json::Value::Object(o) => Value::Object(
                o.into_iter()
                    .map(|(k, v)| (k, Value::from_json(v)))
                    .collect(),
            ),
        }
    }
    /// Converts into JSON (`--json` reports, `runner eval` output).
    pub fn to_json(&self) -> serde_json::Value {
        todo!("expr issue")
    }
}
