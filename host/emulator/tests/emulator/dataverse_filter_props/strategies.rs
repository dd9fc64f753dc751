//! Random well-formed filters.

use super::*;

// ---------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------

pub(crate) fn op() -> impl Strategy<Value = Op> {
    prop::sample::select(&[Op::Eq, Op::Ne, Op::Gt, Op::Ge, Op::Lt, Op::Le][..])
}

/// A non-null literal of the column's type.
pub(crate) fn value_lit(col: Col) -> BoxedStrategy<Lit> {
    let from_row = (any::<Index>(), case()).prop_map(|(i, c)| Lit::FromRow(i, c));
    match col {
        Col::Name | Col::City => prop_oneof![
            3 => from_row,
            1 => (prop::sample::select(WORDS), case()).prop_map(|(t, c)| Lit::Text(t, c)),
            1 => (prop::sample::select(CITIES), case()).prop_map(|(t, c)| Lit::Text(t, c)),
        ]
        .boxed(),
        Col::Revenue => prop_oneof![
            2 => from_row,
            2 => prop::sample::select(REVENUES).prop_map(Lit::Num),
            1 => cents(200_000_000).prop_map(Lit::Num),
            1 => (-100_000..0i64).prop_map(|c| Lit::Num(c as f64 / 100.0)),
        ]
        .boxed(),
        Col::Employees => prop_oneof![
            2 => from_row,
            2 => prop::sample::select(EMPLOYEES).prop_map(|n| Lit::Num(n as f64)),
            1 => (-5..6000i64).prop_map(|n| Lit::Num(n as f64)),
        ]
        .boxed(),
        Col::Category => (0..=3i64).prop_map(|n| Lit::Num(n as f64)).boxed(),
        Col::Credit => any::<bool>().prop_map(Lit::Bool).boxed(),
        Col::Id => prop_oneof![4 => from_row, 1 => Just(Lit::OtherId)].boxed(),
    }
}

pub(crate) fn comparison() -> impl Strategy<Value = Filter> {
    prop::sample::select(COLS)
        .prop_flat_map(|col| {
            let lit = prop_oneof![1 => Just(Lit::Null), 4 => value_lit(col)];
            (Just(col), op(), lit)
        })
        .prop_map(|(col, op, lit)| {
            // Only `eq`/`ne` with null and on booleans and ids.
            let op = if matches!(lit, Lit::Null) || !col.ordered() {
                if matches!(op, Op::Eq | Op::Ge | Op::Le) {
                    Op::Eq
                } else {
                    Op::Ne
                }
            } else {
                op
            };
            Filter::Cmp(col, op, lit)
        })
}

pub(crate) fn needle() -> impl Strategy<Value = Needle> {
    prop_oneof![
        3 => (any::<Index>(), any::<Index>(), 1..=4usize, case())
            .prop_map(|(r, s, n, c)| Needle::FromRow(r, s, n, c)),
        1 => (prop::sample::select(WORDS), case()).prop_map(|(t, c)| Needle::Text(t, c)),
        1 => (prop::sample::select(CITIES), case()).prop_map(|(t, c)| Needle::Text(t, c)),
        1 => "[a-zA-Z' ]{1,3}".prop_map(Needle::Chars),
    ]
}

pub(crate) fn text_fn() -> impl Strategy<Value = Filter> {
    (
        prop::sample::select(&[TextFn::Contains, TextFn::StartsWith, TextFn::EndsWith][..]),
        prop::sample::select(&[Col::Name, Col::City][..]),
        needle(),
    )
        .prop_map(|(f, col, n)| Filter::Text(f, col, n))
}

pub(crate) fn query_fn() -> impl Strategy<Value = Filter> {
    let in_cols = &[
        Col::Name,
        Col::City,
        Col::Revenue,
        Col::Employees,
        Col::Category,
        Col::Id,
    ][..];
    let num_cols = &[Col::Revenue, Col::Employees, Col::Category][..];
    prop_oneof![
        2 => prop::sample::select(in_cols).prop_flat_map(|col| {
            (
                Just(col),
                any::<bool>(),
                prop::collection::vec(value_lit(col), 1..=4),
                any::<bool>(),
            )
        })
        .prop_map(|(col, negate, values, json_style)| Filter::In {
            col,
            negate,
            values,
            json_style,
        }),
        1 => prop::sample::select(num_cols)
            .prop_flat_map(|col| (Just(col), any::<bool>(), value_lit(col), value_lit(col)))
            .prop_map(|(col, negate, lo, hi)| Filter::Between { col, negate, lo, hi }),
        1 => (prop::sample::select(COLS), any::<bool>())
            .prop_map(|(col, negate)| Filter::IsNull { col, negate }),
    ]
}

pub(crate) fn filter() -> BoxedStrategy<Filter> {
    let leaf = prop_oneof![
        4 => comparison(),
        2 => text_fn(),
        2 => query_fn(),
    ];
    leaf.prop_recursive(4, 24, 2, |inner| {
        prop_oneof![
            2 => (inner.clone(), inner.clone()).prop_map(|(a, b)| Filter::And(Box::new(a), Box::new(b))),
            2 => (inner.clone(), inner.clone()).prop_map(|(a, b)| Filter::Or(Box::new(a), Box::new(b))),
            2 => inner.clone().prop_map(|e| Filter::Not(Box::new(e))),
            1 => inner.prop_map(|e| Filter::Group(Box::new(e))),
        ]
    })
    .boxed()
}
