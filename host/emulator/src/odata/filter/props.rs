//! Property tests: no input makes the parser or the evaluator panic.

use std::cmp::Ordering;

use serde_json::{Value, json};

use super::dates::parse_datetime;
use super::tests::ctx;
use super::*;
use crate::test_support::must_not_panic;

const TOKENS: &[&str] = &[
    "(",
    ")",
    "[",
    "]",
    ",",
    " ",
    " eq ",
    " ne ",
    " gt ",
    " and ",
    " or ",
    "not ",
    "'a'",
    "'%x'",
    "\"b\"",
    "1",
    "-2.5",
    "2024-05-01",
    "2024-05-01T10:00:00Z",
    "null",
    "true",
    "@p1",
    "@p2",
    "@p3",
    "name",
    "n",
    "d",
    "tasks",
    "tags",
    "/any(",
    "/all(",
    "t:",
    "t/x",
    "t",
    "=",
    "contains(",
    "startswith(",
    "endswith(",
    "tolower(",
    "Microsoft.Dynamics.CRM.In(",
    "Microsoft.Dynamics.CRM.NotBetween(",
    "Microsoft.Dynamics.CRM.LastXDays(",
    "Microsoft.Dynamics.CRM.Today(",
    "Microsoft.Dynamics.CRM.EqualUserId(",
    "Microsoft.Dynamics.CRM.On(",
    "Microsoft.Dynamics.CRM.Null(",
    "PropertyName=",
    "PropertyValues=",
    "PropertyValue=",
    "'name'",
    "'d'",
    "'n'",
    "9a3c5e2b-0000-0000-0000-000000000001",
];

fn soup(max: usize) -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    prop::collection::vec(prop::sample::select(TOKENS), 0..max).prop_map(|t| t.concat())
}

/// Operands: properties, literals of every kind, aliases, calls.
const OPERANDS: &[&str] = &[
    "name",
    "n",
    "d",
    "tasks",
    "tags",
    "t",
    "t/x",
    "'a'",
    "'%x'",
    "\"b\"",
    "1",
    "-2.5",
    "null",
    "true",
    "2024-05-01",
    "2024-05-14T10:00:00Z",
    "@p1",
    "@p2",
    "@p3",
    "9a3c5e2b-0000-0000-0000-000000000001",
    "['a','b']",
    "[\"5\",\"20\"]",
    "[1,[2]]",
    "[]",
    "tolower(name)",
    "'2024-05-14'",
    "3",
];

/// Dataverse query functions, supported and not.
const QUERY_FNS: &[&str] = &[
    "In",
    "NotIn",
    "Between",
    "NotBetween",
    "Null",
    "NotNull",
    "EqualUserId",
    "NotEqualUserId",
    "Today",
    "Yesterday",
    "LastXDays",
    "NextXMonths",
    "ThisYear",
    "On",
    "OnOrAfter",
    "Bogus",
    "ThisWeek",
];

/// Mostly well-formed filters, so that evaluation gets exercised too.
fn structured() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    let operand = prop::sample::select(OPERANDS).prop_map(str::to_string);
    let op = prop::sample::select(&[" eq ", " ne ", " gt ", " ge ", " lt ", " le "][..]);
    let func = prop::sample::select(QUERY_FNS);
    let param = prop::sample::select(&["PropertyValue", "PropertyValues", "Other"][..]);
    let leaf = prop_oneof![
        (operand.clone(), op, operand.clone()).prop_map(|(a, o, b)| format!("{a}{o}{b}")),
        (
            prop::sample::select(&["contains", "startswith", "endswith"][..]),
            operand.clone(),
            operand.clone()
        )
            .prop_map(|(f, a, b)| format!("{f}({a},{b})")),
        (func.clone(), operand.clone(), param, operand.clone()).prop_map(|(f, p, k, v)| {
            format!("Microsoft.Dynamics.CRM.{f}(PropertyName={p},{k}={v})")
        }),
        func.prop_map(|f| format!("Microsoft.Dynamics.CRM.{f}(PropertyName='d')")),
        Just("tasks/any()".to_string()),
        operand,
    ];
    leaf.prop_recursive(6, 48, 4, |inner| {
        prop_oneof![
            inner.clone().prop_map(|e| format!("not {e}")),
            inner.clone().prop_map(|e| format!("({e})")),
            (
                inner.clone(),
                prop::sample::select(&[" and ", " or "][..]),
                inner.clone()
            )
                .prop_map(|(a, o, b)| format!("{a}{o}{b}")),
            (
                prop::sample::select(&["tasks", "tags", "t/x", "name"][..]),
                prop::sample::select(&["any", "all"][..]),
                inner
            )
                .prop_map(|(p, o, e)| format!("{p}/{o}(t:{e})")),
        ]
    })
}

/// `s` with one random cut, to reach the error paths.
fn mangled() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    (
        structured(),
        any::<prop::sample::Index>(),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(s, a, b)| {
            let chars: Vec<char> = s.chars().collect();
            if chars.is_empty() {
                return s;
            }
            let (x, y) = (a.index(chars.len()), b.index(chars.len()));
            let (x, y) = (x.min(y), x.max(y));
            chars[..x].iter().chain(&chars[y..]).collect()
        })
}

fn records() -> [Value; 3] {
    [
        json!({"a": 1, "b": "x"}),
        json!({"name": "Ann", "n": 3, "d": "2024-05-14T10:00:00Z", "tags": ["a"],
               "tasks": [{"x": 1}, {"x": "a"}, {"x": null}]}),
        json!({"name": 5, "n": "x", "d": "later", "tags": "a", "tasks": [1, [2], {"x": {}}]}),
    ]
}

proptest::proptest! {
    #[test]
    fn never_panics(s in ".{0,200}") {
        if let Ok(e) = parse(&s) {
            must_not_panic(eval(&e, &json!({"a": 1, "b": "x"})));
        }
    }

    #[test]
    fn token_soup_never_panics(s in proptest::prop_oneof![soup(40), structured(), mangled()]) {
        if let Ok(e) = parse(&s) {
            for r in records() {
                must_not_panic(eval_with(&e, &r, &ctx()));
                must_not_panic(eval(&e, &r));
            }
        }
    }

    #[test]
    fn aliases_never_panic(
        s in proptest::prop_oneof![soup(30), structured(), mangled(), ".{0,80}"],
        values in proptest::collection::hash_map(
            "@p[1-3]",
            proptest::prop_oneof![soup(12), structured(), mangled(), ".{0,40}"],
            0..4,
        ),
    ) {
        if let Ok(e) = parse_with_aliases(&s, &values) {
            proptest::prop_assert!(validate(&e).is_ok());
            for r in records() {
                must_not_panic(eval_with(&e, &r, &ctx()));
            }
        }
    }

    #[test]
    fn string_order_is_total(
        v in proptest::collection::vec(
            "(20[0-9]{2}-0[1-9]-1[0-9](T[01][0-9]:[0-5][0-9](:[0-5][0-9])?([Z]|[+-]0[0-9]:00| ?[a-z]{0,3})?)?)|[a-zA-Z0-9]{0,4}",
            3,
        ),
    ) {
        let v: Vec<Value> = v.into_iter().map(Value::String).collect();
        let ord = |a: &Value, b: &Value| compare(a, b).unwrap();
        for a in &v {
            for b in &v {
                proptest::prop_assert_eq!(ord(a, b), ord(b, a).reverse());
                for c in &v {
                    if ord(a, b) != Ordering::Greater && ord(b, c) != Ordering::Greater {
                        proptest::prop_assert_ne!(ord(a, c), Ordering::Greater);
                    }
                }
            }
        }
    }

    #[test]
    fn dates_never_panic(s in "[0-9]{4}-[0-9]{2}-[0-9]{2}([Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\\.[0-9]{0,12})?)?([Zz]|[+-][0-9]{2}:?[0-9]{2})?)?") {
        must_not_panic(parse_datetime(&s));
        let r = json!({"d": s});
        for f in ["Microsoft.Dynamics.CRM.Today(PropertyName='d')",
                  "Microsoft.Dynamics.CRM.On(PropertyName='d',PropertyValue='2024-05-14')",
                  "d gt 2024-01-01"] {
            must_not_panic(eval_with(&parse(f).unwrap(), &r, &ctx()));
        }
    }
}
