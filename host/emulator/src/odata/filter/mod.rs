//! OData `$filter` expressions: a nom grammar and an evaluator over JSON
//! records, following the Dataverse Web API ("Filter rows using OData").
//!
//! Besides comparisons, `and`/`or`/`not`, grouping and the string functions
//! `contains`/`startswith`/`endswith`/`tolower`/`toupper`, the grammar has
//! parameter aliases (`@p1`, see [`parse_with_aliases`]), the lambda
//! operators `any`/`all` over collections, and a subset of the Dataverse
//! query functions (`Microsoft.Dynamics.CRM.In(PropertyName='x',...)`).
//! String comparisons are case-insensitive, as in Dataverse and Global
//! Discovery; ISO dates compare as instants.
//!
//! Other code can check the filters it writes with [`parse`] and walk the
//! [`Expr`] tree:
//!
//! ```
//! use dvhost_emulator::filter::{self, CmpOp, Expr, Literal};
//!
//! let e = filter::parse("name eq 'O''Brien' and contains(city,'ber')").unwrap();
//! let [cmp, call] = e.conjuncts()[..] else { panic!("two conditions") };
//! let Expr::Cmp(CmpOp::Eq, left, right) = cmp else { panic!("a comparison") };
//! assert_eq!(**left, Expr::Property("name".into()));
//! assert_eq!(**right, Expr::Lit(Literal::String("O'Brien".into())));
//! let Expr::Call(name, args) = call else { panic!("a call") };
//! assert_eq!(name, "contains");
//! assert_eq!(args[1], (None, Expr::Lit(Literal::String("ber".into()))));
//! assert!(filter::parse("name eq").is_err());
//! ```

mod dates;
mod error;
mod eval;
mod functions;
mod grammar;
mod like;
#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;
mod validate;

use time::OffsetDateTime;

pub use error::FilterError;
pub use eval::{compare, eval, eval_with};
pub use grammar::{parse, parse_with_aliases};
pub use validate::validate;

/// Longest `$filter` (and parameter alias value) accepted: as long as the
/// longest URL accepted (64 KiB inside `$batch`).
const MAX_LEN: usize = 64 * 1024;
/// Deepest nesting (groups, function arguments, `not`, lists, lambda
/// bodies, alias values) accepted; bounds the parser's and the evaluator's
/// recursion.
const MAX_DEPTH: usize = 64;
/// Most alias text substituted into one expression (aliases may be used
/// many times).
const MAX_ALIAS_EXPANSION: usize = 256 * 1024;
/// The service namespace of the Dataverse query functions.
const CRM: &str = "Microsoft.Dynamics.CRM.";

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `eq`
    Eq,
    /// `ne`
    Ne,
    /// `gt`
    Gt,
    /// `ge`
    Ge,
    /// `lt`
    Lt,
    /// `le`
    Le,
}

/// A literal value.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// `null`
    Null,
    /// `true` or `false`
    Bool(bool),
    /// A number (`5`, `-2.5`, `1e3`).
    Number(f64),
    /// A quoted string, unescaped: `'O''Brien'` holds `O'Brien`.
    String(String),
    /// A GUID written bare (`9a3c5e2b-0000-0000-0000-000000000001`).
    Guid(uuid::Uuid),
    /// An ISO date or date-time, kept as written.
    DateTime(String),
    /// `['a','b']` or, JSON style, `["a","O'B"]`.
    List(Vec<Literal>),
}

/// The lambda operators over collections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LambdaOp {
    /// `path/any(...)`
    Any,
    /// `path/all(...)`
    All,
}

/// A parsed expression.
///
/// Long `and`/`or` chains are kept in their written order but as a
/// balanced tree (so `a and b and c and d` is `And(And(a, b), And(c, d))`);
/// [`Expr::conjuncts`] flattens the `and`s again.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// `left or right`
    Or(Box<Expr>, Box<Expr>),
    /// `left and right`
    And(Box<Expr>, Box<Expr>),
    /// `not operand`
    Not(Box<Expr>),
    /// `left op right`; usually a [`Expr::Property`] on the left and an
    /// [`Expr::Lit`] on the right (`name eq 'x'`), but either side may be
    /// any operand (`firstname eq lastname`, `tolower(name) eq 'x'`).
    Cmp(CmpOp, Box<Expr>, Box<Expr>),
    /// A function call, its name as written (`contains`,
    /// `Microsoft.Dynamics.CRM.In`), with its arguments in order; named
    /// arguments (`PropertyName='x'`) carry their name, positional ones
    /// (`contains(name,'x')`) `None`.
    Call(String, Vec<(Option<String>, Expr)>),
    /// A property path (`name`, `primarycontactid/fullname`, or inside a
    /// lambda body `t/subject`).
    Property(String),
    /// A literal.
    Lit(Literal),
    /// `path/any(var:body)` or `path/all(var:body)`. `any()` without an
    /// argument has an empty `var` and the body `true`.
    Lambda {
        /// The collection's property path.
        path: String,
        /// `any` or `all`.
        op: LambdaOp,
        /// The lambda variable.
        var: String,
        /// The condition on each member.
        body: Box<Expr>,
    },
}

impl Expr {
    /// The operands of the top-level `and`s, in written order: `[a, b, c]`
    /// for `a and (b and c)` or `a and b and c`; `[self]` when `self` is
    /// not an `and`.
    pub fn conjuncts(&self) -> Vec<&Expr> {
        let mut out = Vec::new();
        let mut todo = vec![self];
        while let Some(e) = todo.pop() {
            match e {
                Expr::And(a, b) => {
                    todo.push(b);
                    todo.push(a);
                }
                other => out.push(other),
            }
        }
        out
    }
}

/// What evaluation needs besides the record.
#[derive(Debug, Clone, Default)]
pub struct EvalContext {
    /// The calling user's id, for `EqualUserId`/`NotEqualUserId`.
    pub user_id: Option<String>,
    /// The current time for the date functions (`Today`, `LastXDays`, ...);
    /// its offset stands for the user's time zone. The system clock (UTC)
    /// when unset.
    pub now: Option<OffsetDateTime>,
}
