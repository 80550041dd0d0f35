//! Matrix expansion against GitHub's documented examples, `--matrix` filters and job order.

use runner::expr::Value;
use runner::workflow::{Combination, MatrixError, expand_matrix, filter_matrix, job_order};
use serde_json::json;

use super::load_ok;

fn expand(matrix: serde_json::Value) -> Result<Vec<serde_json::Value>, MatrixError> {
    expand_matrix(&Value::from_json(matrix)).map(|combos| combos.iter().map(to_json).collect())
}

fn to_json(combo: &Combination) -> serde_json::Value {
    fn conv(v: &Value) -> serde_json::Value {
        match v {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => json!(b),
            Value::Number(n) if n.fract() == 0.0 => json!(*n as i64),
            Value::Number(n) => json!(n),
            Value::String(s) => json!(s),
            Value::Array(a) => a.iter().map(conv).collect(),
            Value::Object(o) => o.iter().map(|(k, v)| (k.clone(), conv(v))).collect(),
        }
    }
    combo.iter().map(|(k, v)| (k.clone(), conv(v))).collect()
}

/// `(case, matrix, expected combinations in order, with key order)`.
fn cases() -> Vec<(&'static str, serde_json::Value, Vec<serde_json::Value>)> {
    vec![
        (
            "cartesian product, first key varies slowest",
            json!({"os": ["ubuntu", "windows"], "node": [14, 16]}),
            vec![
                json!({"os": "ubuntu", "node": 14}),
                json!({"os": "ubuntu", "node": 16}),
                json!({"os": "windows", "node": 14}),
                json!({"os": "windows", "node": 16}),
            ],
        ),
        (
            // docs: "Example: Expanding configurations"
            "include extends the matching combination",
            json!({"os": ["windows-latest", "ubuntu-latest"], "node": [14, 16],
                   "include": [{"os": "windows-latest", "node": 16, "npm": 6}]}),
            vec![
                json!({"os": "windows-latest", "node": 14}),
                json!({"os": "windows-latest", "node": 16, "npm": 6}),
                json!({"os": "ubuntu-latest", "node": 14}),
                json!({"os": "ubuntu-latest", "node": 16}),
            ],
        ),
        (
            // docs: "Expanding or adding matrix configurations" (fruit/animal)
            "include: extend without overwriting originals, overwrite added values, else add",
            json!({"fruit": ["apple", "pear"], "animal": ["cat", "dog"],
                   "include": [
                       {"color": "green"},
                       {"color": "pink", "animal": "cat"},
                       {"fruit": "apple", "shape": "circle"},
                       {"fruit": "banana"},
                       {"fruit": "banana", "animal": "cat"}]}),
            vec![
                json!({"fruit": "apple", "animal": "cat", "color": "pink", "shape": "circle"}),
                json!({"fruit": "apple", "animal": "dog", "color": "green", "shape": "circle"}),
                json!({"fruit": "pear", "animal": "cat", "color": "pink"}),
                json!({"fruit": "pear", "animal": "dog", "color": "green"}),
                json!({"fruit": "banana"}),
                json!({"fruit": "banana", "animal": "cat"}),
            ],
        ),
        (
            // docs: "Example: Adding configurations"
            "include that contradicts every combination adds a new one",
            json!({"os": ["windows-latest", "ubuntu-latest"], "node": [14, 16],
                   "include": [{"os": "windows-latest", "node": 17}]}),
            vec![
                json!({"os": "windows-latest", "node": 14}),
                json!({"os": "windows-latest", "node": 16}),
                json!({"os": "ubuntu-latest", "node": 14}),
                json!({"os": "ubuntu-latest", "node": 16}),
                json!({"os": "windows-latest", "node": 17}),
            ],
        ),
        (
            // docs: include-only matrix
            "include without vectors",
            json!({"include": [{"site": "production", "datacenter": "site-a"},
                               {"site": "staging", "datacenter": "site-b"}]}),
            vec![
                json!({"site": "production", "datacenter": "site-a"}),
                json!({"site": "staging", "datacenter": "site-b"}),
            ],
        ),
        (
            // docs: "Excluding matrix configurations"
            "exclude with full and partial matches",
            json!({"os": ["macos-latest", "windows-latest"], "version": [12, 14, 16],
                   "environment": ["staging", "production"],
                   "exclude": [
                       {"os": "macos-latest", "version": 12, "environment": "production"},
                       {"os": "windows-latest", "version": 16}]}),
            vec![
                json!({"os": "macos-latest", "version": 12, "environment": "staging"}),
                json!({"os": "macos-latest", "version": 14, "environment": "staging"}),
                json!({"os": "macos-latest", "version": 14, "environment": "production"}),
                json!({"os": "macos-latest", "version": 16, "environment": "staging"}),
                json!({"os": "macos-latest", "version": 16, "environment": "production"}),
                json!({"os": "windows-latest", "version": 12, "environment": "staging"}),
                json!({"os": "windows-latest", "version": 12, "environment": "production"}),
                json!({"os": "windows-latest", "version": 14, "environment": "staging"}),
                json!({"os": "windows-latest", "version": 14, "environment": "production"}),
            ],
        ),
        (
            "include runs after exclude and can add an excluded combination back",
            json!({"os": ["linux", "windows"], "node": [18],
                   "exclude": [{"os": "windows"}],
                   "include": [{"os": "windows", "node": 18, "experimental": true}]}),
            vec![
                json!({"os": "linux", "node": 18}),
                json!({"os": "windows", "node": 18, "experimental": true}),
            ],
        ),
        (
            "values compare like expressions: strings ignore case, '18' equals 18",
            json!({"os": ["Ubuntu"], "node": [18],
                   "exclude": [{"os": "ubuntu", "node": "20"}],
                   "include": [{"node": "18", "label": "lts"}]}),
            vec![json!({"os": "Ubuntu", "node": 18, "label": "lts"})],
        ),
        (
            "object values: exclude matches partially, include compares whole",
            json!({"cfg": [{"os": "linux", "arch": "x64"}, {"os": "linux", "arch": "arm64"}],
                   "exclude": [{"cfg": {"arch": "arm64"}}]}),
            vec![json!({"cfg": {"os": "linux", "arch": "x64"}})],
        ),
        (
            "exclude everything leaves nothing",
            json!({"os": ["a"], "exclude": [{"os": "a"}]}),
            vec![],
        ),
    ]
}

#[test]
fn matrix_expansion_follows_github_rules() {
    for (case, matrix, expected) in cases() {
        let got = expand(matrix).unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!(got, expected, "{case}");
        // Key order matters for job names; compare it too.
        for (g, e) in got.iter().zip(&expected) {
            let gk: Vec<&String> = g
                .as_object()
                .map(|o| o.keys().collect())
                .unwrap_or_default();
            let ek: Vec<&String> = e
                .as_object()
                .map(|o| o.keys().collect())
                .unwrap_or_default();
            assert_eq!(gk, ek, "{case}: key order");
        }
    }
}

#[test]
fn invalid_matrices_are_rejected() {
    let cases: Vec<(serde_json::Value, MatrixError)> = vec![
        (json!(["a"]), MatrixError::NotMapping),
        (
            json!({"os": "linux"}),
            MatrixError::NotList { key: "os".into() },
        ),
        (
            json!({"os": []}),
            MatrixError::EmptyVector { key: "os".into() },
        ),
        (
            json!({"os": ["a"], "include": "x"}),
            MatrixError::BadFilter {
                key: "include".into(),
            },
        ),
        (
            json!({"os": ["a"], "exclude": ["x"]}),
            MatrixError::BadFilter {
                key: "exclude".into(),
            },
        ),
        (
            json!({"os": ["a"], "exclude": [{"arch": "x"}]}),
            MatrixError::UnknownExcludeKey { key: "arch".into() },
        ),
        (json!({}), MatrixError::Empty),
        (
            json!({"a": (0..20).collect::<Vec<_>>(), "b": (0..20).collect::<Vec<_>>()}),
            MatrixError::TooLarge { count: 400 },
        ),
    ];
    for (matrix, want) in cases {
        assert_eq!(expand(matrix.clone()), Err(want), "{matrix}");
    }
}

#[test]
fn matrix_filter_keeps_selected_combinations() {
    let combos = expand_matrix(&Value::from_json(
        json!({"os": ["ubuntu", "windows"], "node": [18, 20.5, "22"], "debug": [true]}),
    ))
    .expect("expand");
    let rows: Vec<Vec<(&str, &str)>> = vec![
        vec![],
        vec![("os", "ubuntu")],
        vec![("node", "18")],
        vec![("node", "20.5"), ("os", "windows")],
        vec![("node", "18"), ("node", "22")],
        vec![("debug", "true"), ("node", "22")],
        vec![("arch", "x64")],
    ];
    let expected: Vec<Vec<(&str, &str)>> = vec![
        vec![
            ("ubuntu", "18"),
            ("ubuntu", "20.5"),
            ("ubuntu", "22"),
            ("windows", "18"),
            ("windows", "20.5"),
            ("windows", "22"),
        ],
        vec![("ubuntu", "18"), ("ubuntu", "20.5"), ("ubuntu", "22")],
        vec![("ubuntu", "18"), ("windows", "18")],
        vec![("windows", "20.5")],
        vec![
            ("ubuntu", "18"),
            ("ubuntu", "22"),
            ("windows", "18"),
            ("windows", "22"),
        ],
        vec![("ubuntu", "22"), ("windows", "22")],
        vec![],
    ];
    for (filters, want) in rows.into_iter().zip(expected) {
        let filters: Vec<(String, String)> = filters
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let got: Vec<(String, String)> = filter_matrix(combos.clone(), &filters)
            .iter()
            .map(|c| {
                let show = |v: &Value| match v {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    other => format!("{other:?}"),
                };
                (show(&c["os"]), show(&c["node"]))
            })
            .collect();
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(got, want, "{filters:?}");
    }
}

#[test]
fn job_order_is_topological_and_stable_by_file_order() {
    let cases: &[(&str, &[&str])] = &[
        ("a: []\nb: []\nc: []", &["a", "b", "c"]),
        (
            "deploy: [test, lint]\ntest: [build]\nlint: []\nbuild: []",
            &["lint", "build", "test", "deploy"],
        ),
        ("z: [y]\ny: [x]\nx: []", &["x", "y", "z"]),
        ("a: [c]\nb: []\nc: []\nd: [a, b]", &["b", "c", "a", "d"]),
    ];
    for (spec, want) in cases {
        let mut yaml = String::from("on: push\njobs:\n");
        for line in spec.lines() {
            let (id, needs) = line.split_once(": ").expect("spec line");
            yaml.push_str(&format!(
                "  {id}:\n    needs: {needs}\n    runs-on: x\n    steps: [{{run: echo}}]\n"
            ));
        }
        let wf = load_ok(&yaml);
        assert_eq!(job_order(&wf), *want, "{spec}");
    }
}
