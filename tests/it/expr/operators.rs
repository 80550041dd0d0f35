//! Every operator across every pair of value kinds: one grid row per left operand, one
//! cell per right operand (`T`/`F`). Operands: null, true, false, 0, 2, NaN, '', '2', 'abc',
//! an object and an array from the contexts (each equal only to itself).

use super::eval;

const OPERANDS: [&str; 11] = [
    "null", "true", "false", "0", "2", "NaN", "''", "'2'", "'abc'", "objs.x", "nums",
];

/// `left == right`
const EQ: [(&str, &str); 11] = [
    ("null", "T F T T F F T F F F F"),
    ("true", "F T F F F F F F F F F"),
    ("false", "T F T T F F T F F F F"),
    ("0", "T F T T F F T F F F F"),
    ("2", "F F F F T F F T F F F"),
    ("NaN", "F F F F F F F F F F F"),
    ("''", "T F T T F F T F F F F"),
    ("'2'", "F F F F T F F T F F F"),
    ("'abc'", "F F F F F F F F T F F"),
    ("objs.x", "F F F F F F F F F T F"),
    ("nums", "F F F F F F F F F F T"),
];

/// `left != right`
const NE: [(&str, &str); 11] = [
    ("null", "F T F F T T F T T T T"),
    ("true", "T F T T T T T T T T T"),
    ("false", "F T F F T T F T T T T"),
    ("0", "F T F F T T F T T T T"),
    ("2", "T T T T F T T F T T T"),
    ("NaN", "T T T T T T T T T T T"),
    ("''", "F T F F T T F T T T T"),
    ("'2'", "T T T T F T T F T T T"),
    ("'abc'", "T T T T T T T T F T T"),
    ("objs.x", "T T T T T T T T T F T"),
    ("nums", "T T T T T T T T T T F"),
];

/// `left < right`
const LT: [(&str, &str); 11] = [
    ("null", "F T F F T F F T F F F"),
    ("true", "F F F F T F F T F F F"),
    ("false", "F T F F T F F T F F F"),
    ("0", "F T F F T F F T F F F"),
    ("2", "F F F F F F F F F F F"),
    ("NaN", "F F F F F F F F F F F"),
    ("''", "F T F F T F F T T F F"),
    ("'2'", "F F F F F F F F T F F"),
    ("'abc'", "F F F F F F F F F F F"),
    ("objs.x", "F F F F F F F F F F F"),
    ("nums", "F F F F F F F F F F F"),
];

/// `left <= right`
const LE: [(&str, &str); 11] = [
    ("null", "T T T T T F T T F F F"),
    ("true", "F T F F T F F T F F F"),
    ("false", "T T T T T F T T F F F"),
    ("0", "T T T T T F T T F F F"),
    ("2", "F F F F T F F T F F F"),
    ("NaN", "F F F F F F F F F F F"),
    ("''", "T T T T T F T T T F F"),
    ("'2'", "F F F F T F F T T F F"),
    ("'abc'", "F F F F F F F F T F F"),
    ("objs.x", "F F F F F F F F F T F"),
    ("nums", "F F F F F F F F F F T"),
];

/// `left > right`
const GT: [(&str, &str); 11] = [
    ("null", "F F F F F F F F F F F"),
    ("true", "T F T T F F T F F F F"),
    ("false", "F F F F F F F F F F F"),
    ("0", "F F F F F F F F F F F"),
    ("2", "T T T T F F T F F F F"),
    ("NaN", "F F F F F F F F F F F"),
    ("''", "F F F F F F F F F F F"),
    ("'2'", "T T T T F F T F F F F"),
    ("'abc'", "F F F F F F T T F F F"),
    ("objs.x", "F F F F F F F F F F F"),
    ("nums", "F F F F F F F F F F F"),
];

/// `left >= right`
const GE: [(&str, &str); 11] = [
    ("null", "T F T T F F T F F F F"),
    ("true", "T T T T F F T F F F F"),
    ("false", "T F T T F F T F F F F"),
    ("0", "T F T T F F T F F F F"),
    ("2", "T T T T T F T T F F F"),
    ("NaN", "F F F F F F F F F F F"),
    ("''", "T F T T F F T F F F F"),
    ("'2'", "T T T T T F T T F F F"),
    ("'abc'", "F F F F F F T T T F F"),
    ("objs.x", "F F F F F F F F F T F"),
    ("nums", "F F F F F F F F F F T"),
];

/// Truthiness of each operand (`!!x`), in `OPERANDS` order.
const TRUTHY: &str = "F T F F T F F T T T T";
fn cells(row: &str) -> Vec<bool> {
    row.split(' ').map(|c| c == "T").collect()
}

fn check_grid(op: &str, grid: &[(&str, &str); 11]) -> Vec<String> {
    let mut failures = Vec::new();
    for (left, row) in grid {
        for (right, want) in OPERANDS.iter().zip(cells(row)) {
            let source = format!("{left} {op} {right}");
            match eval(&source) {
                Ok(runner::expr::Value::Bool(got)) if got == want => {}
                other => failures.push(format!("{source}: got {other:?}, want {want}")),
            }
        }
    }
    failures
}

#[test]
fn comparison_grids() {
    let mut failures = Vec::new();
    for (op, grid) in [
        ("==", &EQ),
        ("!=", &NE),
        ("<", &LT),
        ("<=", &LE),
        (">", &GT),
        (">=", &GE),
    ] {
        failures.extend(check_grid(op, grid));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn not_operator() {
    for (operand, truthy) in OPERANDS.iter().zip(cells(TRUTHY)) {
        let got = eval(&format!("!{operand}")).expect("evaluates");
        assert_eq!(got, runner::expr::Value::Bool(!truthy), "!{operand}");
    }
}

/// `&&` yields the left operand when it is falsy, else the right; `||` the left when truthy.
#[test]
fn and_or_return_an_operand() {
    for (left, left_truthy) in OPERANDS.iter().zip(cells(TRUTHY)) {
        let left_value = eval(left).expect("operand evaluates").to_json();
        for right in OPERANDS {
            let right_value = eval(right).expect("operand evaluates").to_json();
            let and = eval(&format!("{left} && {right}"))
                .expect("&& evaluates")
                .to_json();
            let or = eval(&format!("{left} || {right}"))
                .expect("|| evaluates")
                .to_json();
            let (want_and, want_or) = if left_truthy {
                (&right_value, &left_value)
            } else {
                (&left_value, &right_value)
            };
            assert_eq!(&and, want_and, "{left} && {right}");
            assert_eq!(&or, want_or, "{left} || {right}");
        }
    }
}
