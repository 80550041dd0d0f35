//! The JSON documents the CLI prints (`--json`, `--json-events`): each names its shape in a
//! `"schema"` field (`runner.<verb>/<version>`), and every time is given twice, ISO-8601 UTC
//! (`created_at`) and epoch milliseconds (`created_at_ms`). docs/json.md describes each shape.

use serde_json::{Map, Value, json};

/// The schema of the error document `--json` prints when a verb fails.
pub const ERROR_SCHEMA: &str = "runner.error/1";

/// Epoch milliseconds as `2025-11-21T10:34:56.123Z`.
pub fn iso_time(millis: i64) -> String {
    let t = runner::clock::UtcTime::from_millis(millis);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year,
        t.month,
        t.day,
        t.hour,
        t.minute,
        t.second,
        millis.rem_euclid(1000)
    )
}

/// Inserts `<name>` (ISO-8601 UTC) and `<name>_ms` (epoch milliseconds) into `object`.
pub fn put_time(object: &mut Map<String, Value>, name: &str, millis: i64) {
    object.insert(name.to_string(), Value::String(iso_time(millis)));
    object.insert(format!("{name}_ms"), Value::from(millis));
}

/// A document of `schema` with `fields` after the schema name.
pub fn document(schema: &str, fields: Value) -> Value {
    let mut object = Map::new();
    object.insert("schema".into(), Value::String(schema.to_string()));
    if let Value::Object(fields) = fields {
        object.extend(fields);
    }
    Value::Object(object)
}

/// The document `--json` prints instead of the verb's own when the verb fails.
pub fn error_document(message: &str, exit_code: u8) -> Value {
    document(
        ERROR_SCHEMA,
        json!({
            "result": "error",
            "exit_code": exit_code,
            "error": message,
        }),
    )
}

/// Now, in epoch milliseconds.
pub fn now_millis() -> i64 {
    use runner::clock::Clock as _;
    runner::clock::SystemClock.now_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_rows() {
        let rows = [
            (0, "1970-01-01T00:00:00.000Z"),
            (951_782_400_007, "2000-02-29T00:00:00.007Z"),
            (1_763_721_296_123, "2025-11-21T10:34:56.123Z"),
        ];
        for (millis, expected) in rows {
            assert_eq!(iso_time(millis), expected, "{millis}");
        }
    }
}
