//! Evaluation over JSON records, with SQL's three-valued logic.

use std::cmp::Ordering;

use serde_json::Value;
use time::OffsetDateTime;

use super::dates::{record_date, rel_range, text_key};
use super::functions::{OnMode, QueryFn, query_fn};
use super::like::{self, Anchor};
use super::validate::{positional, unsupported};
use super::{CRM, CmpOp, EvalContext, Expr, FilterError, LambdaOp, Literal};

/// Evaluates `expr` against a JSON object with the default context (no
/// user, the system clock); property lookup uses `get`.
pub fn eval(expr: &Expr, record: &Value) -> Result<bool, FilterError> {
    eval_with(expr, record, &EvalContext::default())
}

/// Evaluates `expr` against a JSON object. A record matches when the
/// expression is `true`; `false` and null do not match.
pub fn eval_with(expr: &Expr, record: &Value, ctx: &EvalContext) -> Result<bool, FilterError> {
    let env = Env {
        root: record,
        ctx,
        now: ctx.now.unwrap_or_else(OffsetDateTime::now_utc),
    };
    truthy(expr, &env, None)
}

pub(super) struct Env<'a> {
    root: &'a Value,
    ctx: &'a EvalContext,
    now: OffsetDateTime,
}

/// Lambda variables in scope, innermost first.
pub(super) struct Scope<'s> {
    var: &'s str,
    value: &'s Value,
    parent: Option<&'s Scope<'s>>,
}

pub(super) fn truthy(expr: &Expr, env: &Env, scope: Option<&Scope>) -> Result<bool, FilterError> {
    Ok(tri(expr, env, scope)?.unwrap_or(false))
}

/// A boolean expression's value: `Some(bool)`, or `None` for unknown.
pub(super) fn tri(
    expr: &Expr,
    env: &Env,
    scope: Option<&Scope>,
) -> Result<Option<bool>, FilterError> {
    match eval_value(expr, env, scope)? {
        Value::Bool(b) => Ok(Some(b)),
        Value::Null => Ok(None),
        other => Err(FilterError::NotBoolean {
            value: other.to_string(),
        }),
    }
}

pub(super) fn literal_json(l: &Literal) -> Value {
    match l {
        Literal::Null => Value::Null,
        Literal::Bool(b) => Value::Bool(*b),
        Literal::Number(n) => serde_json::Number::from_f64(*n)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        Literal::String(s) | Literal::DateTime(s) => Value::String(s.clone()),
        Literal::Guid(g) => Value::String(g.to_string()),
        Literal::List(items) => Value::Array(items.iter().map(literal_json).collect()),
    }
}

/// Looks `path` up: a first segment naming a lambda variable starts at that
/// collection member, anything else at the record.
pub(super) fn lookup(env: &Env, scope: Option<&Scope>, path: &str) -> Value {
    let (first, rest) = match path.split_once('/') {
        Some((f, r)) => (f, Some(r)),
        None => (path, None),
    };
    let mut start = None;
    let mut s = scope;
    while let Some(sc) = s {
        if sc.var == first {
            start = Some(sc.value);
            break;
        }
        s = sc.parent;
    }
    let (base, segs) = match start {
        Some(v) => (v, rest),
        None => (env.root, Some(path)),
    };
    segs.map_or(Some(base), |segs| {
        segs.split('/').try_fold(base, |v, seg| v.get(seg))
    })
    .cloned()
    .unwrap_or(Value::Null)
}

/// Compares two JSON values; strings compare case-insensitively, and ISO
/// dates as instants (`2024-05-01` equals `2024-05-01T00:00:00Z`).
pub fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Null, Value::Null) => Some(Ordering::Equal),
        (Value::Null, _) | (_, Value::Null) => None,
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        (Value::String(x), Value::String(y)) => Some(text_key(x).cmp(&text_key(y))),
        (Value::String(x), Value::Number(y)) | (Value::Number(y), Value::String(x)) => {
            let ord = x.trim().parse::<f64>().ok()?.partial_cmp(&y.as_f64()?)?;
            Some(if matches!(a, Value::String(_)) {
                ord
            } else {
                ord.reverse()
            })
        }
        _ => None,
    }
}

pub(super) fn as_text(v: &Value) -> Option<String> {
    v.as_str().map(str::to_lowercase)
}

pub(super) fn norm_guid(s: &str) -> String {
    s.trim().trim_matches(['{', '}']).to_ascii_lowercase()
}

// `eval_value` only dispatches, so that its frame, which every nesting level
// of an expression repeats, stays small.
pub(super) fn eval_value(
    expr: &Expr,
    env: &Env,
    scope: Option<&Scope>,
) -> Result<Value, FilterError> {
    match expr {
        Expr::Lit(l) => Ok(literal_json(l)),
        Expr::Property(p) => Ok(lookup(env, scope, p)),
        // SQL's three-valued logic: a comparison with a null column is
        // unknown (JSON null); `not` keeps it unknown; `and`/`or` follow
        // Kleene's tables; only `true` selects a row.
        Expr::Not(e) => Ok(match tri(e, env, scope)? {
            Some(b) => Value::Bool(!b),
            None => Value::Null,
        }),
        Expr::And(a, b) => Ok(match tri(a, env, scope)? {
            Some(false) => Value::Bool(false),
            left => match (left, tri(b, env, scope)?) {
                (_, Some(false)) => Value::Bool(false),
                (Some(true), Some(true)) => Value::Bool(true),
                _ => Value::Null,
            },
        }),
        Expr::Or(a, b) => Ok(match tri(a, env, scope)? {
            Some(true) => Value::Bool(true),
            left => match (left, tri(b, env, scope)?) {
                (_, Some(true)) => Value::Bool(true),
                (Some(false), Some(false)) => Value::Bool(false),
                _ => Value::Null,
            },
        }),
        Expr::Cmp(op, a, b) => eval_cmp(*op, a, b, env, scope),
        Expr::Lambda {
            path,
            op,
            var,
            body,
        } => eval_lambda(path, *op, var, body, env, scope),
        Expr::Call(name, args) => eval_call(name, args, env, scope),
    }
}

pub(super) fn eval_cmp(
    op: CmpOp,
    a: &Expr,
    b: &Expr,
    env: &Env,
    scope: Option<&Scope>,
) -> Result<Value, FilterError> {
    let (x, y) = (eval_value(a, env, scope)?, eval_value(b, env, scope)?);
    let null_literal = |e: &Expr| matches!(e, Expr::Lit(Literal::Null));
    if x.is_null() || y.is_null() {
        // `eq null` / `ne null` test for null; any other comparison with a
        // null value is unknown.
        if !(null_literal(a) || null_literal(b)) || !matches!(op, CmpOp::Eq | CmpOp::Ne) {
            return Ok(Value::Null);
        }
    }
    let ord = compare(&x, &y);
    use Ordering::*;
    Ok(Value::Bool(match op {
        CmpOp::Eq => ord == Some(Equal),
        CmpOp::Ne => ord != Some(Equal),
        CmpOp::Gt => ord == Some(Greater),
        CmpOp::Ge => matches!(ord, Some(Greater | Equal)),
        CmpOp::Lt => ord == Some(Less),
        CmpOp::Le => matches!(ord, Some(Less | Equal)),
    }))
}

pub(super) fn eval_lambda(
    path: &str,
    op: LambdaOp,
    var: &str,
    body: &Expr,
    env: &Env,
    scope: Option<&Scope>,
) -> Result<Value, FilterError> {
    let coll = lookup(env, scope, path);
    let items: &[Value] = match &coll {
        Value::Array(items) => items,
        Value::Null => &[],
        other => {
            return Err(FilterError::NotACollection {
                path: path.to_string(),
                value: other.to_string(),
            });
        }
    };
    for item in items {
        let inner = Scope {
            var,
            value: item,
            parent: scope,
        };
        let hit = truthy(body, env, Some(&inner))?;
        match op {
            LambdaOp::Any if hit => return Ok(Value::Bool(true)),
            LambdaOp::All if !hit => return Ok(Value::Bool(false)),
            _ => {}
        }
    }
    Ok(Value::Bool(op == LambdaOp::All))
}

pub(super) fn eval_call(
    name: &str,
    args: &[(Option<String>, Expr)],
    env: &Env,
    scope: Option<&Scope>,
) -> Result<Value, FilterError> {
    if name.starts_with(CRM) {
        let f = query_fn(name, args)?;
        // Conditions on a null column are unknown, except the null tests.
        let prop = match f {
            QueryFn::In { prop, .. }
            | QueryFn::Between { prop, .. }
            | QueryFn::UserId { prop, .. }
            | QueryFn::Relative { prop, .. }
            | QueryFn::On { prop, .. } => Some(prop),
            _ => None,
        };
        if prop.is_some_and(|p| lookup(env, scope, p).is_null()) {
            return Ok(Value::Null);
        }
        return Ok(Value::Bool(eval_query_fn(name, &f, env, scope)?));
    }
    let lower = name.to_ascii_lowercase();
    Ok(match lower.as_str() {
        "contains" | "startswith" | "endswith" => {
            let [a, b] = positional::<2>(name, args)?;
            let (hay, needle) = (
                as_text(&eval_value(a, env, scope)?),
                as_text(&eval_value(b, env, scope)?),
            );
            let (Some(hay), Some(needle)) = (hay, needle) else {
                return Ok(Value::Null);
            };
            let anchor = match lower.as_str() {
                "contains" => Anchor::Anywhere,
                "startswith" => Anchor::Start,
                _ => Anchor::End,
            };
            Value::Bool(like::matches(&hay, &needle, anchor))
        }
        "tolower" | "toupper" => {
            let [a] = positional::<1>(name, args)?;
            match eval_value(a, env, scope)? {
                Value::String(s) if lower == "tolower" => Value::String(s.to_lowercase()),
                Value::String(s) => Value::String(s.to_uppercase()),
                other => other,
            }
        }
        _ => return Err(unsupported(name)),
    })
}

pub(super) fn eval_query_fn(
    name: &str,
    f: &QueryFn,
    env: &Env,
    scope: Option<&Scope>,
) -> Result<bool, FilterError> {
    Ok(match *f {
        QueryFn::In {
            prop,
            values,
            negate,
        } => {
            let v = lookup(env, scope, prop);
            if v.is_null() {
                return Ok(false);
            }
            let hit = values
                .iter()
                .any(|l| compare(&v, &literal_json(l)) == Some(Ordering::Equal));
            hit != negate
        }
        QueryFn::Between {
            prop,
            lo,
            hi,
            negate,
        } => {
            let v = lookup(env, scope, prop);
            let (Some(from), Some(to)) = (
                compare(&v, &literal_json(lo)),
                compare(&v, &literal_json(hi)),
            ) else {
                return Ok(false);
            };
            let inside = from != Ordering::Less && to != Ordering::Greater;
            inside != negate
        }
        QueryFn::Null { prop, negate } => lookup(env, scope, prop).is_null() != negate,
        QueryFn::UserId { prop, negate } => {
            let Some(user) = env.ctx.user_id.as_deref() else {
                return Err(FilterError::NoUserId {
                    function: name.to_string(),
                });
            };
            match lookup(env, scope, prop) {
                Value::String(s) => (norm_guid(&s) == norm_guid(user)) != negate,
                _ => false,
            }
        }
        QueryFn::Relative { prop, rel } => {
            let v = lookup(env, scope, prop);
            let Some((t, _)) = record_date(prop, &v, env.now.offset())? else {
                return Ok(false);
            };
            let (start, end, inclusive) = rel_range(rel, env.now);
            t >= start && (t < end || inclusive && t == end)
        }
        QueryFn::On { prop, date, mode } => {
            let v = lookup(env, scope, prop);
            let Some((_, local)) = record_date(prop, &v, env.now.offset())? else {
                return Ok(false);
            };
            match mode {
                OnMode::On => local == date,
                OnMode::OnOrAfter => local >= date,
                OnMode::OnOrBefore => local <= date,
            }
        }
    })
}
