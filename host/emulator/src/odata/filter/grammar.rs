//! The `$filter` grammar: nom parsers for the literals, hand-written
//! recursion for groups, calls, lists, lambdas, `not`, `and` and `or`.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use nom::branch::alt;
use nom::bytes::complete::{tag, tag_no_case, take_while, take_while_m_n, take_while1};
use nom::character::complete::{char, digit1, multispace1};
use nom::combinator::{map, map_res, opt, recognize, value};
use nom::multi::many0;
use nom::sequence::{delimited, pair, preceded, terminated};
use nom::{IResult, Parser};

use super::validate::validate;
use super::{CmpOp, Expr, FilterError, LambdaOp, Literal, MAX_ALIAS_EXPANSION, MAX_DEPTH, MAX_LEN};

pub(super) type Res<'a, T> = IResult<&'a str, T>;
pub(super) type PErr<'a> = nom::error::Error<&'a str>;

/// Parser state: the aliases in scope, the nesting depth, and the message of
/// a fatal error (returned as a nom `Failure`, which stops backtracking).
pub(super) struct Ctx<'m> {
    /// `None` while parsing an alias value: aliases may not nest.
    aliases: Option<&'m HashMap<String, String>>,
    depth: Cell<usize>,
    expanded: Cell<usize>,
    err: RefCell<Option<FilterError>>,
}

impl<'m> Ctx<'m> {
    fn new(aliases: Option<&'m HashMap<String, String>>, depth: usize) -> Self {
        Ctx {
            aliases,
            depth: Cell::new(depth),
            expanded: Cell::new(0),
            err: RefCell::new(None),
        }
    }

    fn fail<'a, T>(&self, i: &'a str, error: FilterError) -> Res<'a, T> {
        let mut err = self.err.borrow_mut();
        if err.is_none() {
            *err = Some(error);
        }
        Err(nom::Err::Failure(nom::error::Error::new(
            i,
            nom::error::ErrorKind::Verify,
        )))
    }

    /// Runs `f` one nesting level deeper, failing past [`MAX_DEPTH`].
    fn nested<'a, T>(&self, i: &'a str, f: impl FnOnce(&'a str) -> Res<'a, T>) -> Res<'a, T> {
        let d = self.depth.get();
        if d >= MAX_DEPTH {
            return self.fail(i, FilterError::TooDeep);
        }
        self.depth.set(d + 1);
        let r = f(i);
        self.depth.set(d);
        r
    }
}

pub(super) fn nom_error(i: &str, kind: nom::error::ErrorKind) -> nom::Err<PErr<'_>> {
    nom::Err::Error(nom::error::Error::new(i, kind))
}

pub(super) fn ident(i: &str) -> Res<'_, &str> {
    recognize(pair(
        take_while1(|c: char| c.is_ascii_alphabetic() || c == '_'),
        take_while(|c: char| c.is_ascii_alphanumeric() || c == '_'),
    ))
    .parse(i)
}

/// Whether `s` is one OData identifier (letters, digits, `_`).
pub(super) fn is_ident(s: &str) -> bool {
    matches!(ident(s), Ok(("", _)))
}

pub(super) fn string_lit(i: &str) -> Res<'_, String> {
    let (mut rest, _) = char('\'').parse(i)?;
    let mut out = String::new();
    loop {
        match rest.find('\'') {
            None => return Err(nom_error(rest, nom::error::ErrorKind::Char)),
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

/// A JSON string (`"O'Brien"`, with JSON escapes), as Dataverse accepts in
/// array values.
pub(super) fn json_string(i: &str) -> Res<'_, String> {
    let Some(body) = i.strip_prefix('"') else {
        return Err(nom_error(i, nom::error::ErrorKind::Char));
    };
    let mut escaped = false;
    for (pos, ch) in body.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match ch {
            '\\' => escaped = true,
            '"' => {
                let end = pos + 2;
                return match serde_json::from_str::<String>(&i[..end]) {
                    Ok(s) => Ok((&i[end..], s)),
                    Err(_) => Err(nom_error(i, nom::error::ErrorKind::Escaped)),
                };
            }
            _ => {}
        }
    }
    Err(nom_error(i, nom::error::ErrorKind::Char))
}

pub(super) fn hex(n: usize) -> impl Fn(&str) -> Res<'_, &str> {
    move |i| take_while_m_n(n, n, |c: char| c.is_ascii_hexdigit()).parse(i)
}

pub(super) fn guid_lit(i: &str) -> Res<'_, uuid::Uuid> {
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

pub(super) fn datetime_lit(i: &str) -> Res<'_, String> {
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

pub(super) fn number_lit(i: &str) -> Res<'_, f64> {
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
pub(super) fn keyword<'a>(
    k: &'static str,
) -> impl Parser<&'a str, Output = &'a str, Error = PErr<'a>> {
    terminated(
        tag_no_case(k),
        nom::combinator::not(take_while_m_n(1, 1, |c: char| {
            c.is_ascii_alphanumeric() || c == '_'
        })),
    )
}

// The recursive part of the grammar (groups, arguments, lists, lambdas,
// `not`, `and`/`or`) is written by hand rather than with nested nom
// combinators: that keeps the stack used per nesting level small, also in
// debug builds.

pub(super) fn skip_ws(i: &str) -> &str {
    i.trim_start_matches([' ', '\t', '\r', '\n'])
}

/// The rest after keyword `k` (not running on into an identifier).
pub(super) fn after_keyword<'a>(i: &'a str, k: &'static str) -> Option<&'a str> {
    keyword(k).parse(i).ok().map(|(rest, _)| rest)
}

pub(super) fn expect(i: &str, ch: char) -> Res<'_, ()> {
    match i.strip_prefix(ch) {
        Some(rest) => Ok((rest, ())),
        None => Err(nom_error(i, nom::error::ErrorKind::Char)),
    }
}

/// A literal other than a list.
pub(super) fn scalar_lit(i: &str) -> Res<'_, Literal> {
    alt((
        value(Literal::Null, keyword("null")),
        value(Literal::Bool(true), keyword("true")),
        value(Literal::Bool(false), keyword("false")),
        map(string_lit, Literal::String),
        map(guid_lit, Literal::Guid),
        map(datetime_lit, Literal::DateTime),
        map(number_lit, Literal::Number),
    ))
    .parse(i)
}

/// `[item, ...]`; items are literals, lists or JSON strings.
pub(super) fn list_lit<'a>(c: &Ctx, i: &'a str) -> Res<'a, Literal> {
    let (i, ()) = expect(i, '[')?;
    c.nested(i, |i| {
        let mut items = Vec::new();
        let mut rest = skip_ws(i);
        if let Some(r) = rest.strip_prefix(']') {
            return Ok((r, Literal::List(items)));
        }
        loop {
            let (r, item) = if rest.starts_with('[') {
                list_lit(c, rest)?
            } else if rest.starts_with('"') {
                map(json_string, Literal::String).parse(rest)?
            } else {
                scalar_lit(rest)?
            };
            items.push(item);
            rest = skip_ws(r);
            if let Some(r) = rest.strip_prefix(',') {
                rest = skip_ws(r);
            } else if let Some(r) = rest.strip_prefix(']') {
                return Ok((r, Literal::List(items)));
            } else {
                return Err(nom_error(rest, nom::error::ErrorKind::SeparatedList));
            }
        }
    })
}

/// The arguments of a call, after its `(`; named ones are `Name=value`.
pub(super) fn call_args<'a>(c: &Ctx, i: &'a str) -> Res<'a, Vec<(Option<String>, Expr)>> {
    let mut args = Vec::new();
    let mut rest = skip_ws(i);
    if let Some(r) = rest.strip_prefix(')') {
        return Ok((r, args));
    }
    loop {
        let named = ident(rest).ok().and_then(|(r, n)| {
            let r = skip_ws(r).strip_prefix('=')?;
            Some((r, n))
        });
        let (r, arg) = match named {
            Some((r, n)) => {
                let (r, e) = or_expr(c, r)?;
                (r, (Some(n.to_string()), e))
            }
            None => {
                let (r, e) = or_expr(c, rest)?;
                (r, (None, e))
            }
        };
        args.push(arg);
        rest = skip_ws(r);
        if let Some(r) = rest.strip_prefix(',') {
            rest = r;
        } else if let Some(r) = rest.strip_prefix(')') {
            return Ok((r, args));
        } else {
            return Err(nom_error(rest, nom::error::ErrorKind::SeparatedList));
        }
    }
}

/// After `path/any` or `path/all` and the `(`: `var:body)` or, for `any`,
/// just `)`.
pub(super) fn lambda<'a>(c: &Ctx, path: &str, op: LambdaOp, i: &'a str) -> Res<'a, Expr> {
    let rest = skip_ws(i);
    if let Some(rest) = rest.strip_prefix(')') {
        if op == LambdaOp::All {
            return c.fail(
                rest,
                FilterError::AllWithoutLambda {
                    path: path.to_string(),
                },
            );
        }
        return Ok((
            rest,
            Expr::Lambda {
                path: path.to_string(),
                op,
                var: String::new(),
                body: Box::new(Expr::Lit(Literal::Bool(true))),
            },
        ));
    }
    let (rest, var) = ident(rest)?;
    let (rest, ()) = expect(skip_ws(rest), ':')?;
    let (rest, body) = or_expr(c, rest)?;
    let (rest, ()) = expect(skip_ws(rest), ')')?;
    Ok((
        rest,
        Expr::Lambda {
            path: path.to_string(),
            op,
            var: var.to_string(),
            body: Box::new(body),
        },
    ))
}

pub(super) fn slash_path(i: &str) -> Res<'_, &str> {
    recognize(pair(ident, many0(pair(char('/'), ident)))).parse(i)
}

pub(super) fn dotted_name(i: &str) -> Res<'_, &str> {
    recognize(pair(ident, many0(pair(char('.'), ident)))).parse(i)
}

/// `any` or `all` as the last segment of `path`, with the collection path.
pub(super) fn lambda_op(path: &str) -> Option<(&str, LambdaOp)> {
    let (coll, last) = path.rsplit_once('/')?;
    if last.eq_ignore_ascii_case("any") {
        Some((coll, LambdaOp::Any))
    } else if last.eq_ignore_ascii_case("all") {
        Some((coll, LambdaOp::All))
    } else {
        None
    }
}

/// What starts with an identifier: a lambda (`path/any(...)`), a call
/// (`name(...)`, `Microsoft.Dynamics.CRM.In(...)`) or a property path.
pub(super) fn named<'a>(c: &Ctx, i: &'a str) -> Res<'a, Expr> {
    let (after_path, path) = slash_path(i)?;
    if path.contains('/') {
        if let (Some((coll, op)), Some(rest)) =
            (lambda_op(path), skip_ws(after_path).strip_prefix('('))
        {
            return lambda(c, coll, op, rest);
        }
        return Ok((after_path, Expr::Property(path.to_string())));
    }
    let (after_name, name) = dotted_name(i)?;
    if let Some(rest) = skip_ws(after_name).strip_prefix('(') {
        let (rest, args) = call_args(c, rest)?;
        return Ok((rest, Expr::Call(name.to_string(), args)));
    }
    Ok((after_path, Expr::Property(path.to_string())))
}

/// `@name`: the alias's value parsed as an operand, or null if unassigned.
pub(super) fn alias<'a>(c: &Ctx, i: &'a str) -> Res<'a, Expr> {
    let (rest, name) = preceded(char('@'), ident).parse(i)?;
    let key = format!("@{name}");
    let Some(aliases) = c.aliases else {
        return c.fail(i, FilterError::NestedAlias { alias: key });
    };
    let Some(raw) = aliases.get(&key).or_else(|| aliases.get(name)) else {
        return Ok((rest, Expr::Lit(Literal::Null)));
    };
    if raw.len() > MAX_LEN {
        return c.fail(i, FilterError::AliasTooLong { alias: key });
    }
    let expanded = c.expanded.get() + raw.len();
    if expanded > MAX_ALIAS_EXPANSION {
        return c.fail(i, FilterError::AliasExpansionTooLarge);
    }
    c.expanded.set(expanded);
    // The value continues the current nesting depth.
    let inner = Ctx::new(None, c.depth.get());
    match whole(&inner, raw) {
        Ok(e) => Ok((rest, e)),
        Err(e) => {
            let source = inner.err.take().unwrap_or_else(|| syntax_error(raw, &e));
            c.fail(
                i,
                FilterError::InvalidAlias {
                    alias: key,
                    source: Box::new(source),
                },
            )
        }
    }
}

pub(super) fn primary<'a>(c: &Ctx, i: &'a str) -> Res<'a, Expr> {
    let i = skip_ws(i);
    if let Some(rest) = i.strip_prefix('(') {
        let (rest, e) = or_expr(c, rest)?;
        let (rest, ()) = expect(skip_ws(rest), ')')?;
        return Ok((rest, e));
    }
    if i.starts_with('@') {
        return alias(c, i);
    }
    if i.starts_with('[') {
        let (rest, l) = list_lit(c, i)?;
        return Ok((rest, Expr::Lit(l)));
    }
    if let Ok((rest, l)) = scalar_lit(i) {
        return Ok((rest, Expr::Lit(l)));
    }
    named(c, i)
}

pub(super) fn cmp_op(i: &str) -> Res<'_, CmpOp> {
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

/// ` op ` between two operands (blanks required on both sides).
pub(super) fn cmp_tail(i: &str) -> Option<(&str, CmpOp)> {
    delimited(multispace1, cmp_op, multispace1).parse(i).ok()
}

pub(super) fn comparison<'a>(c: &Ctx, i: &'a str) -> Res<'a, Expr> {
    let (i, left) = primary(c, i)?;
    if let Some((rest, op)) = cmp_tail(i) {
        match primary(c, rest) {
            Ok((rest, right)) => return Ok((rest, Expr::Cmp(op, Box::new(left), Box::new(right)))),
            Err(nom::Err::Error(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok((i, left))
}

pub(super) fn unary<'a>(c: &Ctx, i: &'a str) -> Res<'a, Expr> {
    if let Some(rest) = after_keyword(i, "not") {
        match c.nested(rest, |r| unary(c, skip_ws(r))) {
            Ok((rest, e)) => return Ok((rest, Expr::Not(Box::new(e)))),
            // `not` may still be a property name.
            Err(nom::Err::Error(_)) => {}
            Err(e) => return Err(e),
        }
    }
    comparison(c, i)
}

/// Joins `items` with `mk` into a balanced tree, keeping their order:
/// long `and`/`or` chains then cost logarithmic, not linear, recursion.
pub(super) fn balanced(mut items: Vec<Expr>, mk: fn(Box<Expr>, Box<Expr>) -> Expr) -> Option<Expr> {
    while items.len() > 1 {
        let mut next = Vec::with_capacity(items.len().div_ceil(2));
        let mut it = items.into_iter();
        while let Some(a) = it.next() {
            next.push(match it.next() {
                Some(b) => mk(Box::new(a), Box::new(b)),
                None => a,
            });
        }
        items = next;
    }
    items.pop()
}

/// `item (k item)*`, with blanks around, as a balanced tree of `mk`.
pub(super) fn chain<'a>(
    c: &Ctx,
    i: &'a str,
    k: &'static str,
    item: fn(&Ctx, &'a str) -> Res<'a, Expr>,
    mk: fn(Box<Expr>, Box<Expr>) -> Expr,
) -> Res<'a, Expr> {
    let (rest, first) = item(c, skip_ws(i))?;
    let mut rest = skip_ws(rest);
    let mut items = vec![first];
    while let Some(after) = after_keyword(rest, k) {
        match item(c, skip_ws(after)) {
            Ok((r, e)) => {
                items.push(e);
                rest = skip_ws(r);
            }
            Err(nom::Err::Error(_)) => break,
            Err(e) => return Err(e),
        }
    }
    match balanced(items, mk) {
        Some(e) => Ok((rest, e)),
        None => Err(nom_error(rest, nom::error::ErrorKind::Many0)),
    }
}

pub(super) fn and_expr<'a>(c: &Ctx, i: &'a str) -> Res<'a, Expr> {
    chain(c, i, "and", unary, Expr::And)
}

pub(super) fn or_expr<'a>(c: &Ctx, i: &'a str) -> Res<'a, Expr> {
    c.nested(i, |i| chain(c, i, "or", and_expr, Expr::Or))
}

/// Parses all of `input` as one expression.
pub(super) fn whole<'a>(c: &Ctx, input: &'a str) -> Result<Expr, nom::Err<PErr<'a>>> {
    let (rest, e) = or_expr(c, input)?;
    let rest = skip_ws(rest);
    if rest.is_empty() {
        Ok(e)
    } else {
        Err(nom_error(rest, nom::error::ErrorKind::Eof))
    }
}

pub(super) fn syntax_error(input: &str, e: &nom::Err<PErr<'_>>) -> FilterError {
    let at = match e {
        nom::Err::Error(e) | nom::Err::Failure(e) => input.len() - e.input.len(),
        nom::Err::Incomplete(_) => input.len(),
    };
    FilterError::Syntax {
        position: at,
        input: input.to_string(),
    }
}

/// Parses a whole `$filter` value (parameter aliases are null) and
/// [`validate`]s it.
pub fn parse(input: &str) -> Result<Expr, FilterError> {
    parse_with_aliases(input, &HashMap::new())
}

/// Parses a whole `$filter` value whose parameter aliases (`@p1`) take their
/// values from `aliases`, which maps `@p1` to the raw (URL-decoded) text
/// from the query string: `'lastname'`, `["A","O'B"]`, `5`, or a property
/// name such as `revenue`. An unassigned alias is null. The result is
/// [`validate`]d.
pub fn parse_with_aliases(
    input: &str,
    aliases: &HashMap<String, String>,
) -> Result<Expr, FilterError> {
    if input.len() > MAX_LEN {
        return Err(FilterError::TooLong);
    }
    let c = Ctx::new(Some(aliases), 0);
    let expr = match whole(&c, input) {
        Ok(e) => e,
        Err(e) => return Err(c.err.take().unwrap_or_else(|| syntax_error(input, &e))),
    };
    validate(&expr)?;
    Ok(expr)
}
