//! Property tests: printing a tree and parsing it back gives the same tree; no input makes the
//! parser panic.

use proptest::prelude::*;
use runner::expr::{
    CompareOp, Expr, ExprKind, Function, Index, Span, parse, parse_condition, parse_template,
};

use super::TestHost;

fn node(kind: ExprKind) -> Expr {
    Expr {
        kind,
        span: Span::default(),
    }
}

fn ident() -> impl Strategy<Value = String> {
    "[a-zA-Z_][a-zA-Z0-9_-]{0,8}"
}

fn context_name() -> impl Strategy<Value = String> {
    ident().prop_filter("literal keywords are not contexts", |s| {
        !matches!(s.as_str(), "null" | "true" | "false" | "NaN" | "Infinity")
    })
}

fn leaf() -> impl Strategy<Value = Expr> {
    prop_oneof![
        Just(ExprKind::Null),
        any::<bool>().prop_map(ExprKind::Bool),
        any::<f64>().prop_map(ExprKind::Number),
        (-1000i32..1000).prop_map(|n| ExprKind::Number(f64::from(n))),
        any::<String>().prop_map(ExprKind::String),
        "[ -~]{0,12}".prop_map(ExprKind::String),
        context_name().prop_map(ExprKind::Context),
    ]
    .prop_map(node)
}

fn flatten(and: bool, items: Vec<Expr>) -> ExprKind {
    let mut out = Vec::new();
    for e in items {
        match e.kind {
            ExprKind::And(inner) if and => out.extend(inner),
            ExprKind::Or(inner) if !and => out.extend(inner),
            kind => out.push(node(kind)),
        }
    }
    if and {
        ExprKind::And(out)
    } else {
        ExprKind::Or(out)
    }
}

fn call(function: Function, args: Vec<Expr>) -> ExprKind {
    ExprKind::Call {
        function,
        name: function.name().to_string(),
        args,
    }
}

fn tree() -> impl Strategy<Value = Expr> {
    leaf().prop_recursive(6, 64, 4, |inner| {
        let compare = prop_oneof![
            Just(CompareOp::Eq),
            Just(CompareOp::Ne),
            Just(CompareOp::Lt),
            Just(CompareOp::Le),
            Just(CompareOp::Gt),
            Just(CompareOp::Ge),
        ];
        prop_oneof![
            inner.clone().prop_map(|e| node(ExprKind::Not(Box::new(e)))),
            (compare, inner.clone(), inner.clone()).prop_map(|(op, l, r)| node(
                ExprKind::Compare {
                    op,
                    left: Box::new(l),
                    right: Box::new(r),
                }
            )),
            prop::collection::vec(inner.clone(), 2..4).prop_map(|v| node(flatten(true, v))),
            prop::collection::vec(inner.clone(), 2..4).prop_map(|v| node(flatten(false, v))),
            (inner.clone(), ident()).prop_map(|(t, p)| node(ExprKind::Index {
                target: Box::new(t),
                index: Index::Property(p),
            })),
            (inner.clone(), inner.clone()).prop_map(|(t, i)| node(ExprKind::Index {
                target: Box::new(t),
                index: Index::Expr(Box::new(i)),
            })),
            (inner.clone(), any::<bool>()).prop_map(|(t, dot)| node(ExprKind::Index {
                target: Box::new(t),
                index: Index::Wildcard { dot },
            })),
            (inner.clone(), inner.clone())
                .prop_map(|(a, b)| node(call(Function::Contains, vec![a, b]))),
            prop::collection::vec(inner.clone(), 1..4)
                .prop_map(|v| node(call(Function::Format, v))),
            inner
                .clone()
                .prop_map(|a| node(call(Function::ToJson, vec![a]))),
            Just(node(call(Function::Success, Vec::new()))),
            prop::collection::vec(inner, 3..4).prop_map(|v| node(call(Function::Case, v))),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn display_parses_back_to_the_same_tree(expr in tree()) {
        let printed = expr.to_string();
        let parsed = parse(&printed).map_err(|e| TestCaseError::fail(format!("{printed:?}: {e}")))?;
        prop_assert!(parsed.same_ast(&expr), "{printed:?} parsed as {parsed:?}");
    }

    #[test]
    fn arbitrary_text_never_panics(s in any::<String>()) {
        let _ = parse(&s);
        let _ = parse_template(&s);
        let _ = parse_condition(&s);
    }

    #[test]
    fn expression_like_text_round_trips_when_it_parses(s in "[a-c0-9 .,'()\\[\\]*!=<>&|$-]{0,40}|(contains|format|join|toJSON|fromJSON|success)\\([a-c0-9 ,'.()*]{0,20}\\)") {
        if let Ok(expr) = parse(&s) {
            let printed = expr.to_string();
            let again = parse(&printed).map_err(|e| TestCaseError::fail(format!("{s:?} printed as {printed:?}: {e}")))?;
            prop_assert!(again.same_ast(&expr), "{s:?} printed as {printed:?}");
            // Spans stay inside the source.
            prop_assert!(expr.span.end <= s.len());
            let _ = runner::expr::evaluate(&expr, &TestHost::new());
        }
        let _ = parse_template(&format!("x ${{{{ {s} }}}} y $<< {s} >>"));
    }
}
