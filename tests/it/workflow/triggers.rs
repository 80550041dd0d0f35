//! What GitHub's parser checks in `on:`, `permissions:` and merge keys: one row per accepted or
//! rejected file, with the line, column and message of every error.

use super::load;

/// `(case, workflow text before 'jobs:', expected errors as (line, column, message))`; no errors
/// means the file must load.
type Row = (
    &'static str,
    &'static str,
    &'static [(usize, usize, &'static str)],
);

const JOBS: &str = "jobs:\n  build:\n    runs-on: x\n    steps: [{run: make}]\n";

const ROWS: &[Row] = &[
    ("one event", "on: push\n", &[]),
    (
        "a list of events",
        "on: [push, pull_request, workflow_dispatch]\n",
        &[],
    ),
    (
        "filters as strings and lists",
        "on:\n  push:\n    branches: [main, 'releases/**']\n    tags: v*\n    paths-ignore: ['docs/**']\n  pull_request:\n    types: [opened, synchronize]\n    branches-ignore: [wip]\n",
        &[],
    ),
    (
        "an event with nothing under it",
        "on:\n  push:\n  release:\n",
        &[],
    ),
    (
        "unknown event",
        "on: [push, pul_request]\n",
        &[(
            1,
            12,
            "unknown event 'pul_request' (did you mean 'pull_request'?)",
        )],
    ),
    (
        "filter typo",
        "on:\n  push:\n    path-ignore: [docs]\n",
        &[(
            3,
            5,
            "unknown key 'path-ignore' in 'on.push' (did you mean 'paths-ignore'?)",
        )],
    ),
    (
        "tags are not a pull_request filter",
        "on:\n  pull_request:\n    tags: [v1]\n",
        &[(3, 5, "unknown key 'tags' in 'on.pull_request'")],
    ),
    (
        "branches and branches-ignore together",
        "on:\n  push:\n    branches: [main]\n    branches-ignore: [wip]\n",
        &[(
            4,
            5,
            "you may only define one of 'branches' and 'branches-ignore' for a single event",
        )],
    ),
    (
        "paths and paths-ignore together",
        "on:\n  pull_request:\n    paths: [src]\n    paths-ignore: [docs]\n",
        &[(
            4,
            5,
            "you may only define one of 'paths' and 'paths-ignore' for a single event",
        )],
    ),
    (
        "unknown activity type",
        "on:\n  pull_request:\n    types: [opened, merged]\n",
        &[(
            3,
            21,
            "unknown activity type 'merged' for 'pull_request' (one of: …",
        )],
    ),
    (
        "a filter must be strings",
        "on:\n  push:\n    branches: {main: true}\n",
        &[(
            3,
            15,
            "'branches' of 'on.push' must be a non-empty string or a list of them, found a mapping",
        )],
    ),
    (
        "an event without settings",
        "on:\n  fork:\n    types: [created]\n",
        &[(3, 5, "'fork' takes no settings, found a mapping")],
    ),
    (
        "schedule",
        "on:\n  schedule:\n    - cron: '30 5,17 * * 1-5'\n    - cron: '0 0 1 JAN *'\n",
        &[],
    ),
    (
        "schedule is a list",
        "on:\n  schedule:\n    cron: '0 0 * * *'\n",
        &[(
            3,
            5,
            "'schedule' must be a list of '- cron: ...' entries, found a mapping",
        )],
    ),
    (
        "cron with four fields",
        "on:\n  schedule:\n    - cron: '0 0 * *'\n",
        &[(
            3,
            14,
            "invalid cron expression '0 0 * *': expected 5 fields (minute hour day-of-month month day-of-week), found 4",
        )],
    ),
    (
        "cron out of range",
        "on:\n  schedule:\n    - cron: '0 24 * * *'\n",
        &[(
            3,
            14,
            "invalid cron expression '0 24 * * *': hour 24 is out of range 0-23",
        )],
    ),
    (
        "schedule entry typo",
        "on:\n  schedule:\n    - crom: '0 0 * * *'\n",
        &[
            (
                3,
                7,
                "unknown key 'crom' in a 'schedule' entry (did you mean 'cron'?)",
            ),
            (3, 7, "a 'schedule' entry needs 'cron'"),
        ],
    ),
    (
        "typed dispatch inputs",
        "on:\n  workflow_dispatch:\n    inputs:\n      level:\n        type: choice\n        options: [info, debug]\n        default: info\n      dry:\n        type: boolean\n        default: false\n      count:\n        type: number\n        default: 3\n      name:\n        default: world\n      target:\n        type: environment\n",
        &[],
    ),
    (
        "choice default not an option",
        "on:\n  workflow_dispatch:\n    inputs:\n      level:\n        type: choice\n        options: [info, debug]\n        default: trace\n",
        &[(
            7,
            18,
            "the default 'trace' of input 'level' is not one of its options (info, debug)",
        )],
    ),
    (
        "boolean default not a boolean",
        "on:\n  workflow_dispatch:\n    inputs:\n      dry:\n        type: boolean\n        default: 'yes'\n",
        &[(
            6,
            19,
            "the default of boolean input 'dry' must be true or false, found a string 'yes'",
        )],
    ),
    (
        "number default not a number",
        "on:\n  workflow_dispatch:\n    inputs:\n      n:\n        type: number\n        default: many\n",
        &[(
            6,
            18,
            "the default of number input 'n' must be a number, found a string 'many'",
        )],
    ),
    (
        "unknown input type",
        "on:\n  workflow_dispatch:\n    inputs:\n      n:\n        type: integer\n",
        &[(
            5,
            15,
            "unknown type 'integer' for input 'n' (one of: string, boolean, number, choice, environment)",
        )],
    ),
    (
        "choice without options",
        "on:\n  workflow_dispatch:\n    inputs:\n      level:\n        type: choice\n",
        &[(4, 7, "input 'level' is a choice and needs 'options'")],
    ),
    (
        "workflow_call inputs need a type",
        "on:\n  workflow_call:\n    inputs:\n      n:\n        default: 1\n",
        &[(
            4,
            7,
            "input 'n' needs a 'type' (one of: string, boolean, number)",
        )],
    ),
    (
        "workflow_call has no choice",
        "on:\n  workflow_call:\n    inputs:\n      n:\n        type: choice\n",
        &[(
            5,
            15,
            "unknown type 'choice' for input 'n' (one of: string, boolean, number)",
        )],
    ),
    (
        "workflow_call default may be an expression",
        "on:\n  workflow_call:\n    inputs:\n      n:\n        type: string\n        default: ${{ github.ref }}\n",
        &[],
    ),
    (
        "input key typo",
        "on:\n  workflow_dispatch:\n    inputs:\n      n:\n        defualt: 1\n",
        &[(
            5,
            9,
            "unknown key 'defualt' in input 'n' (did you mean 'default'?)",
        )],
    ),
    (
        "permissions read-all",
        "on: push\npermissions: read-all\n",
        &[],
    ),
    (
        "permissions write-all",
        "on: push\npermissions: write-all\n",
        &[],
    ),
    (
        "permissions none at all",
        "on: push\npermissions: {}\n",
        &[],
    ),
    (
        "permissions per scope",
        "on: push\npermissions:\n  contents: read\n  id-token: write\n  pull-requests: none\n  models: read\n",
        &[],
    ),
    (
        "permissions shorthand typo",
        "on: push\npermissions: read\n",
        &[(
            2,
            14,
            "'permissions' must be read-all, write-all or a mapping of scopes to read, write or none, found a string 'read'",
        )],
    ),
    (
        "permissions unknown scope",
        "on: push\npermissions:\n  content: read\n",
        &[(
            3,
            3,
            "unknown key 'content' in 'permissions' (did you mean 'contents'?)",
        )],
    ),
    (
        "permissions unknown level",
        "on: push\npermissions:\n  contents: admin\n",
        &[(
            3,
            13,
            "permission 'contents' must be read or write or none, found 'admin'",
        )],
    ),
    (
        "id-token cannot be read",
        "on: push\npermissions:\n  id-token: read\n",
        &[(
            3,
            13,
            "permission 'id-token' must be write or none, found 'read'",
        )],
    ),
    (
        "job-level permissions",
        "on: push\njobs:\n  build:\n    runs-on: x\n    permissions:\n      checks: maybe\n    steps: [{run: make}]\n",
        &[(
            6,
            15,
            "permission 'checks' must be read or write or none, found 'maybe'",
        )],
    ),
    (
        "merge keys",
        "on: push\nx-defaults: &d\n  runs-on: x\njobs:\n  build:\n    <<: *d\n    steps: [{run: make}]\n",
        &[
            (
                2,
                1,
                "unknown key 'x-defaults' in the workflow (did you mean 'defaults'?)",
            ),
            (
                6,
                5,
                "Unexpected value '<<' (YAML merge keys are not supported by GitHub)",
            ),
        ],
    ),
];

#[test]
fn on_permissions_and_merge_keys_are_checked_like_github() {
    let mut failures = Vec::new();
    for (case, head, expected) in ROWS {
        let src = if head.contains("\njobs:") {
            head.to_string()
        } else {
            format!("{head}{JOBS}")
        };
        let got: Vec<(usize, usize, String)> = match load(&src) {
            Ok(_) => Vec::new(),
            Err(runner::workflow::WorkflowError::Invalid { errors, .. }) => errors
                .iter()
                .map(|e| (e.line, e.column, e.message.clone()))
                .collect(),
            Err(e) => vec![(0, 0, e.to_string())],
        };
        let matches = got.len() == expected.len()
            && got.iter().zip(expected.iter()).all(|(g, e)| {
                g.0 == e.0
                    && g.1 == e.1
                    && match e.2.strip_suffix('…') {
                        Some(prefix) => g.2.starts_with(prefix),
                        None => g.2 == e.2,
                    }
            });
        if !matches {
            failures.push(format!(
                "{case}:\n  expected {expected:?}\n  got      {got:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
