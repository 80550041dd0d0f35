//! Templates (`${{ }}` / `$<< >>` inside strings) and `if:` conditions.

use super::ast::{Expr, ExprKind, Function, Index};
use super::parser::{MAX_DEPTH, error_at, parse_expression};
use super::{ParseError, Span, Template};

/// One piece of a [`Template`].
#[derive(Debug, Clone, PartialEq)]
pub enum TemplatePart {
    /// Text copied as is.
    Literal(String),
    /// An expression whose value is substituted (spans are relative to the template source).
    Expr(Expr),
}

const OPENERS: [(&str, u8); 2] = [("${{", b'}'), ("$<<", b'>')];

/// Moves every span of `expr` right by `by` bytes.
fn shift(expr: &mut Expr, by: usize) {
    expr.span.start += by;
    expr.span.end += by;
    match &mut expr.kind {
        ExprKind::Index { target, index } => {
            shift(target, by);
            if let Index::Expr(e) = index {
                shift(e, by);
            }
        }
        ExprKind::Call { args, .. } | ExprKind::And(args) | ExprKind::Or(args) => {
            args.iter_mut().for_each(|a| shift(a, by));
        }
        ExprKind::Not(e) => shift(e, by),
        ExprKind::Compare { left, right, .. } => {
            shift(left, by);
            shift(right, by);
        }
        _ => {}
    }
}

/// Parses the expression at `source[start..end]` (trimmed), reporting errors and spans
/// relative to `source`.
fn parse_slice(source: &str, start: usize, end: usize) -> Result<Expr, ParseError> {
    let inner = &source[start..end];
    let lead = inner.len() - inner.trim_start().len();
    let trimmed = inner.trim();
    let base = start + lead;
    let mut expr =
        parse_expression(trimmed).map_err(|e| error_at(source, base + e.offset, e.message))?;
    shift(&mut expr, base);
    Ok(expr)
}

pub(crate) fn parse_template(source: &str) -> Result<Template, ParseError> {
    let bytes = source.as_bytes();
    let mut parts: Vec<TemplatePart> = Vec::new();
    let mut literal = String::new();
    let mut i = 0;
    // Cached next position of each opener (`usize::MAX`: none left).
    let mut next_at: [Option<usize>; 2] = [None, None];
    while i < source.len() {
        // Each opener's next position is searched again only once we have passed it, so long
        // templates with many parts stay linear.
        for (slot, (open, _)) in next_at.iter_mut().zip(OPENERS) {
            if slot.is_none_or(|p| p < i) {
                *slot = Some(source[i..].find(open).map_or(usize::MAX, |p| i + p));
            }
        }
        let next = next_at
            .iter()
            .zip(OPENERS)
            .filter_map(|(p, (open, close))| {
                p.filter(|&p| p != usize::MAX).map(|p| (p, open, close))
            })
            .min_by_key(|(p, _, _)| *p);
        let Some((start, open, close)) = next else {
            literal.push_str(&source[i..]);
            break;
        };
        literal.push_str(&source[i..start]);
        // Find the closing pair outside string literals ('' toggles twice, so escapes work).
        let mut in_string = false;
        let mut end = None;
        let mut j = start + open.len();
        while j < bytes.len() {
            if bytes[j] == b'\'' {
                in_string = !in_string;
            } else if !in_string && bytes[j] == close && bytes[j - 1] == close {
                end = Some(j);
                break;
            }
            j += 1;
        }
        let closer = if close == b'}' { "}}" } else { ">>" };
        let Some(end) = end else {
            return Err(error_at(
                source,
                start,
                format!("the expression is not closed: expected '{closer}' to match '{open}'"),
            ));
        };
        let inner_start = start + open.len();
        let inner_end = end - 1;
        if source[inner_start..inner_end].trim().is_empty() {
            return Err(error_at(
                source,
                start,
                format!("expected an expression between '{open}' and '{closer}'"),
            ));
        }
        let expr = parse_slice(source, inner_start, inner_end)?;
        if !literal.is_empty() {
            parts.push(TemplatePart::Literal(std::mem::take(&mut literal)));
        }
        parts.push(TemplatePart::Expr(expr));
        i = end + 1;
    }
    if !literal.is_empty() {
        parts.push(TemplatePart::Literal(literal));
    }
    // `${{ '...' }}` alone is how one writes a literal that contains `${{`.
    if let [
        TemplatePart::Expr(Expr {
            kind: ExprKind::String(s),
            ..
        }),
    ] = parts.as_slice()
    {
        parts = vec![TemplatePart::Literal(s.clone())];
    }
    Ok(Template {
        source: source.to_string(),
        parts,
    })
}

fn success_call(at: usize) -> Expr {
    Expr {
        kind: ExprKind::Call {
            function: Function::Success,
            name: "success".to_string(),
            args: Vec::new(),
        },
        span: Span { start: at, end: at },
    }
}

pub(crate) fn parse_condition(source: &str) -> Result<Expr, ParseError> {
    let lead = source.len() - source.trim_start().len();
    let trimmed = source.trim();
    if trimmed.is_empty() {
        return Ok(success_call(lead));
    }
    let expr = if OPENERS.iter().any(|(open, _)| trimmed.contains(open)) {
        let template =
            parse_template(trimmed).map_err(|e| error_at(source, lead + e.offset, e.message))?;
        let whole = Span {
            start: lead,
            end: lead + trimmed.len(),
        };
        match template.parts.as_slice() {
            [TemplatePart::Expr(e)] => {
                let mut e = e.clone();
                shift(&mut e, lead);
                e
            }
            // `${{ 'text' }}` becomes the literal text, which the runner then parses as the
            // condition itself.
            [TemplatePart::Literal(text)]
                if trimmed.starts_with(OPENERS[0].0) || trimmed.starts_with(OPENERS[1].0) =>
            {
                parse_expression(text).map_err(|e| error_at(source, lead, e.message))?
            }
            parts => {
                // Text around expressions: the condition is the string `format()` builds.
                let mut fmt = String::new();
                let mut args = Vec::new();
                for part in parts {
                    match part {
                        TemplatePart::Literal(s) => {
                            fmt.push_str(&s.replace('{', "{{").replace('}', "}}"))
                        }
                        TemplatePart::Expr(e) => {
                            fmt.push_str(&format!("{{{}}}", args.len()));
                            let mut e = e.clone();
                            shift(&mut e, lead);
                            args.push(e);
                        }
                    }
                }
                args.insert(
                    0,
                    Expr {
                        kind: ExprKind::String(fmt),
                        span: whole,
                    },
                );
                Expr {
                    kind: ExprKind::Call {
                        function: Function::Format,
                        name: "format".to_string(),
                        args,
                    },
                    span: whole,
                }
            }
        }
    } else {
        parse_expression(source)?
    };
    if expr.uses_status_function() {
        return Ok(expr);
    }
    let span = expr.span;
    let mut items = vec![success_call(span.start)];
    match expr.kind {
        ExprKind::And(inner) => items.extend(inner),
        kind => items.push(Expr { kind, span }),
    }
    let wrapped = Expr {
        kind: ExprKind::And(items),
        span,
    };
    if wrapped.depth_capped(MAX_DEPTH + 1) > MAX_DEPTH {
        return Err(error_at(
            source,
            span.start,
            format!("exceeded max expression depth {MAX_DEPTH}"),
        ));
    }
    Ok(wrapped)
}
