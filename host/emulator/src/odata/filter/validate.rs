//! What Dataverse rejects before running a query.

use super::functions::query_fn;
use super::grammar::is_ident;
use super::{CRM, Expr, FilterError, LambdaOp, Literal};

/// Checks what Dataverse rejects before running a query: unknown functions,
/// wrong arguments, leading wildcards in `startswith`/`contains` values
/// (`startswith(name,'%x')`) and trailing ones in `endswith` values.
/// [`parse`] and [`parse_with_aliases`] call it.
pub fn validate(expr: &Expr) -> Result<(), FilterError> {
    match expr {
        Expr::Or(a, b) | Expr::And(a, b) | Expr::Cmp(_, a, b) => {
            validate(a)?;
            validate(b)
        }
        Expr::Not(e) => validate(e),
        Expr::Lit(_) => Ok(()),
        Expr::Property(p) => check_path(p),
        Expr::Lambda {
            path,
            op,
            var,
            body,
        } => {
            check_path(path)?;
            let bare_any = *op == LambdaOp::Any && **body == Expr::Lit(Literal::Bool(true));
            if !(is_ident(var) || var.is_empty() && bare_any) {
                return Err(FilterError::InvalidLambdaVariable {
                    var: var.clone(),
                    path: path.clone(),
                });
            }
            validate(body)
        }
        Expr::Call(name, args) => {
            for (_, a) in args {
                validate(a)?;
            }
            check_call(name, args)
        }
    }
}

pub(super) fn check_path(path: &str) -> Result<(), FilterError> {
    if path.split('/').all(is_ident) {
        Ok(())
    } else {
        Err(FilterError::InvalidPath {
            path: path.to_string(),
        })
    }
}

pub(super) fn positional<'e, const N: usize>(
    name: &str,
    args: &'e [(Option<String>, Expr)],
) -> Result<[&'e Expr; N], FilterError> {
    let wrong = || FilterError::ArgumentCount {
        function: name.to_string(),
        count: N,
    };
    if args.iter().any(|(n, _)| n.is_some()) {
        return Err(wrong());
    }
    let exprs: Vec<&Expr> = args.iter().map(|(_, e)| e).collect();
    exprs.try_into().map_err(|_| wrong())
}

pub(super) fn check_call(name: &str, args: &[(Option<String>, Expr)]) -> Result<(), FilterError> {
    match name.to_ascii_lowercase().as_str() {
        lower @ ("contains" | "startswith" | "endswith") => {
            let [_, needle] = positional::<2>(name, args)?;
            if let Expr::Lit(Literal::String(s)) = needle {
                if lower == "endswith" && s.ends_with('%') {
                    return Err(FilterError::TrailingWildcard {
                        function: name.to_string(),
                        value: s.clone(),
                    });
                }
                if lower != "endswith" && s.starts_with('%') {
                    return Err(FilterError::LeadingWildcard {
                        function: name.to_string(),
                        value: s.clone(),
                    });
                }
            }
            Ok(())
        }
        "tolower" | "toupper" => positional::<1>(name, args).map(|_| ()),
        _ if name.starts_with(CRM) => query_fn(name, args).map(|_| ()),
        _ => Err(unsupported(name)),
    }
}

/// [`FilterError::UnsupportedFunction`] for `name`.
pub(super) fn unsupported(name: &str) -> FilterError {
    FilterError::UnsupportedFunction {
        function: name.to_string(),
    }
}
