//! Matrix expansion with GitHub's rules, given the matrix already evaluated to a value.

use indexmap::IndexMap;

use crate::expr::Value;

/// One matrix combination: the `matrix` context of one job run.
pub type Combination = IndexMap<String, Value>;

/// GitHub refuses matrices that produce more jobs than this.
pub const MAX_COMBINATIONS: usize = 256;

/// Why an evaluated matrix cannot be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MatrixError {
    /// The matrix is not a mapping.
    #[error("the matrix must be a mapping")]
    NotMapping,
    /// A vector is not a list.
    #[error("matrix '{key}' must be a list")]
    NotList {
        /// The vector's key.
        key: String,
    },
    /// A vector is an empty list.
    #[error("matrix '{key}' does not contain any values")]
    EmptyVector {
        /// The vector's key.
        key: String,
    },
    /// `include` / `exclude` is not a list of mappings.
    #[error("matrix '{key}' must be a list of mappings")]
    BadFilter {
        /// `include` or `exclude`.
        key: String,
    },
    /// An `exclude` entry names a key that is not a vector of the matrix.
    #[error("matrix exclude key '{key}' does not match any key within the matrix")]
    UnknownExcludeKey {
        /// The key.
        key: String,
    },
    /// Neither vectors nor `include`.
    #[error("the matrix must define at least one vector or 'include'")]
    Empty,
    /// More than [`MAX_COMBINATIONS`] combinations.
    #[error("the matrix produces {count} jobs, more than the {MAX_COMBINATIONS} allowed")]
    TooLarge {
        /// How many it would produce.
        count: usize,
    },
}

/// Expands an evaluated `strategy.matrix` the way GitHub does:
/// 1. the cartesian product of the vectors, first key varying slowest;
/// 2. minus every combination that matches an `exclude` entry (all of the entry's keys equal;
///    nested mappings match partially);
/// 3. then each `include` entry is merged into every remaining combination whose *original*
///    values it does not contradict (it may overwrite values added by earlier includes); an entry
///    that fits no combination becomes a combination of its own.
///
/// Values compare with expression `==` semantics (strings case-insensitively).
pub fn expand_matrix(matrix: &Value) -> Result<Vec<Combination>, MatrixError> {
    let Value::Object(map) = matrix else {
        return Err(MatrixError::NotMapping);
    };
    let mut vectors: Vec<(&String, &Vec<Value>)> = Vec::new();
    let mut include: &[Value] = &[];
    let mut exclude: &[Value] = &[];
    for (key, value) in map {
        match (key.as_str(), value) {
            ("include", Value::Array(items)) => include = items,
            ("exclude", Value::Array(items)) => exclude = items,
            ("include" | "exclude", Value::Null) => {}
            ("include" | "exclude", _) => return Err(MatrixError::BadFilter { key: key.clone() }),
            (_, Value::Array(items)) if items.is_empty() => {
                return Err(MatrixError::EmptyVector { key: key.clone() });
            }
            (_, Value::Array(items)) => vectors.push((key, items)),
            _ => return Err(MatrixError::NotList { key: key.clone() }),
        }
    }
    let filters = |items: &[Value], key: &str| -> Result<Vec<Combination>, MatrixError> {
        items
            .iter()
            .map(|i| match i {
                Value::Object(o) => Ok(o.clone()),
                _ => Err(MatrixError::BadFilter { key: key.into() }),
            })
            .collect()
    };
    let include = filters(include, "include")?;
    let exclude = filters(exclude, "exclude")?;
    if vectors.is_empty() && include.is_empty() {
        return Err(MatrixError::Empty);
    }
    for entry in &exclude {
        if let Some(key) = entry.keys().find(|k| !vectors.iter().any(|(v, _)| v == k)) {
            return Err(MatrixError::UnknownExcludeKey { key: key.clone() });
        }
    }

    let product = vectors
        .iter()
        .try_fold(1usize, |acc, (_, items)| acc.checked_mul(items.len()))
        .unwrap_or(usize::MAX);
    // Cap before allocating: excludes only shrink it, and includes are bounded by their count.
    if !vectors.is_empty() && product > MAX_COMBINATIONS.saturating_mul(64) {
        return Err(MatrixError::TooLarge { count: product });
    }
    let mut base: Vec<Combination> = Vec::new();
    if !vectors.is_empty() {
        for index in 0..product {
            let mut combo = Combination::new();
            let mut block = product;
            for (key, items) in &vectors {
                block /= items.len();
                let value = &items[(index / block) % items.len()];
                combo.insert((*key).clone(), value.clone());
            }
            if !exclude.iter().any(|f| partial_match(f, &combo)) {
                base.push(combo);
            }
        }
    }
    let original_keys: Vec<&String> = vectors.iter().map(|(k, _)| *k).collect();
    let mut extra: Vec<Combination> = Vec::new();
    for entry in &include {
        let mut matched = false;
        for combo in &mut base {
            let fits = entry
                .iter()
                .filter(|(k, _)| original_keys.contains(k))
                .all(|(k, v)| combo.get(k).is_some_and(|c| loose_eq(c, v)));
            if fits {
                matched = true;
                for (k, v) in entry {
                    if !original_keys.contains(&k) {
                        combo.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        if !matched {
            extra.push(entry.clone());
        }
    }
    base.extend(extra);
    if base.len() > MAX_COMBINATIONS {
        return Err(MatrixError::TooLarge { count: base.len() });
    }
    Ok(base)
}

/// Keeps the combinations selected by `--matrix key:value` filters: every filtered key must
/// equal one of the values given for it (values compare as their displayed text).
pub fn filter_matrix(
    combinations: Vec<Combination>,
    filters: &[(String, String)],
) -> Vec<Combination> {
    if filters.is_empty() {
        return combinations;
    }
    combinations
        .into_iter()
        .filter(|combo| {
            let mut keys: Vec<&str> = filters.iter().map(|(k, _)| k.as_str()).collect();
            keys.dedup();
            keys.iter().all(|key| {
                let Some(value) = combo.get(*key) else {
                    return false;
                };
                let shown = display(value);
                filters
                    .iter()
                    .filter(|(k, _)| k == key)
                    .any(|(_, want)| *want == shown)
            })
        })
        .collect()
}

/// All keys of `filter` match in `combo`; nested mappings match partially.
fn partial_match(filter: &Combination, combo: &Combination) -> bool {
    filter.iter().all(|(k, f)| match combo.get(k) {
        Some(c) => value_matches(f, c),
        None => false,
    })
}

fn value_matches(filter: &Value, value: &Value) -> bool {
    match (filter, value) {
        (Value::Object(f), Value::Object(v)) => partial_match(f, v),
        _ => loose_eq(filter, value),
    }
}

/// Expression `==`: same-type compare (strings ignoring case), otherwise both sides as numbers;
/// arrays and objects compare structurally here (they only come from the same YAML).
fn loose_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Number(x), Value::Number(y)) => x == y,
        (Value::String(x), Value::String(y)) => x.to_lowercase() == y.to_lowercase(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| loose_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| loose_eq(v, w)))
        }
        (Value::Array(_) | Value::Object(_), _) | (_, Value::Array(_) | Value::Object(_)) => false,
        _ => {
            let (x, y) = (as_number(a), as_number(b));
            x == y
        }
    }
}

fn as_number(v: &Value) -> f64 {
    match v {
        Value::Null => 0.0,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::Number(n) => *n,
        Value::String(s) => {
            let t = s.trim();
            if t.is_empty() {
                0.0
            } else {
                t.parse().unwrap_or(f64::NAN)
            }
        }
        Value::Array(_) | Value::Object(_) => f64::NAN,
    }
}

/// The text a scalar shows as (used for `--matrix key:value`).
fn display(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) if n.fract() == 0.0 && n.abs() < 1e15 => format!("{n:.0}"),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(_) => "Array".into(),
        Value::Object(_) => "Object".into(),
    }
}
