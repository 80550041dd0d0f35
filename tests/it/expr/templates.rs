//! Templates (`${{ }}` / `$<< >>`), `if:` conditions, and printing expressions back.

use runner::expr::{ExprKind, TemplatePart, parse, parse_condition, parse_template};

use super::{JobStatus, TestHost};

/// (template, expected value as JSON).
const TEMPLATES: &[(&str, &str)] = &[
    ("plain text", r#""plain text""#),
    ("", r#""""#),
    ("${{ 1 }}", r#"1"#),
    ("${{ nums }}", r#"[3, 1, 2]"#),
    ("${{ null }}", r#"null"#),
    ("${{github.event.number}}", r#"42"#),
    (" ${{ 1 }}", r#"" 1""#),
    (
        "npm-${{ matrix.os }}-${{ hashFiles('**/package-lock.json') }}",
        r#""npm-ubuntu-latest-hash[**/package-lock.json]""#,
    ),
    ("${{ 1e15 }}-x", r#""1E+15-x""#),
    ("${{ null }}-${{ true }}", r#""-true""#),
    ("${{ nums }} and ${{ objs }}", r#""Array and Object""#),
    ("${{ '}}' }}", r#""}}""#),
    ("${{ 'a' }}${{ 'b' }}", r#""ab""#),
    ("$<< matrix.os >>", r#""ubuntu-latest""#),
    ("a $<< 1 >> b ${{ 2 }} c", r#""a 1 b 2 c""#),
    ("${{ '${{ x }}' }}", r#""${{ x }}""#),
    ("${{ 1 }}}", r#""1}""#),
    ("${{ format('{0}', 'x') }}", r#""x""#),
    ("${{ 'it''s' }} ok", r#""it's ok""#),
    ("{{ not an expression }}", r#""{{ not an expression }}""#),
    ("$ {{ x }}", r#""$ {{ x }}""#),
    ("$<< 2 > 1 >>", r#"true"#),
    ("$<< 2 >= 1 >>", r#"true"#),
    ("line1\n${{ env.NAME }}\nline3", r#""line1\nValue\nline3""#),
];

#[test]
fn template_table() {
    let host = TestHost::new();
    for (source, expected) in TEMPLATES {
        let expected: serde_json::Value = serde_json::from_str(expected).expect("row is JSON");
        let template = parse_template(source).unwrap_or_else(|e| panic!("{source:?}: {e}"));
        let value = template
            .evaluate(&host)
            .unwrap_or_else(|e| panic!("{source:?}: {e}"));
        assert_eq!(value.to_json(), expected, "{source:?}");
        let rendered = template.render(&host).expect("renders");
        assert_eq!(rendered, value.to_display_string(), "{source:?}");
    }
}

#[test]
fn literal_templates() {
    for (source, literal) in [
        ("plain", Some("plain")),
        ("${{ 'x' }}", Some("x")),
        ("", Some("")),
        ("${{ x }}", None),
        ("a ${{ 'x' }}", None),
    ] {
        let t = parse_template(source).expect("parses");
        assert_eq!(t.is_literal(), literal.is_some(), "{source:?}");
        assert_eq!(t.literal().as_deref(), literal, "{source:?}");
    }
}

#[test]
fn template_expression_spans_are_relative_to_the_template() {
    let t = parse_template("ab ${{ github.ref }}").expect("parses");
    match t.parts.as_slice() {
        [TemplatePart::Literal(a), TemplatePart::Expr(e)] => {
            assert_eq!(a, "ab ");
            assert_eq!((e.span.start, e.span.end), (7, 17));
        }
        other => panic!("unexpected parts {other:?}"),
    }
}

/// (template, column, part of the message).
const TEMPLATE_ERRORS: &[(&str, usize, &str)] = &[
    (
        "${{ 1 ",
        1,
        "the expression is not closed: expected '}}' to match '${{'",
    ),
    (
        "x ${{ }}",
        3,
        "expected an expression between '${{' and '}}'",
    ),
    ("ab ${{ 1 == }}", 12, "unexpected end of expression"),
    ("${{ foo() }}", 5, "unrecognized function 'foo'"),
    ("$<< 1 ", 1, "expected '>>' to match '$<<'"),
    ("ok ${{ 'unterminated }}", 4, "the expression is not closed"),
    ("é ${{ a b }}", 9, "unexpected 'b'"),
    ("${{ 1 }} ${{ (2 }}", 16, "expected ')'"),
];

#[test]
fn template_errors() {
    for (source, column, want) in TEMPLATE_ERRORS {
        let err = parse_template(source).expect_err(source);
        assert!(
            err.column == *column && err.message.contains(want),
            "{source:?}: got {} {:?}",
            err.column,
            err.message
        );
    }
}

/// (condition, how it prints after parsing, value on success, on failure).
const CONDITIONS: &[(&str, &str, bool, bool)] = &[
    ("", "success()", true, false),
    ("   ", "success()", true, false),
    (
        "github.event_name == 'push'",
        "success() && github.event_name == 'push'",
        true,
        false,
    ),
    (
        "${{ github.event_name == 'push' }}",
        "success() && github.event_name == 'push'",
        true,
        false,
    ),
    ("  ${{ always() }}  ", "always()", true, true),
    ("always()", "always()", true, true),
    ("failure()", "failure()", false, true),
    (
        "failure() || github.event_name == 'push'",
        "failure() || github.event_name == 'push'",
        true,
        true,
    ),
    ("!cancelled()", "!cancelled()", true, true),
    ("Success() && true", "Success() && true", true, false),
    (
        "github.event.draft || env.NAME",
        "success() && (github.event.draft || env.NAME)",
        true,
        false,
    ),
    (
        "env.NAME && env.NUM",
        "success() && env.NAME && env.NUM",
        true,
        false,
    ),
    ("env.EMPTY", "success() && env.EMPTY", false, false),
    (
        "${{ matrix.os }}-x",
        "success() && format('{0}-x', matrix.os)",
        true,
        false,
    ),
    ("$<< failure() >>", "failure()", false, true),
    (
        "${{ 'github.event_name' }}",
        "success() && github.event_name",
        true,
        false,
    ),
    (
        "contains(github.ref, 'main') && always()",
        "contains(github.ref, 'main') && always()",
        true,
        true,
    ),
];

#[test]
fn condition_table() {
    for (source, printed, on_success, on_failure) in CONDITIONS {
        let expr = parse_condition(source).unwrap_or_else(|e| panic!("{source:?}: {e}"));
        assert_eq!(expr.to_string(), *printed, "{source:?}");
        for (status, want) in [
            (JobStatus::Success, on_success),
            (JobStatus::Failure, on_failure),
        ] {
            let value =
                runner::expr::evaluate(&expr, &TestHost::with_status(status)).expect("evaluates");
            assert_eq!(value.is_truthy(), *want, "{source:?} when {status:?}");
        }
    }
}

#[test]
fn condition_errors_point_into_the_given_string() {
    let err = parse_condition("  github.event_name ==").expect_err("dangling ==");
    assert_eq!(err.column, 23);
    let err = parse_condition("${{ 1 == }}").expect_err("dangling ==");
    assert_eq!(err.column, 9);
    let err = parse_condition("${{ 1 ").expect_err("not closed");
    assert!(err.message.contains("not closed"), "{}", err.message);
}

/// (source, how Display prints it).
const DISPLAY: &[(&str, &str)] = &[
    ("a.b['c'].*[*]", "a.b['c'].*[*]"),
    ("!(a == b)", "!(a == b)"),
    ("(a || b) && c", "(a || b) && c"),
    ("a || b && c", "a || b && c"),
    ("(a && b) && c", "a && b && c"),
    ("a && (b && c)", "a && b && c"),
    ("a == (b == c)", "a == (b == c)"),
    ("(a == b) == c", "a == b == c"),
    ("a < b == c > d", "a < b == c > d"),
    ("(a == b) < c", "(a == b) < c"),
    ("'it''s'", "'it''s'"),
    ("1e15", "1E+15"),
    ("0x1F", "31"),
    ("-0", "-0.0"),
    ("0.1", "0.1"),
    ("1.0000000000000002", "1.0000000000000002"),
    ("NaN", "NaN"),
    ("-Infinity", "-Infinity"),
    ("CONTAINS( a , 'x' )", "CONTAINS(a, 'x')"),
    ("('abc')[0]", "('abc')[0]"),
    ("(a)", "a"),
    ("!!a", "!!a"),
    ("!a.b", "!a.b"),
    ("(!a).b", "(!a).b"),
    ("fromJSON('[]')[0]", "fromJSON('[]')[0]"),
    ("a['b c']", "a['b c']"),
    ("needs.my-job.outputs.x", "needs.my-job.outputs.x"),
    ("a.true.null", "a.true.null"),
];

#[test]
fn display_prints_source_that_parses_back() {
    for (source, printed) in DISPLAY {
        let expr = parse(source).unwrap_or_else(|e| panic!("{source:?}: {e}"));
        assert_eq!(expr.to_string(), *printed, "{source:?}");
        let again = parse(printed).unwrap_or_else(|e| panic!("{printed:?}: {e}"));
        assert!(
            again.same_ast(&expr),
            "{source:?} → {printed:?} parses differently"
        );
    }
}

#[test]
fn spans_cover_each_node() {
    let source = "contains(github.ref, 'main') && (a.b || !c)";
    let expr = parse(source).expect("parses");
    let ExprKind::And(items) = &expr.kind else {
        panic!("not an And: {expr:?}")
    };
    let text = |e: &runner::expr::Expr| &source[e.span.start..e.span.end];
    assert_eq!(text(&expr), source);
    assert_eq!(text(&items[0]), "contains(github.ref, 'main')");
    assert_eq!(text(&items[1]), "(a.b || !c)");
    let ExprKind::Or(inner) = &items[1].kind else {
        panic!("not an Or")
    };
    assert_eq!(text(&inner[0]), "a.b");
    assert_eq!(text(&inner[1]), "!c");
}

#[test]
fn long_templates_with_many_parts() {
    let source = "x${{ 1 }}".repeat(20_000);
    let t = parse_template(&source).expect("parses");
    assert_eq!(t.parts.len(), 40_000);
    let rendered = t.render(&TestHost::new()).expect("renders");
    assert_eq!(rendered, "x1".repeat(20_000));
}

#[test]
fn contexts_lists_every_named_context() {
    let expr = parse("github.ref == 'x' || contains(env.A, matrix['os']) && !steps.*.outcome")
        .expect("parses");
    let names: Vec<&str> = expr.contexts().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["github", "env", "matrix", "steps"]);
}

#[test]
fn parse_error_line_and_column_in_multi_line_sources() {
    let source = "github.event_name == 'push'\n  && contains(env.X)";
    let err = parse(source).expect_err("contains needs two arguments");
    assert_eq!(err.line_and_column(source), (2, 6));
    assert_eq!(err.column, 34);
}
