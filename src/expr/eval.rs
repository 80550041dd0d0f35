//! The evaluator: GitHub's operators, coercions and functions over borrowed context values.

use std::rc::Rc;

use indexmap::IndexMap;

use super::ast::{CompareOp, Expr, ExprKind, Function, Index};
use super::value::{
    cmp_ignore_case, contains_ignore_case, ends_with_ignore_case, eq_ignore_case, format_number,
    parse_number, starts_with_ignore_case,
};
use super::{EvalError, Host, Span, StatusFunction, Value};

/// A value during evaluation. Objects and arrays compare by identity (as in the runner), so we
/// keep borrowed context values borrowed and give every computed collection its own allocation.
#[derive(Debug, Clone)]
enum Val<'h> {
    /// A value inside a host context.
    Ref(&'h Value),
    /// A value computed by the expression.
    Own(Rc<Value>),
    /// The result of a `*` filter: an array whose items may be borrowed.
    Filtered(Rc<Vec<Val<'h>>>),
}

/// A shallow view of a [`Val`] for matching.
enum View<'a, 'h> {
    Prim(&'a Value),
    Array(Items<'a, 'h>),
    Object,
}

enum Items<'a, 'h> {
    Values(&'a [Value]),
    Vals(&'a [Val<'h>]),
}

impl<'a, 'h> Items<'a, 'h> {
    fn len(&self) -> usize {
        match self {
            Items::Values(v) => v.len(),
            Items::Vals(v) => v.len(),
        }
    }
}

impl<'h> Val<'h> {
    fn own(v: Value) -> Self {
        Val::Own(Rc::new(v))
    }

    fn view(&self) -> View<'_, 'h> {
        let value: &Value = match self {
            Val::Ref(v) => v,
            Val::Own(v) => v,
            Val::Filtered(items) => return View::Array(Items::Vals(items)),
        };
        match value {
            Value::Array(a) => View::Array(Items::Values(a)),
            Value::Object(_) => View::Object,
            other => View::Prim(other),
        }
    }

    /// The primitive value, or `None` for arrays and objects.
    fn prim(&self) -> Option<&Value> {
        match self.view() {
            View::Prim(v) => Some(v),
            _ => None,
        }
    }

    /// Identity of a collection (its address); primitives have none.
    fn identity(&self) -> usize {
        match self {
            Val::Ref(v) => std::ptr::from_ref::<Value>(v) as usize,
            Val::Own(v) => Rc::as_ptr(v) as usize,
            Val::Filtered(v) => Rc::as_ptr(v).cast::<u8>() as usize,
        }
    }

    fn is_truthy(&self) -> bool {
        self.prim().is_none_or(Value::is_truthy)
    }

    /// `ConvertToString`: primitives as GitHub prints them, collections as `Array`/`Object`.
    fn to_display_string(&self) -> String {
        match self.view() {
            View::Prim(v) => v.to_display_string(),
            View::Array(_) => "Array".to_string(),
            View::Object => "Object".to_string(),
        }
    }

    fn to_number(&self) -> f64 {
        self.prim().map_or(f64::NAN, Value::to_number)
    }

    fn into_value(self) -> Value {
        match self {
            Val::Ref(v) => v.clone(),
            Val::Own(v) => Rc::try_unwrap(v).unwrap_or_else(|rc| (*rc).clone()),
            Val::Filtered(items) => Value::Array(
                Rc::try_unwrap(items)
                    .unwrap_or_else(|rc| (*rc).clone())
                    .into_iter()
                    .map(Val::into_value)
                    .collect(),
            ),
        }
    }

    fn to_value(&self) -> Value {
        self.clone().into_value()
    }
}

/// A value after the runner's `CoerceTypes`.
#[derive(Debug, PartialEq)]
enum Coerced<'a> {
    Null,
    Bool(bool),
    Num(f64),
    Str(&'a str),
    Array(usize),
    Object(usize),
}

fn coerced<'a>(v: &'a Val<'_>) -> Coerced<'a> {
    match v.view() {
        View::Prim(Value::Null) => Coerced::Null,
        View::Prim(Value::Bool(b)) => Coerced::Bool(*b),
        View::Prim(Value::Number(n)) => Coerced::Num(*n),
        View::Prim(Value::String(s)) => Coerced::Str(s),
        View::Prim(_) | View::Object => Coerced::Object(v.identity()),
        View::Array(_) => Coerced::Array(v.identity()),
    }
}

fn as_number(c: &Coerced<'_>) -> f64 {
    match c {
        Coerced::Null => 0.0,
        Coerced::Bool(b) => f64::from(u8::from(*b)),
        Coerced::Num(n) => *n,
        Coerced::Str(s) => parse_number(s),
        Coerced::Array(_) | Coerced::Object(_) => f64::NAN,
    }
}

/// Loose conversion of mismatched kinds: numbers and strings meet as numbers; booleans and
/// null become numbers first; collections never convert.
fn coerce<'a>(mut l: Coerced<'a>, mut r: Coerced<'a>) -> (Coerced<'a>, Coerced<'a>) {
    loop {
        let same = std::mem::discriminant(&l) == std::mem::discriminant(&r);
        match (&l, &r) {
            _ if same => return (l, r),
            (Coerced::Num(_), Coerced::Str(_)) => r = Coerced::Num(as_number(&r)),
            (Coerced::Str(_), Coerced::Num(_)) => l = Coerced::Num(as_number(&l)),
            (Coerced::Bool(_) | Coerced::Null, _) => l = Coerced::Num(as_number(&l)),
            (_, Coerced::Bool(_) | Coerced::Null) => r = Coerced::Num(as_number(&r)),
            _ => return (l, r),
        }
    }
}

fn loose_eq(a: &Val<'_>, b: &Val<'_>) -> bool {
    match coerce(coerced(a), coerced(b)) {
        (Coerced::Null, Coerced::Null) => true,
        (Coerced::Num(x), Coerced::Num(y)) => x == y,
        (Coerced::Str(x), Coerced::Str(y)) => eq_ignore_case(x, y),
        (Coerced::Bool(x), Coerced::Bool(y)) => x == y,
        (Coerced::Array(x), Coerced::Array(y)) | (Coerced::Object(x), Coerced::Object(y)) => x == y,
        _ => false,
    }
}

fn loose_gt(a: &Val<'_>, b: &Val<'_>) -> bool {
    match coerce(coerced(a), coerced(b)) {
        (Coerced::Num(x), Coerced::Num(y)) => x > y,
        (Coerced::Str(x), Coerced::Str(y)) => cmp_ignore_case(x, y).is_gt(),
        (Coerced::Bool(x), Coerced::Bool(y)) => x && !y,
        _ => false,
    }
}

fn loose_lt(a: &Val<'_>, b: &Val<'_>) -> bool {
    match coerce(coerced(a), coerced(b)) {
        (Coerced::Num(x), Coerced::Num(y)) => x < y,
        (Coerced::Str(x), Coerced::Str(y)) => cmp_ignore_case(x, y).is_lt(),
        (Coerced::Bool(x), Coerced::Bool(y)) => !x && y,
        _ => false,
    }
}

/// Memory an evaluation may hold at once, as the runner (1 MiB, .NET string sizes).
const MAX_MEMORY: usize = 1_048_576;
const MIN_OBJECT_SIZE: usize = 24;
const STRING_OVERHEAD: usize = 26;

fn string_bytes(s: &str) -> usize {
    STRING_OVERHEAD + 2 * s.encode_utf16().count()
}

/// The runner's `EvaluationMemory`: bytes of results held per tree level; finishing a
/// primitive result releases what deeper levels held.
#[derive(Default)]
struct Memory {
    levels: Vec<usize>,
    total: usize,
}

impl Memory {
    fn add(&mut self, level: usize, bytes: usize, trim: bool) -> bool {
        if trim {
            while self.levels.len() > level + 1 {
                let released = self.levels.pop().unwrap_or(0);
                self.total -= released;
            }
        }
        if self.levels.len() <= level {
            self.levels.resize(level + 1, 0);
        }
        self.levels[level] += bytes;
        self.total += bytes;
        self.total <= MAX_MEMORY
    }
}

struct Evaluator<'h, 'e> {
    host: &'h dyn Host,
    root: &'e Expr,
    level: std::cell::Cell<usize>,
    memory: std::cell::RefCell<Memory>,
}

/// Evaluates `expr` against `host`. Every context the expression names must exist, even in a
/// branch that short-circuiting skips (the runner rejects unknown names before evaluating).
pub(crate) fn evaluate(expr: &Expr, host: &dyn Host) -> Result<Value, EvalError> {
    let mut unknown = None;
    expr.walk(&mut |e| {
        if let ExprKind::Context(name) = &e.kind
            && unknown.is_none()
            && host.context(name).is_none()
        {
            unknown = Some(EvalError::UnknownContext {
                name: name.clone(),
                span: e.span,
            });
        }
    });
    if let Some(err) = unknown {
        return Err(err);
    }
    let evaluator = Evaluator {
        host,
        root: expr,
        level: std::cell::Cell::new(0),
        memory: std::cell::RefCell::new(Memory::default()),
    };
    evaluator.eval(expr).map(Val::into_value)
}

fn function_error(span: Span, message: impl Into<String>) -> EvalError {
    EvalError::Function {
        message: message.into(),
        span,
    }
}

fn memory_error(expr: &Expr) -> EvalError {
    function_error(
        expr.span,
        format!(
            "The maximum allowed memory size was exceeded while evaluating the following expression: {expr}"
        ),
    )
}

impl<'h> Evaluator<'h, '_> {
    fn eval(&self, expr: &Expr) -> Result<Val<'h>, EvalError> {
        let level = self.level.get();
        self.level.set(level + 1);
        let result = self.eval_core(expr, level);
        self.level.set(level);
        let result = result?;
        self.account(level, &result)?;
        Ok(result)
    }

    /// Counts a result the way the runner's `ExpressionNode.Evaluate` does.
    fn account(&self, level: usize, result: &Val<'h>) -> Result<(), EvalError> {
        let mut memory = self.memory.borrow_mut();
        let ok = match result {
            Val::Own(v) => match &**v {
                Value::String(s) => memory.add(level, string_bytes(s), true),
                Value::Array(_) | Value::Object(_) => memory.add(level, MIN_OBJECT_SIZE, false),
                _ => memory.add(level, MIN_OBJECT_SIZE, true),
            },
            Val::Filtered(items) => memory.add(level, MIN_OBJECT_SIZE + 8 * items.len(), false),
            // Context data: the wrapper object, plus the converted value for primitives.
            Val::Ref(v) => {
                memory.add(level, MIN_OBJECT_SIZE, false)
                    && match v {
                        Value::String(s) => memory.add(level, string_bytes(s), false),
                        Value::Array(_) | Value::Object(_) => true,
                        _ => memory.add(level, MIN_OBJECT_SIZE, false),
                    }
            }
        };
        if ok {
            Ok(())
        } else {
            Err(memory_error(self.root))
        }
    }

    /// A function's own result may not exceed the limit either (the runner's `MemoryCounter`).
    fn checked_string(expr: &Expr, s: String) -> Result<Val<'h>, EvalError> {
        if string_bytes(&s) > MAX_MEMORY {
            return Err(memory_error(expr));
        }
        Ok(Val::own(Value::String(s)))
    }

    fn eval_core(&self, expr: &Expr, level: usize) -> Result<Val<'h>, EvalError> {
        Ok(match &expr.kind {
            ExprKind::Null => Val::own(Value::Null),
            ExprKind::Bool(b) => Val::own(Value::Bool(*b)),
            ExprKind::Number(n) => Val::own(Value::Number(*n)),
            ExprKind::String(s) => Val::own(Value::String(s.clone())),
            ExprKind::Context(name) => match self.host.context(name) {
                Some(v) => Val::Ref(v),
                None => {
                    return Err(EvalError::UnknownContext {
                        name: name.clone(),
                        span: expr.span,
                    });
                }
            },
            ExprKind::Index {
                target: target_expr,
                index,
            } => {
                let exact = matches!(&target_expr.kind, ExprKind::Context(name) if self.host.case_sensitive(name));
                let target = self.eval(target_expr)?;
                let key = match index {
                    Index::Wildcard { .. } => return Ok(wildcard(&target)),
                    Index::Property(name) => {
                        let key = Val::own(Value::String(name.clone()));
                        self.account(level + 1, &key)?;
                        key
                    }
                    Index::Expr(e) => self.eval(e)?,
                };
                if exact && let Val::Ref(Value::Object(map)) = &target {
                    return Ok(string_index(&key)
                        .and_then(|k| map.get(&k))
                        .map_or_else(|| Val::own(Value::Null), Val::Ref));
                }
                index_value(&target, &key)
            }
            ExprKind::Not(e) => Val::own(Value::Bool(!self.eval(e)?.is_truthy())),
            ExprKind::Compare { op, left, right } => {
                let l = self.eval(left)?;
                let r = self.eval(right)?;
                let result = match op {
                    CompareOp::Eq => loose_eq(&l, &r),
                    CompareOp::Ne => !loose_eq(&l, &r),
                    CompareOp::Lt => loose_lt(&l, &r),
                    CompareOp::Le => loose_eq(&l, &r) || loose_lt(&l, &r),
                    CompareOp::Gt => loose_gt(&l, &r),
                    CompareOp::Ge => loose_eq(&l, &r) || loose_gt(&l, &r),
                };
                Val::own(Value::Bool(result))
            }
            ExprKind::And(items) => {
                let mut last = Val::own(Value::Null);
                for item in items {
                    last = self.eval(item)?;
                    if !last.is_truthy() {
                        break;
                    }
                }
                last
            }
            ExprKind::Or(items) => {
                let mut last = Val::own(Value::Null);
                for item in items {
                    last = self.eval(item)?;
                    if last.is_truthy() {
                        break;
                    }
                }
                last
            }
            ExprKind::Call { function, args, .. } => match function {
                Function::Format | Function::Join | Function::ToJson => {
                    match self.call(*function, args, expr.span)? {
                        Val::Own(v) => match Rc::try_unwrap(v) {
                            Ok(Value::String(s)) => Self::checked_string(expr, s)?,
                            Ok(other) => Val::own(other),
                            Err(rc) => Val::Own(rc),
                        },
                        other => other,
                    }
                }
                _ => self.call(*function, args, expr.span)?,
            },
        })
    }

    fn call(&self, function: Function, args: &[Expr], span: Span) -> Result<Val<'h>, EvalError> {
        let arg = |i: usize| -> Result<Val<'h>, EvalError> {
            match args.get(i) {
                Some(e) => self.eval(e),
                None => Ok(Val::own(Value::Null)),
            }
        };
        let boolean = |b: bool| Ok(Val::own(Value::Bool(b)));
        let string = |s: String| Ok(Val::own(Value::String(s)));
        match function {
            Function::Contains => {
                let left = arg(0)?;
                if let Some(l) = left.prim() {
                    let right = arg(1)?;
                    return boolean(right.prim().is_some_and(|r| {
                        contains_ignore_case(&l.to_display_string(), &r.to_display_string())
                    }));
                }
                if let View::Array(items) = left.view()
                    && items.len() > 0
                {
                    let right = arg(1)?;
                    let found = match items {
                        Items::Values(vs) => vs.iter().any(|v| loose_eq(&right, &Val::Ref(v))),
                        Items::Vals(vs) => vs.iter().any(|v| loose_eq(&right, v)),
                    };
                    return boolean(found);
                }
                boolean(false)
            }
            Function::StartsWith | Function::EndsWith => {
                let left = arg(0)?;
                let Some(l) = left.prim() else {
                    return boolean(false);
                };
                let right = arg(1)?;
                let Some(r) = right.prim() else {
                    return boolean(false);
                };
                let (l, r) = (l.to_display_string(), r.to_display_string());
                boolean(if function == Function::StartsWith {
                    starts_with_ignore_case(&l, &r)
                } else {
                    ends_with_ignore_case(&l, &r)
                })
            }
            Function::Format => self.format(args, span),
            Function::Join => {
                let items = arg(0)?;
                match items.view() {
                    View::Array(list) if list.len() > 0 => {
                        let strings: Vec<String> = match list {
                            Items::Values(vs) => vs.iter().map(Value::to_display_string).collect(),
                            Items::Vals(vs) => vs.iter().map(Val::to_display_string).collect(),
                        };
                        let separator = if strings.len() > 1 && args.len() > 1 {
                            let sep = arg(1)?;
                            sep.prim().map_or(",".to_string(), Value::to_display_string)
                        } else {
                            ",".to_string()
                        };
                        string(strings.join(&separator))
                    }
                    View::Prim(v) => string(v.to_display_string()),
                    _ => string(String::new()),
                }
            }
            Function::ToJson => string(to_json_string(&arg(0)?.to_value())),
            Function::FromJson => {
                let text = arg(0)?.to_display_string();
                from_json_text(&text)
                    .map(Val::own)
                    .map_err(|message| function_error(span, message))
            }
            Function::Case => {
                let mut i = 0;
                while i + 1 < args.len() {
                    let predicate = arg(i)?;
                    match predicate.prim() {
                        Some(Value::Bool(true)) => return arg(i + 1),
                        Some(Value::Bool(false)) => {}
                        _ => {
                            return Err(function_error(
                                args[i].span,
                                "case predicate must evaluate to a boolean value",
                            ));
                        }
                    }
                    i += 2;
                }
                arg(args.len().saturating_sub(1))
            }
            Function::HashFiles => {
                let mut patterns = Vec::with_capacity(args.len());
                for i in 0..args.len() {
                    patterns.push(arg(i)?.to_display_string());
                }
                self.host
                    .hash_files(&patterns)
                    .map(|s| Val::own(Value::String(s)))
                    .map_err(|message| function_error(span, message))
            }
            Function::Success => boolean(self.host.status(StatusFunction::Success)),
            Function::Always => boolean(self.host.status(StatusFunction::Always)),
            Function::Cancelled => boolean(self.host.status(StatusFunction::Cancelled)),
            Function::Failure => boolean(self.host.status(StatusFunction::Failure)),
        }
    }

    fn format(&self, args: &[Expr], span: Span) -> Result<Val<'h>, EvalError> {
        let fmt = match args.first() {
            Some(e) => self.eval(e)?.to_display_string(),
            None => String::new(),
        };
        let segments = parse_format(&fmt, args.len().saturating_sub(1))
            .map_err(|message| function_error(span, message))?;
        let mut cache: Vec<Option<String>> = vec![None; args.len().saturating_sub(1)];
        let mut out = String::new();
        for segment in segments {
            match segment {
                FormatSegment::Text(t) => out.push_str(&t),
                FormatSegment::Arg(i) => {
                    if cache[i].is_none() {
                        cache[i] = Some(self.eval(&args[i + 1])?.to_display_string());
                    }
                    out.push_str(cache[i].as_deref().unwrap_or(""));
                }
                FormatSegment::BadSpecifiers(i, spec) => {
                    let v = self.eval(&args[i + 1])?;
                    let kind = v.prim().map_or(
                        if matches!(v.view(), View::Array(_)) {
                            "Array"
                        } else {
                            "Object"
                        },
                        Value::kind_name,
                    );
                    return Err(function_error(
                        span,
                        format!(
                            "The format specifiers '{spec}' are not valid for objects of type '{kind}'"
                        ),
                    ));
                }
            }
        }
        Ok(Val::own(Value::String(out)))
    }
}

enum FormatSegment {
    Text(String),
    Arg(usize),
    BadSpecifiers(usize, String),
}

/// Splits a `format()` string the way the runner does: `{N}` (optionally `{N:}`) references
/// an argument, `{{`/`}}` are literal braces, anything else with a brace is an error.
fn parse_format(fmt: &str, arg_count: usize) -> Result<Vec<FormatSegment>, String> {
    let invalid = || format!("The following format string is invalid: {fmt}");
    let chars: Vec<char> = fmt.chars().collect();
    let find = |c: char, from: usize| {
        chars[from.min(chars.len())..]
            .iter()
            .position(|&x| x == c)
            .map(|p| p + from)
    };
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    let mut segments = Vec::new();
    let mut text = String::new();
    let mut index = 0;
    while index < chars.len() {
        let lbrace = find('{', index);
        let rbrace = find('}', index);
        match (lbrace, rbrace) {
            (Some(l), r) if r.is_none_or(|r| r > l) => {
                if at(l + 1) == '{' {
                    text.extend(&chars[index..=l]);
                    index = l + 2;
                    continue;
                }
                let r = r.ok_or_else(invalid)?;
                if r <= l + 1 {
                    return Err(invalid());
                }
                let mut end = l + 1;
                while at(end).is_ascii_digit() {
                    end += 1;
                }
                if end == l + 1 || at(end).is_numeric() && !at(end).is_ascii_digit() {
                    return Err(invalid());
                }
                let digits: String = chars[l + 1..end].iter().collect();
                let arg: usize = digits.parse::<u8>().map_err(|_| invalid())?.into();
                // Format specifiers: '}' ends the reference; ':' starts specifiers.
                let (spec, close) = match at(end) {
                    '}' => (String::new(), end),
                    ':' => {
                        let mut spec = String::new();
                        let mut i = end + 1;
                        loop {
                            if i >= chars.len() {
                                return Err(invalid());
                            }
                            if chars[i] != '}' {
                                spec.push(chars[i]);
                                i += 1;
                            } else if at(i + 1) == '}' {
                                spec.push('}');
                                i += 2;
                            } else {
                                break (spec, i);
                            }
                        }
                    }
                    _ => return Err(invalid()),
                };
                if arg >= arg_count {
                    return Err(format!(
                        "The following format string references more arguments than were supplied: {fmt}"
                    ));
                }
                if !text.is_empty() || index < l {
                    text.extend(&chars[index..l]);
                    segments.push(FormatSegment::Text(std::mem::take(&mut text)));
                }
                segments.push(if spec.is_empty() {
                    FormatSegment::Arg(arg)
                } else {
                    FormatSegment::BadSpecifiers(arg, spec)
                });
                index = close + 1;
            }
            (_, Some(r)) => {
                if at(r + 1) != '}' {
                    return Err(invalid());
                }
                text.extend(&chars[index..=r]);
                index = r + 2;
            }
            (_, None) => {
                text.extend(&chars[index..]);
                break;
            }
        }
    }
    if !text.is_empty() {
        segments.push(FormatSegment::Text(text));
    }
    Ok(segments)
}

/// Parses `fromJSON` input as the runner's strict JSON parser does: exactly one value (text
/// after it is an error), and of keys that differ only in case the first one, with its value,
/// is kept. (The runner's older Newtonsoft path ignored trailing text and kept the last value.)
fn from_json_text(text: &str) -> Result<Value, String> {
    if text.trim().is_empty() {
        return Err("Error parsing fromJson: empty input".to_string());
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let parsed = serde::de::DeserializeSeed::deserialize(StrictJson, &mut de).and_then(|v| {
        de.end()?;
        Ok(v)
    });
    parsed.map_err(|e| format!("Error parsing fromJson: {e}"))
}

/// Builds a [`Value`] straight from the JSON parser, so duplicate keys can be resolved the
/// runner's way (serde_json's own map keeps the last).
struct StrictJson;

impl<'de> serde::de::DeserializeSeed<'de> for StrictJson {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for StrictJson {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
        Ok(Value::Number(n as f64))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
        Ok(Value::Number(n as f64))
    }
    fn visit_f64<E>(self, n: f64) -> Result<Value, E> {
        Ok(Value::Number(n))
    }
    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_string()))
    }
    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(StrictJson)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out: IndexMap<String, Value> = IndexMap::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(StrictJson)?;
            let seen = out.contains_key(&key) || out.keys().any(|k| eq_ignore_case(k, &key));
            if !seen {
                out.insert(key, value);
            }
        }
        Ok(Value::Object(out))
    }
}

/// `toJSON`: two-space indentation, keys in order, numbers as GitHub prints them.
pub fn to_json_string(value: &Value) -> String {
    let mut out = String::new();
    write_json(value, 0, &mut out);
    out
}

fn write_json(value: &Value, level: usize, out: &mut String) {
    let indent = |out: &mut String, level: usize| {
        out.push('\n');
        for _ in 0..level * 2 {
            out.push(' ');
        }
    };
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&format_number(*n)),
        Value::String(s) => write_json_string(s, out),
        Value::Array(items) if items.is_empty() => out.push_str("[]"),
        Value::Object(map) if map.is_empty() => out.push_str("{}"),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                indent(out, level + 1);
                write_json(item, level + 1, out);
            }
            indent(out, level);
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                indent(out, level + 1);
                write_json_string(k, out);
                out.push_str(": ");
                write_json(v, level + 1, out);
            }
            indent(out, level);
            out.push('}');
        }
    }
}

/// Escapes as Newtonsoft.Json's default does: `"`, `\`, control characters, U+0085, U+2028
/// and U+2029.
fn write_json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || matches!(c, '\u{85}' | '\u{2028}' | '\u{2029}') => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `target.*` / `target[*]`: the values of an object or the items of an array; applied to a
/// filter result, it flattens one level; on anything else, an empty array.
fn wildcard<'h>(target: &Val<'h>) -> Val<'h> {
    let items: Vec<Val<'h>> = match (target, target.view()) {
        (Val::Filtered(items), _) => {
            let mut out = Vec::new();
            for item in items.iter() {
                children(item, &mut out);
            }
            out
        }
        (_, View::Prim(_)) => Vec::new(),
        _ => {
            let mut out = Vec::new();
            children(target, &mut out);
            out
        }
    };
    Val::Filtered(Rc::new(items))
}

/// Pushes the children of a collection (object values or array items).
fn children<'h>(v: &Val<'h>, out: &mut Vec<Val<'h>>) {
    match v {
        Val::Ref(Value::Array(a)) => out.extend(a.iter().map(Val::Ref)),
        Val::Ref(Value::Object(o)) => out.extend(o.values().map(Val::Ref)),
        Val::Own(rc) => match &**rc {
            Value::Array(a) => out.extend(a.iter().cloned().map(Val::own)),
            Value::Object(o) => out.extend(o.values().cloned().map(Val::own)),
            _ => {}
        },
        Val::Filtered(items) => out.extend(items.iter().cloned()),
        Val::Ref(_) => {}
    }
}

/// The integer index of an array lookup: `None` for NaN, negatives and beyond `i32::MAX`.
fn integer_index(key: &Val<'_>) -> Option<usize> {
    let n = key.to_number();
    if n.is_nan() || n < 0.0 {
        return None;
    }
    let n = n.floor();
    if n > f64::from(i32::MAX) {
        return None;
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Some(n as usize)
}

/// The property name of an object lookup: primitives converted to strings.
fn string_index(key: &Val<'_>) -> Option<String> {
    key.prim().map(Value::to_display_string)
}

/// One child of a collection by key (object) or position (array).
fn child<'h>(v: &Val<'h>, key: &Val<'_>) -> Option<Val<'h>> {
    match v {
        Val::Ref(Value::Object(o)) => lookup(o, &string_index(key)?).map(Val::Ref),
        Val::Ref(Value::Array(a)) => a.get(integer_index(key)?).map(Val::Ref),
        Val::Own(rc) => match &**rc {
            Value::Object(o) => lookup(o, &string_index(key)?).cloned().map(Val::own),
            Value::Array(a) => a.get(integer_index(key)?).cloned().map(Val::own),
            _ => None,
        },
        Val::Filtered(items) => items.get(integer_index(key)?).cloned(),
        Val::Ref(_) => None,
    }
}

fn lookup<'m>(map: &'m indexmap::IndexMap<String, Value>, key: &str) -> Option<&'m Value> {
    map.get(key).or_else(|| {
        map.iter()
            .find(|(k, _)| eq_ignore_case(k, key))
            .map(|(_, v)| v)
    })
}

/// `target[key]`: on a filter result the key applies to every item (skipping misses);
/// otherwise object property / array item, or null.
fn index_value<'h>(target: &Val<'h>, key: &Val<'_>) -> Val<'h> {
    match target {
        Val::Filtered(items) => {
            let mut out = Vec::new();
            for item in items.iter() {
                if matches!(item.view(), View::Array(_) | View::Object)
                    && let Some(v) = child(item, key)
                {
                    out.push(v);
                }
            }
            Val::Filtered(Rc::new(out))
        }
        _ => child(target, key).unwrap_or_else(|| Val::own(Value::Null)),
    }
}
