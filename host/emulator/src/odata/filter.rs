//! OData `$filter` expressions: a nom grammar and an evaluator over JSON
//! records. String comparisons are case-insensitive, as in Dataverse and
//! Global Discovery.

use nom::branch::alt;
use nom::bytes::complete::{tag, tag_no_case, take_while, take_while_m_n, take_while1};
use nom::character::complete::{char, digit1, multispace0, multispace1};
use nom::combinator::{all_consuming, map, map_res, opt, recognize, value};
use nom::multi::{many0, separated_list0};
use nom::sequence::{delimited, pair, preceded, terminated};
use nom::{IResult, Parser};
use serde_json::Value;

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

/// A literal value.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Guid(uuid::Uuid),
    /// An ISO date or date-time, kept as written.
    DateTime(String),
    List(Vec<Literal>),
}

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Or(Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Cmp(CmpOp, Box<Expr>, Box<Expr>),
    /// A function call; named arguments (`PropertyName='x'`) carry a name.
    Call(String, Vec<(Option<String>, Expr)>),
    /// A property path (`name`, `primarycontactid/fullname`).
    Property(String),
    Lit(Literal),
}

type Res<'a, T> = IResult<&'a str, T>;

fn ws<'a, O>(
    p: impl Parser<&'a str, Output = O, Error = nom::error::Error<&'a str>>,
) -> impl Parser<&'a str, Output = O, Error = nom::error::Error<&'a str>> {
    delimited(multispace0, p, multispace0)
}

fn ident(i: &str) -> Res<'_, &str> {
    recognize(pair(
        take_while1(|c: char| c.is_ascii_alphabetic() || c == '_'),
        take_while(|c: char| c.is_ascii_alphanumeric() || c == '_'),
    ))
    .parse(i)
}

fn string_lit(i: &str) -> Res<'_, String> {
    let (mut rest, _) = char('\'').parse(i)?;
    let mut out = String::new();
    loop {
        match rest.find('\'') {
            None => {
                return Err(nom::Err::Error(nom::error::Error::new(
                    rest,
                    nom::error::ErrorKind::Char,
                )));
            }
            Some(pos) => {
                out.push_str(&rest[..pos]);
                let after = &rest[pos + 1..];
                if let Some(stripped) = after.strip_prefix('\'') {
                    out.push('\'');
                    rest = stripped;
                } else {
                    return Ok((after, out));
                }
            }
        }
    }
}

fn hex(n: usize) -> impl Fn(&str) -> Res<'_, &str> {
    move |i| take_while_m_n(n, n, |c: char| c.is_ascii_hexdigit()).parse(i)
}

fn guid_lit(i: &str) -> Res<'_, uuid::Uuid> {
    map_res(
        recognize((
            hex(8),
            char('-'),
            hex(4),
            char('-'),
            hex(4),
            char('-'),
            hex(4),
            char('-'),
            hex(12),
        )),
        uuid::Uuid::parse_str,
    )
    .parse(i)
}

fn datetime_lit(i: &str) -> Res<'_, String> {
    let d2 = || take_while_m_n(2, 2, |c: char| c.is_ascii_digit());
    let time = (
        char('T'),
        d2(),
        char(':'),
        d2(),
        opt((char(':'), d2(), opt((char('.'), digit1)))),
        opt(alt((
            tag("Z"),
            recognize((alt((char('+'), char('-'))), d2(), char(':'), d2())),
        ))),
    );
    map(
        recognize((
            take_while_m_n(4, 4, |c: char| c.is_ascii_digit()),
            char('-'),
            d2(),
            char('-'),
            d2(),
            opt(time),
        )),
        str::to_string,
    )
    .parse(i)
}

fn number_lit(i: &str) -> Res<'_, f64> {
    map_res(
        recognize((
            opt(char('-')),
            digit1,
            opt((char('.'), digit1)),
            opt((
                alt((char('e'), char('E'))),
                opt(alt((char('+'), char('-')))),
                digit1,
            )),
        )),
        str::parse::<f64>,
    )
    .parse(i)
}

/// A keyword that must not run on into an identifier (`true` vs `trueish`).
fn keyword<'a>(
    k: &'static str,
) -> impl Parser<&'a str, Output = &'a str, Error = nom::error::Error<&'a str>> {
    terminated(
        tag_no_case(k),
        nom::combinator::not(take_while_m_n(1, 1, |c: char| {
            c.is_ascii_alphanumeric() || c == '_'
        })),
    )
}

fn literal(i: &str) -> Res<'_, Literal> {
    alt((
        value(Literal::Null, keyword("null")),
        value(Literal::Bool(true), keyword("true")),
        value(Literal::Bool(false), keyword("false")),
        map(string_lit, Literal::String),
        map(guid_lit, Literal::Guid),
        map(datetime_lit, Literal::DateTime),
        map(number_lit, Literal::Number),
        map(
            delimited(
                ws(char('[')),
                separated_list0(ws(char(',')), literal),
                ws(char(']')),
            ),
            Literal::List,
        ),
    ))
    .parse(i)
}

fn call(i: &str) -> Res<'_, Expr> {
    let name = recognize(pair(ident, many0(pair(char('.'), ident))));
    let named_arg = map(pair(terminated(ident, ws(char('='))), or_expr), |(n, e)| {
        (Some(n.to_string()), e)
    });
    let arg = alt((named_arg, map(or_expr, |e| (None, e))));
    map(
        pair(
            name,
            delimited(
                ws(char('(')),
                separated_list0(ws(char(',')), arg),
                ws(char(')')),
            ),
        ),
        |(n, args)| Expr::Call(n.to_string(), args),
    )
    .parse(i)
}

fn property(i: &str) -> Res<'_, Expr> {
    map(
        recognize(pair(ident, many0(pair(char('/'), ident)))),
        |p: &str| Expr::Property(p.to_string()),
    )
    .parse(i)
}

fn primary(i: &str) -> Res<'_, Expr> {
    alt((
        delimited(ws(char('(')), or_expr, ws(char(')'))),
        map(literal, Expr::Lit),
        call,
        property,
    ))
    .parse(i)
}

fn cmp_op(i: &str) -> Res<'_, CmpOp> {
    alt((
        value(CmpOp::Eq, keyword("eq")),
        value(CmpOp::Ne, keyword("ne")),
        value(CmpOp::Ge, keyword("ge")),
        value(CmpOp::Gt, keyword("gt")),
        value(CmpOp::Le, keyword("le")),
        value(CmpOp::Lt, keyword("lt")),
    ))
    .parse(i)
}

fn comparison(i: &str) -> Res<'_, Expr> {
    let (i, left) = primary(i)?;
    let (i, rest) = opt(pair(delimited(multispace1, cmp_op, multispace1), primary)).parse(i)?;
    Ok((
        i,
        match rest {
            Some((op, right)) => Expr::Cmp(op, Box::new(left), Box::new(right)),
            None => left,
        },
    ))
}

fn unary(i: &str) -> Res<'_, Expr> {
    alt((
        map(preceded(pair(keyword("not"), multispace0), unary), |e| {
            Expr::Not(Box::new(e))
        }),
        comparison,
    ))
    .parse(i)
}

fn and_expr(i: &str) -> Res<'_, Expr> {
    let (i, first) = ws(unary).parse(i)?;
    let (i, rest) = many0(preceded(pair(keyword("and"), multispace0), ws(unary))).parse(i)?;
    Ok((
        i,
        rest.into_iter()
            .fold(first, |a, b| Expr::And(Box::new(a), Box::new(b))),
    ))
}

fn or_expr(i: &str) -> Res<'_, Expr> {
    let (i, first) = and_expr(i)?;
    let (i, rest) = many0(preceded(pair(keyword("or"), multispace0), and_expr)).parse(i)?;
    Ok((
        i,
        rest.into_iter()
            .fold(first, |a, b| Expr::Or(Box::new(a), Box::new(b))),
    ))
}

/// Parses a whole `$filter` value.
pub fn parse(input: &str) -> Result<Expr, String> {
    if input.len() > 32 * 1024 {
        return Err("The $filter expression is too long.".into());
    }
    // Nesting depth bounds the parser's recursion on hostile input.
    let depth = input.chars().fold((0i32, 0i32), |(cur, max), c| match c {
        '(' | '[' => (cur + 1, max.max(cur + 1)),
        ')' | ']' => (cur - 1, max),
        _ => (cur, max),
    });
    if depth.1 > 64 {
        return Err("The $filter expression is nested too deeply.".into());
    }
    all_consuming(ws(or_expr))
        .parse(input)
        .map(|(_, e)| e)
        .map_err(|e| {
            let at = match &e {
                nom::Err::Error(e) | nom::Err::Failure(e) => input.len() - e.input.len(),
                nom::Err::Incomplete(_) => input.len(),
            };
            format!("Syntax error at position {at} in '{input}'.")
        })
}

/// Evaluates `expr` against a JSON object; property lookup uses `get`.
pub fn eval(expr: &Expr, record: &Value) -> Result<bool, String> {
    match eval_value(expr, record)? {
        Value::Bool(b) => Ok(b),
        Value::Null => Ok(false),
        other => Err(format!(
            "The expression does not yield a boolean (got {other})."
        )),
    }
}

fn literal_json(l: &Literal) -> Value {
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

fn lookup(record: &Value, path: &str) -> Value {
    path.split('/')
        .try_fold(record, |v, seg| v.get(seg))
        .cloned()
        .unwrap_or(Value::Null)
}

/// Compares two JSON values; strings compare case-insensitively.
pub fn compare(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Null, Value::Null) => Some(std::cmp::Ordering::Equal),
        (Value::Null, _) | (_, Value::Null) => None,
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        (Value::String(x), Value::String(y)) => Some(x.to_lowercase().cmp(&y.to_lowercase())),
        (Value::String(x), Value::Number(y)) | (Value::Number(y), Value::String(x)) => {
            let ord = x.parse::<f64>().ok()?.partial_cmp(&y.as_f64()?)?;
            Some(if matches!(a, Value::String(_)) {
                ord
            } else {
                ord.reverse()
            })
        }
        _ => None,
    }
}

fn as_text(v: &Value) -> Option<String> {
    v.as_str().map(str::to_lowercase)
}

fn eval_value(expr: &Expr, record: &Value) -> Result<Value, String> {
    Ok(match expr {
        Expr::Lit(l) => literal_json(l),
        Expr::Property(p) => lookup(record, p),
        Expr::Not(e) => Value::Bool(!eval(e, record)?),
        Expr::And(a, b) => Value::Bool(eval(a, record)? && eval(b, record)?),
        Expr::Or(a, b) => Value::Bool(eval(a, record)? || eval(b, record)?),
        Expr::Cmp(op, a, b) => {
            let (x, y) = (eval_value(a, record)?, eval_value(b, record)?);
            let ord = compare(&x, &y);
            use std::cmp::Ordering::*;
            Value::Bool(match op {
                CmpOp::Eq => ord == Some(Equal),
                CmpOp::Ne => ord != Some(Equal),
                CmpOp::Gt => ord == Some(Greater),
                CmpOp::Ge => matches!(ord, Some(Greater | Equal)),
                CmpOp::Lt => ord == Some(Less),
                CmpOp::Le => matches!(ord, Some(Less | Equal)),
            })
        }
        Expr::Call(name, args) => {
            let lower = name.to_ascii_lowercase();
            match lower.as_str() {
                "contains" | "startswith" | "endswith" => {
                    let [(None, a), (None, b)] = &args[..] else {
                        return Err(format!("{name} takes two arguments."));
                    };
                    let (hay, needle) = (
                        as_text(&eval_value(a, record)?),
                        as_text(&eval_value(b, record)?),
                    );
                    let (Some(hay), Some(needle)) = (hay, needle) else {
                        return Ok(Value::Bool(false));
                    };
                    Value::Bool(match lower.as_str() {
                        "contains" => hay.contains(&needle),
                        "startswith" => hay.starts_with(&needle),
                        _ => hay.ends_with(&needle),
                    })
                }
                "tolower" | "toupper" => {
                    let [(None, a)] = &args[..] else {
                        return Err(format!("{name} takes one argument."));
                    };
                    match eval_value(a, record)? {
                        Value::String(s) if lower == "tolower" => Value::String(s.to_lowercase()),
                        Value::String(s) => Value::String(s.to_uppercase()),
                        other => other,
                    }
                }
                _ => return Err(format!("The function '{name}' is not supported.")),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_and_evaluates() {
        let r = json!({"Name": "O'Brien Ltd", "State": 0, "Id": "9a3c5e2b-0000-0000-0000-000000000001", "Region": "NA"});
        for (f, want) in [
            ("Name eq 'o''brien ltd'", true),
            ("State eq 0 and Region eq 'na'", true),
            (
                "not (State eq 1) and (Region eq 'EU' or Region eq 'NA')",
                true,
            ),
            ("contains(Name,'BRIEN')", true),
            ("startswith(Name, 'x') or endswith(Name,'ltd')", true),
            ("Id eq 9a3c5e2b-0000-0000-0000-000000000001", true),
            ("State gt 0", false),
            ("Missing eq null", true),
        ] {
            let e = parse(f).unwrap_or_else(|err| panic!("{f}: {err}"));
            assert_eq!(eval(&e, &r).unwrap(), want, "{f}");
        }
    }

    #[test]
    fn rejects_garbage() {
        for f in [
            "",
            "Name eq",
            "Name eq 'x",
            "(a eq 1",
            "a eq 1 and",
            "a === 1",
            &"(".repeat(100),
        ] {
            assert!(parse(f).is_err(), "{f:?} parsed");
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in ".{0,200}") {
            if let Ok(e) = parse(&s) {
                let _ = eval(&e, &json!({"a": 1, "b": "x"}));
            }
        }
    }
}
