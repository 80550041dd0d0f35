//! Syntax errors: one row per case with the 1-based column and what the message says.

use runner::expr::parse;

/// (expression, column, part of the message).
const SYNTAX_ERRORS: &[(&str, usize, &str)] = &[
    (
        "1 2",
        3,
        "unexpected '2': expected an operator or end of expression",
    ),
    ("github.*.", 10, "expected a property name or '*' after '.'"),
    (
        "1 ==",
        5,
        "unexpected end of expression: expected an expression",
    ),
    ("(1", 3, "unexpected end of expression: expected ')'"),
    (
        "1)",
        2,
        "unexpected ')': expected an operator or end of expression",
    ),
    (
        "()",
        2,
        "unexpected ')': expected an expression inside '()'",
    ),
    (
        "a b",
        3,
        "unexpected 'b': expected an operator or end of expression",
    ),
    ("1 = 2", 3, "unexpected symbol '=': expected an operator"),
    ("1 & 2", 3, "unexpected symbol '&'"),
    ("1 | 2", 3, "unexpected symbol '|'"),
    (
        "1 === 2",
        5,
        "unexpected symbol '=': expected an expression",
    ),
    ("'abc", 1, "unexpected symbol ''abc'"),
    ("abc'", 1, "unexpected symbol 'abc''"),
    (
        "foo()",
        1,
        "unrecognized function 'foo': expected one of contains",
    ),
    ("x && bar(1)", 6, "unrecognized function 'bar'"),
    (
        "contains('a')",
        1,
        "too few arguments for contains(): expected 2, found 1",
    ),
    (
        "contains('a', 'b', 'c')",
        1,
        "too many arguments for contains(): expected 2, found 3",
    ),
    (
        "success(1)",
        1,
        "too many arguments for success(): expected 0, found 1",
    ),
    (
        "toJSON()",
        1,
        "too few arguments for toJSON(): expected 1, found 0",
    ),
    (
        "join()",
        1,
        "too few arguments for join(): expected 1 to 2, found 0",
    ),
    (
        "join(1, 2, 3)",
        1,
        "too many arguments for join(): expected 1 to 2, found 3",
    ),
    (
        "format()",
        1,
        "too few arguments for format(): expected at least 1, found 0",
    ),
    (
        "hashFiles()",
        1,
        "too few arguments for hashFiles(): expected at least 1",
    ),
    (
        "case(true, 1)",
        1,
        "too few arguments for case(): expected at least 3, found 2",
    ),
    (
        "case(true, 1, false, 2)",
        1,
        "case() needs an odd number of arguments, found 4",
    ),
    (
        "contains('a', 'b',)",
        19,
        "unexpected ')': expected an argument of contains()",
    ),
    (
        "contains(, 'b')",
        10,
        "unexpected ',': expected an argument of contains()",
    ),
    (
        "contains('a' 'b')",
        14,
        "unexpected ''b'': expected ',' or ')' in the call to contains()",
    ),
    (
        "contains('a', 'b'",
        18,
        "unexpected end of expression: expected ',' or ')'",
    ),
    (
        "a.",
        3,
        "unexpected end of expression: expected a property name or '*' after '.'",
    ),
    (
        "a.1",
        3,
        "unexpected '1': expected a property name or '*' after '.'",
    ),
    (
        "a[",
        3,
        "unexpected end of expression: expected an expression",
    ),
    ("a[]", 3, "unexpected ']': expected an index expression"),
    ("a[1", 4, "unexpected end of expression: expected ']'"),
    ("a[1,2]", 4, "unexpected ',': expected ']'"),
    (
        "'abc'.length",
        6,
        "unexpected '.': expected an operator or end of expression",
    ),
    (
        "'abc'[0]",
        6,
        "unexpected '[': expected an operator or end of expression",
    ),
    (
        "1.2.3",
        1,
        "unexpected symbol '1.2.3': expected an expression",
    ),
    ("-a", 1, "unexpected symbol '-a'"),
    (
        "1 -1",
        3,
        "unexpected '-1': expected an operator or end of expression",
    ),
    ("*", 1, "'*' is only allowed after '.' or '['"),
    (
        "a.b(1)",
        4,
        "unexpected '(': expected an operator or end of expression",
    ),
    ("true()", 5, "unexpected '('"),
    (
        "!",
        2,
        "unexpected end of expression: expected an expression",
    ),
    (
        "a !b",
        3,
        "unexpected '!': expected an operator or end of expression",
    ),
    ("a == == b", 6, "unexpected '==': expected an expression"),
    ("a && || b", 6, "unexpected '||': expected an expression"),
    ("$foo", 1, "unexpected symbol '$foo'"),
    (
        "a.*b",
        4,
        "unexpected 'b': expected an operator or end of expression",
    ),
    ("a[*", 4, "unexpected end of expression: expected ']'"),
    ("a[* == 1]", 5, "unexpected '==': expected ']'"),
    ("(1 == 1))", 9, "unexpected ')'"),
    (
        "github.event.",
        14,
        "expected a property name or '*' after '.'",
    ),
    ("é", 1, "unexpected symbol 'é'"),
    ("'é' == x y", 10, "unexpected 'y'"),
    ("0x", 1, "unexpected symbol '0x'"),
    ("1e", 1, "unexpected symbol '1e'"),
    ("0X1F", 1, "unexpected symbol '0X1F'"),
    (
        "fromJSON('{}').",
        16,
        "expected a property name or '*' after '.'",
    ),
    ("a ? b : c", 3, "unexpected symbol '?'"),
    ("a + b", 3, "unexpected symbol '+'"),
    ("a+b", 1, "unexpected symbol 'a+b'"),
    ("\"text\"", 1, "unexpected symbol '\"text\"'"),
];

#[test]
fn syntax_error_table() {
    let mut failures = Vec::new();
    for (source, column, want) in SYNTAX_ERRORS {
        match parse(source) {
            Ok(e) => failures.push(format!("{source:?}: parsed as {e}")),
            Err(e) if e.column == *column && e.message.contains(want) => {
                let prefix_chars = source.get(..e.offset).map(|p| p.chars().count());
                if prefix_chars != Some(column - 1) {
                    failures.push(format!(
                        "{source:?}: offset {} does not match column {column}",
                        e.offset
                    ));
                }
            }
            Err(e) => failures.push(format!(
                "{source:?}: got column {} {:?}, want column {column} {want:?}",
                e.column, e.message
            )),
        }
    }
    assert!(SYNTAX_ERRORS.len() >= 40);
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        SYNTAX_ERRORS.len(),
        failures.join("\n")
    );
}

#[test]
fn length_limit_is_21000() {
    let ok = format!("'{}'", "x".repeat(20_998));
    assert_eq!(ok.len(), 21_000);
    assert!(parse(&ok).is_ok());
    let too_long = format!("'{}'", "x".repeat(20_999));
    let err = parse(&too_long).expect_err("21001 characters");
    assert_eq!(
        (err.column, err.message.as_str()),
        (1, "exceeded max expression length 21000")
    );
}

#[test]
fn depth_limit_is_50() {
    // A leaf under 49 operators is at depth 50: allowed; one more is not.
    let ok = format!("{}true", "!".repeat(49));
    assert!(parse(&ok).is_ok(), "49 nots");
    let err = parse(&format!("{}true", "!".repeat(50))).expect_err("50 nots");
    assert_eq!(
        (err.column, err.message.as_str()),
        (1, "exceeded max expression depth 50")
    );

    let ok = format!("github{}", ".a".repeat(49));
    assert!(parse(&ok).is_ok(), "49 dereferences");
    let err = parse(&format!("github{}", ".a".repeat(50))).expect_err("50 dereferences");
    assert_eq!(err.message, "exceeded max expression depth 50");

    // `==` (like every comparison) is a binary node, so a chain nests to the left in the
    // runner: n operands are n levels deep.
    let ok = vec!["1"; 50].join(" == ");
    assert!(parse(&ok).is_ok(), "50 operands of ==");
    let err = parse(&vec!["1"; 51].join(" == ")).expect_err("51 operands of ==");
    assert_eq!(err.message, "exceeded max expression depth 50");
    // `&&` chains are flattened as the runner does, so they are wide, not deep.
    let wide = vec!["true"; 500].join(" && ");
    assert!(parse(&wide).is_ok());
    // Redundant parentheses are not nodes.
    let grouped = format!("{}1{}", "(".repeat(60), ")".repeat(60));
    assert!(parse(&grouped).is_ok());
    let err =
        parse(&format!("{}1{}", "(".repeat(5000), ")".repeat(5000))).expect_err("5000 parens");
    assert!(
        err.message.contains("exceeded max expression depth"),
        "{}",
        err.message
    );
}

#[test]
fn errors_in_a_longer_source_keep_exact_columns() {
    // Multi-byte characters before the error: the column counts characters, the offset bytes.
    let err = parse("'ünïcödé' == github.event.").expect_err("dangling dot");
    assert_eq!(err.column, 27);
    assert_eq!(err.offset, "'ünïcödé' == github.event.".len());
}
