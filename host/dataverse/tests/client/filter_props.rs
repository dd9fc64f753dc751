//! The query builder's `$filter` against the emulator's parser: for any
//! strings in every value position, the rendered filter parses to exactly
//! one condition per builder call, ANDed, each with its value intact (text
//! for `contains`/`startswith`/`endswith` with its LIKE wildcards escaped).
//! So no value can add, remove or change a condition.

use dvhost_dataverse::{EntitySet, FilterValue, Op, Query, TextMatch};
use dvhost_emulator::filter::{CmpOp, Expr, Literal, parse};
use proptest::prelude::*;

/// One builder call and what the parser must see for it.
#[derive(Debug, Clone)]
enum Call {
    Compare(&'static str, Op, FilterValue),
    Text(TextMatch, &'static str, String),
}

fn column() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "name",
        "accountnumber",
        "_parentaccountid_value",
        "primarycontactid/fullname",
        "revenue",
    ])
}

fn op() -> impl Strategy<Value = Op> {
    prop::sample::select(vec![Op::Eq, Op::Ne, Op::Gt, Op::Ge, Op::Lt, Op::Le])
}

/// Strings heavy in what could break out of a literal.
fn hostile_string() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        prop::collection::vec(
            prop::sample::select(vec![
                "'", "''", "(", ")", ",", " and ", " or ", " eq ", "not ", "%27", "&", "$filter=",
                "\r\n", "\u{0}", "\\", "\"", "name", "1", "é", "😀", " ",
            ]),
            0..12
        )
        .prop_map(|parts| parts.concat()),
    ]
}

fn value() -> impl Strategy<Value = FilterValue> {
    prop_oneof![
        hostile_string().prop_map(FilterValue::String),
        any::<i64>().prop_map(FilterValue::from),
        (-1e12f64..1e12).prop_map(FilterValue::Number),
        any::<bool>().prop_map(FilterValue::Bool),
        any::<u128>().prop_map(|n| FilterValue::Guid(uuid::Uuid::from_u128(n))),
        Just(FilterValue::Null),
    ]
}

fn call() -> impl Strategy<Value = Call> {
    prop_oneof![
        (column(), op(), value()).prop_map(|(c, o, v)| Call::Compare(c, o, v)),
        (
            prop::sample::select(vec![
                TextMatch::Contains,
                TextMatch::StartsWith,
                TextMatch::EndsWith
            ]),
            column(),
            hostile_string()
        )
            .prop_map(|(f, c, t)| Call::Text(f, c, t)),
    ]
}

fn cmp_op(op: Op) -> CmpOp {
    match op {
        Op::Eq => CmpOp::Eq,
        Op::Ne => CmpOp::Ne,
        Op::Gt => CmpOp::Gt,
        Op::Ge => CmpOp::Ge,
        Op::Lt => CmpOp::Lt,
        Op::Le => CmpOp::Le,
    }
}

fn literal(v: &FilterValue) -> Literal {
    match v {
        FilterValue::String(s) => Literal::String(s.clone()),
        FilterValue::Number(n) => Literal::Number(*n),
        // The emulator reads numbers as f64; the builder writes them exactly
        // (a unit test checks the text).
        FilterValue::Int(n) => Literal::Number(*n as f64),
        FilterValue::Bool(b) => Literal::Bool(*b),
        FilterValue::Guid(g) => Literal::Guid(*g),
        FilterValue::Null => Literal::Null,
        FilterValue::DateTime(_) => unreachable!("not generated"),
    }
}

fn text_name(f: TextMatch) -> &'static str {
    match f {
        TextMatch::Contains => "contains",
        TextMatch::StartsWith => "startswith",
        TextMatch::EndsWith => "endswith",
    }
}

/// The text as the builder sends it: LIKE wildcards escaped as `[%]`,
/// `[_]`, `[[]`, so it still means the literal text.
fn like_escaped(t: &str) -> String {
    t.chars()
        .map(|c| match c {
            '%' | '_' | '[' => format!("[{c}]"),
            _ => c.to_string(),
        })
        .collect()
}

fn expected(call: &Call) -> Expr {
    let prop = |c: &str| Box::new(Expr::Property(c.to_string()));
    match call {
        Call::Compare(c, o, v) => Expr::Cmp(cmp_op(*o), prop(c), Box::new(Expr::Lit(literal(v)))),
        Call::Text(f, c, t) => Expr::Call(
            text_name(*f).to_string(),
            vec![
                (None, Expr::Property(c.to_string())),
                (None, Expr::Lit(Literal::String(like_escaped(t)))),
            ],
        ),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn every_builder_call_is_exactly_one_intact_condition(
        calls in prop::collection::vec(call(), 1..6)
    ) {
        let mut q = Query::new(&EntitySet::new("accounts").unwrap());
        for c in &calls {
            q = match c.clone() {
                Call::Compare(col, o, v) => q.filter(col, o, v).unwrap(),
                Call::Text(f, col, t) => q.filter_text(f, col, &t).unwrap(),
            };
        }
        let rendered = q.rendered_filter().unwrap();
        let parsed = parse(&rendered)
            .unwrap_or_else(|e| panic!("{rendered:?} does not parse: {e}"));
        let conditions = parsed.conjuncts();
        prop_assert_eq!(conditions.len(), calls.len(), "{}", rendered);
        for (got, call) in conditions.iter().zip(&calls) {
            prop_assert_eq!(*got, &expected(call), "{}", rendered);
        }
    }
}
