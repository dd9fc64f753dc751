//! Unit tests of the grammar, the checks and the evaluator.

use std::collections::HashMap;

use serde_json::{Value, json};
use time::macros::datetime;

use super::dates::parse_datetime;
use super::*;
use crate::test_support::must_not_panic;

fn aliases(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Wednesday 15 May 2024, 13:00 UTC.
pub(super) fn ctx() -> EvalContext {
    EvalContext {
        user_id: Some("{AAAAAAAA-0000-0000-0000-000000000001}".into()),
        now: Some(datetime!(2024-05-15 13:00 UTC)),
    }
}

fn check(record: &Value, ctx: &EvalContext, cases: &[(&str, bool)]) {
    for (f, want) in cases {
        let e = parse(f).unwrap_or_else(|err| panic!("{f}: {err}"));
        let got = eval_with(&e, record, ctx).unwrap_or_else(|err| panic!("{f}: {err}"));
        assert_eq!(got, *want, "{f}");
    }
}

fn parse_err(f: &str) -> String {
    match parse(f) {
        Ok(e) => panic!("{f:?} parsed as {e:?}"),
        Err(e) => e.to_string(),
    }
}

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
        ("not State eq 1 and State eq 0", true),
        ("not contains(Name,'x') or State eq 5", true),
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
        "a eq [\"x\"",
        "a eq \"x\"",
        "na-me eq 1",
        "name.x eq 1",
        &"(".repeat(100),
    ] {
        assert!(parse(f).is_err(), "{f:?} parsed");
    }
}

#[test]
fn and_or_chains_keep_order_and_stay_shallow() {
    let e = parse("a eq 1 and b eq 2 and c eq 3").unwrap();
    let Expr::And(left, _) = &e else {
        panic!("{e:?}")
    };
    assert!(matches!(**left, Expr::And(..)), "{e:?}");
    // A long chain parses, evaluates and drops without deep recursion.
    let long = vec!["a eq 1"; 2500].join(" and ");
    let e = parse(&long).unwrap();
    assert!(eval(&e, &json!({"a": 1})).unwrap());
    assert!(!eval(&e, &json!({"a": 2})).unwrap());
    let long = vec!["a eq 2"; 2500].join(" or ") + " or a eq 1";
    assert!(eval(&parse(&long).unwrap(), &json!({"a": 1})).unwrap());
}

#[test]
fn parameter_aliases() {
    let r = json!({"lastname": "O'Brian", "revenue": 5, "name": null, "n": 5});
    let al = aliases(&[
        ("@p1", "'lastname'"),
        ("@p2", r#"["OBrian","O'Brian"]"#),
        ("@p3", "['x','o''brian']"),
        ("@p4", " 5 "),
        ("@p5", "revenue"),
        ("@p6", r#"["\u004f'Brian"]"#),
    ]);
    for (f, want) in [
        (
            "Microsoft.Dynamics.CRM.In(PropertyName=@p1,PropertyValues=@p2)",
            true,
        ),
        (
            "Microsoft.Dynamics.CRM.In(PropertyName=@p1,PropertyValues=@p3)",
            true,
        ),
        (
            "Microsoft.Dynamics.CRM.In(PropertyName=@p1,PropertyValues=@p6)",
            true,
        ),
        (
            "Microsoft.Dynamics.CRM.NotIn(PropertyName=@p1,PropertyValues=@p2)",
            false,
        ),
        ("revenue eq @p4", true),
        ("@p5 eq @p4", true),
        ("@p5 ne @p9", true),
        ("name eq @p9", true),
        ("(n eq @p4) and @p5 gt 4", true),
        ("lastname eq @p1", false),
    ] {
        let e = parse_with_aliases(f, &al).unwrap_or_else(|err| panic!("{f}: {err}"));
        assert_eq!(eval(&e, &r).unwrap(), want, "{f}");
    }
    // Keys may also be given without the '@'.
    let e = parse_with_aliases("n eq @x", &aliases(&[("x", "5")])).unwrap();
    assert!(eval(&e, &r).unwrap());
    // Without aliases, an alias is null.
    assert_eq!(parse("@p1 eq null").unwrap(), {
        Expr::Cmp(
            CmpOp::Eq,
            Box::new(Expr::Lit(Literal::Null)),
            Box::new(Expr::Lit(Literal::Null)),
        )
    });
}

#[test]
fn bad_parameter_aliases() {
    let deep = "[".repeat(100) + &"]".repeat(100);
    let nested = "(".repeat(50) + "a eq 1" + &")".repeat(50);
    let big = format!("'{}'", "x".repeat(30_000));
    let al = aliases(&[
        ("@bad", "'unterminated"),
        ("@self", "@self"),
        ("@other", "@bad"),
        ("@deep", &deep),
        ("@nested", &nested),
        ("@big", &big),
        ("@empty", ""),
        ("@wild", "'%x'"),
    ]);
    for (f, want) in [
        ("a eq @bad", "'@bad'"),
        ("a eq @self", "another alias"),
        ("a eq @other", "another alias"),
        ("a eq @deep", "nested too deeply"),
        (
            &("(".repeat(20) + "@nested" + &")".repeat(20)),
            "nested too deeply",
        ),
        (&vec!["a eq @big"; 20].join(" or "), "too large"),
        ("a eq @empty", "'@empty'"),
        ("startswith(name,@wild)", "leading wildcard"),
    ] {
        let err = parse_with_aliases(f, &al).expect_err(f).to_string();
        assert!(err.contains(want), "{f}: {err}");
    }
    // The alias nests fine on its own.
    assert!(parse_with_aliases("@nested", &al).is_ok());
}

#[test]
fn in_and_between() {
    let r = json!({"lastname": "Smith", "numberofemployees": 150, "code": "150", "createdon": "2024-05-01T10:00:00Z", "none": null});
    check(
        &r,
        &ctx(),
        &[
            (
                "Microsoft.Dynamics.CRM.In(PropertyName='lastname',PropertyValues=['smith','Jones'])",
                true,
            ),
            (
                "Microsoft.Dynamics.CRM.In(PropertyName='lastname',PropertyValues=[\"Jones\"])",
                false,
            ),
            (
                "Microsoft.Dynamics.CRM.In(PropertyName='numberofemployees',PropertyValues=[\"150\",\"7\"])",
                true,
            ),
            (
                "Microsoft.Dynamics.CRM.NotIn(PropertyName='lastname',PropertyValues=['Jones'])",
                true,
            ),
            (
                "Microsoft.Dynamics.CRM.NotIn(PropertyName='none',PropertyValues=['Jones'])",
                false,
            ),
            (
                "Microsoft.Dynamics.CRM.In(PropertyName='none',PropertyValues=['Jones'])",
                false,
            ),
            // Numeric when the record holds a number: "5" < 150 < "2000".
            (
                "Microsoft.Dynamics.CRM.Between(PropertyName='numberofemployees',PropertyValues=[\"5\",\"2000\"])",
                true,
            ),
            (
                "Microsoft.Dynamics.CRM.Between(PropertyName='numberofemployees',PropertyValues=[150,150])",
                true,
            ),
            (
                "Microsoft.Dynamics.CRM.Between(PropertyName='numberofemployees',PropertyValues=[151,2000])",
                false,
            ),
            (
                "Microsoft.Dynamics.CRM.NotBetween(PropertyName='numberofemployees',PropertyValues=[\"151\",\"2000\"])",
                true,
            ),
            // As strings when the record holds a string: "150" < "2000" < "5".
            (
                "Microsoft.Dynamics.CRM.Between(PropertyName='code',PropertyValues=[\"5\",\"2000\"])",
                false,
            ),
            (
                "Microsoft.Dynamics.CRM.Between(PropertyName='lastname',PropertyValues=['S','T'])",
                true,
            ),
            // As dates when both sides are dates.
            (
                "Microsoft.Dynamics.CRM.Between(PropertyName='createdon',PropertyValues=['2024-04-30','2024-05-01T12:00:00+02:00'])",
                true,
            ),
            (
                "Microsoft.Dynamics.CRM.Between(PropertyName='createdon',PropertyValues=['2024-05-02','2024-06-01'])",
                false,
            ),
            (
                "Microsoft.Dynamics.CRM.Between(PropertyName='none',PropertyValues=[1,2])",
                false,
            ),
            (
                "Microsoft.Dynamics.CRM.NotBetween(PropertyName='none',PropertyValues=[1,2])",
                false,
            ),
        ],
    );
}

#[test]
fn null_and_user_functions() {
    let r = json!({"a": null, "b": "x", "_ownerid_value": "aaaaaaaa-0000-0000-0000-000000000001", "_other_value": "bbbbbbbb-0000-0000-0000-000000000001"});
    check(
        &r,
        &ctx(),
        &[
            ("Microsoft.Dynamics.CRM.Null(PropertyName='a')", true),
            ("Microsoft.Dynamics.CRM.Null(PropertyName='missing')", true),
            ("Microsoft.Dynamics.CRM.Null(PropertyName='b')", false),
            ("Microsoft.Dynamics.CRM.NotNull(PropertyName='b')", true),
            ("Microsoft.Dynamics.CRM.NotNull(PropertyName='a')", false),
            (
                "Microsoft.Dynamics.CRM.EqualUserId(PropertyName='_ownerid_value')",
                true,
            ),
            (
                "Microsoft.Dynamics.CRM.EqualUserId(PropertyName='_other_value')",
                false,
            ),
            (
                "Microsoft.Dynamics.CRM.NotEqualUserId(PropertyName='_other_value')",
                true,
            ),
            (
                "Microsoft.Dynamics.CRM.NotEqualUserId(PropertyName='_ownerid_value')",
                false,
            ),
            (
                "Microsoft.Dynamics.CRM.EqualUserId(PropertyName='a')",
                false,
            ),
        ],
    );
    // No calling user: a clear error.
    let e = parse("Microsoft.Dynamics.CRM.EqualUserId(PropertyName='_ownerid_value')").unwrap();
    let err = eval(&e, &r).unwrap_err();
    assert!(
        matches!(&err, FilterError::NoUserId { function } if function.contains("EqualUserId")),
        "{err}"
    );
}

/// `Microsoft.Dynamics.CRM.<name>(PropertyName='d'[,PropertyValue=<value>])`.
fn date_fn(name: &str, value: Option<&str>) -> String {
    match value {
        Some(v) => format!("Microsoft.Dynamics.CRM.{name}(PropertyName='d',PropertyValue={v})"),
        None => format!("Microsoft.Dynamics.CRM.{name}(PropertyName='d')"),
    }
}

/// (value of `d`, function, `PropertyValue`, selected?) at [`ctx`]'s now.
const DATE_CASES: &[(&str, &str, Option<&str>, bool)] = &[
    ("2024-05-15T00:00:00Z", "Today", None, true),
    ("2024-05-15T23:59:59Z", "Today", None, true),
    ("2024-05-16T00:00:00Z", "Today", None, false),
    ("2024-05-15", "Today", None, true),
    ("2024-05-14T08:00:00Z", "Today", None, false),
    ("2024-05-14T08:00:00Z", "Yesterday", None, true),
    ("2024-05-16T08:00:00Z", "Tomorrow", None, true),
    ("2024-05-16T08:00:00Z", "Yesterday", None, false),
    ("2024-05-12T00:00:00Z", "LastXDays", Some("3"), true),
    ("2024-05-11T23:59:59Z", "LastXDays", Some("3"), false),
    ("2024-05-15T12:00:00Z", "LastXDays", Some("'3'"), true),
    ("2024-05-15T14:00:00Z", "LastXDays", Some("3"), false),
    ("2024-05-08T00:00:00Z", "Last7Days", None, true),
    ("2024-05-15T14:00:00Z", "NextXDays", Some("2"), true),
    ("2024-05-17T23:59:59Z", "NextXDays", Some("2"), true),
    ("2024-05-18T00:00:00Z", "NextXDays", Some("2"), false),
    ("2024-05-15T12:00:00Z", "NextXDays", Some("2"), false),
    ("2024-02-15T00:00:00Z", "LastXMonths", Some("3"), true),
    ("2024-02-14T23:00:00Z", "LastXMonths", Some("3"), false),
    ("2024-08-15T23:00:00Z", "NextXMonths", Some("3"), true),
    ("2024-08-16T00:00:00Z", "NextXMonths", Some("3"), false),
    ("2024-05-01T00:00:00Z", "LastXWeeks", Some("2"), true),
    ("2023-05-15T00:00:00Z", "LastXYears", Some("1"), true),
    ("2024-05-31T23:59:59Z", "ThisMonth", None, true),
    ("2024-06-01T00:00:00Z", "ThisMonth", None, false),
    ("2024-04-30T10:00:00Z", "LastMonth", None, true),
    ("2024-06-30T10:00:00Z", "NextMonth", None, true),
    ("2024-01-01T00:00:00Z", "ThisYear", None, true),
    ("2023-12-31T23:59:59Z", "ThisYear", None, false),
    ("2023-12-31T23:59:59Z", "LastYear", None, true),
    ("2025-07-01", "NextYear", None, true),
    ("2024-01-31T10:00:00Z", "On", Some("'2024-01-31'"), true),
    ("2024-01-31T10:00:00Z", "On", Some("2024-01-31"), true),
    (
        "2024-01-31T23:30:00-02:00",
        "On",
        Some("'2024-01-31'"),
        false,
    ),
    ("2024-01-31T10:00:00Z", "On", Some("'2024-02-01'"), false),
    (
        "2024-01-31T10:00:00Z",
        "OnOrAfter",
        Some("'2024-01-31'"),
        true,
    ),
    (
        "2024-01-31T10:00:00Z",
        "OnOrAfter",
        Some("'2024-02-01'"),
        false,
    ),
    (
        "2024-01-31T10:00:00Z",
        "OnOrBefore",
        Some("'2024-01-31'"),
        true,
    ),
    (
        "2024-01-31T10:00:00Z",
        "OnOrBefore",
        Some("'2024-01-30'"),
        false,
    ),
];

#[test]
fn date_functions() {
    let c = ctx(); // 2024-05-15 13:00 UTC
    for &(d, name, value, want) in DATE_CASES {
        let filter = date_fn(name, value);
        let e = parse(&filter).unwrap_or_else(|err| panic!("{filter}: {err}"));
        let got = eval_with(&e, &json!({ "d": d }), &c).unwrap();
        assert_eq!(got, want, "{filter} on {d}");
    }
}

#[test]
fn date_functions_on_nulls_time_zones_and_extremes() {
    let f = date_fn;
    let c = ctx();
    // Null never matches; non-dates are an error.
    let e = parse(&f("Today", None)).unwrap();
    assert!(!eval_with(&e, &json!({ "d": null }), &c).unwrap());
    assert!(eval_with(&e, &json!({ "d": "soon" }), &c).is_err());
    assert!(eval_with(&e, &json!({ "d": 5 }), &c).is_err());
    // The offset of `now` is the user's time zone: 23:30 UTC on the
    // 14th is the 15th in UTC+02:00.
    let east = EvalContext {
        now: Some(datetime!(2024-05-15 13:00 +2)),
        ..ctx()
    };
    let e = parse(&f("Today", None)).unwrap();
    assert!(eval_with(&e, &json!({"d": "2024-05-14T23:30:00Z"}), &east).unwrap());
    assert!(!eval_with(&e, &json!({"d": "2024-05-14T23:30:00Z"}), &c).unwrap());
    // Far-off counts clamp instead of overflowing.
    let e = parse(&f("LastXYears", Some("2147483647"))).unwrap();
    assert!(eval_with(&e, &json!({"d": "0100-01-01"}), &c).unwrap());
    let e = parse(&f("NextXYears", Some("2147483647"))).unwrap();
    assert!(eval_with(&e, &json!({"d": "9000-01-01"}), &c).unwrap());
    let far = EvalContext {
        now: Some(datetime!(9999-12-31 23:59 -23)),
        ..ctx()
    };
    for name in ["Today", "Tomorrow", "NextYear", "Next7Days", "ThisMonth"] {
        let e = parse(&f(name, None)).unwrap();
        eval_with(&e, &json!({"d": "9999-12-31T23:59:59+23:00"}), &far).unwrap();
    }
}

/// (filter, part of the error message) for calls the checks reject.
const CALL_ERRORS: &[(&str, &str)] = &[
    (
        "Microsoft.Dynamics.CRM.Bogus(PropertyName='a')",
        "'Microsoft.Dynamics.CRM.Bogus' is not supported",
    ),
    (
        "Microsoft.Dynamics.CRM.ThisWeek(PropertyName='a')",
        "not supported by this emulator",
    ),
    (
        "microsoft.dynamics.crm.in(PropertyName='a',PropertyValues=['x'])",
        "'microsoft.dynamics.crm.in' is not supported",
    ),
    (
        "In(PropertyName='a',PropertyValues=['x'])",
        "'In' is not supported",
    ),
    ("frobnicate(a)", "'frobnicate'"),
    (
        "Microsoft.Dynamics.CRM.In(PropertyName='a')",
        "needs the parameter 'PropertyValues'",
    ),
    (
        "Microsoft.Dynamics.CRM.In(PropertyName='a',PropertyValues=[])",
        "must not be empty",
    ),
    (
        "Microsoft.Dynamics.CRM.In(PropertyName='a',PropertyValues='x')",
        "must be a list",
    ),
    (
        "Microsoft.Dynamics.CRM.In(PropertyName='a',PropertyValues=[null])",
        "invalid value",
    ),
    (
        "Microsoft.Dynamics.CRM.In('a',['x'])",
        "takes named parameters",
    ),
    (
        "Microsoft.Dynamics.CRM.Null(PropertyName='a',PropertyName='b')",
        "more than once",
    ),
    (
        "Microsoft.Dynamics.CRM.Null(PropertyName='a',Extra=1)",
        "no parameter 'Extra'",
    ),
    (
        "Microsoft.Dynamics.CRM.Null(PropertyName='a b')",
        "not a valid property name",
    ),
    (
        "Microsoft.Dynamics.CRM.Null(PropertyName=5)",
        "must be a string",
    ),
    (
        "Microsoft.Dynamics.CRM.Between(PropertyName='a',PropertyValues=[1,2,3])",
        "exactly two",
    ),
    (
        "Microsoft.Dynamics.CRM.Between(PropertyName='a',PropertyValues=[1])",
        "exactly two",
    ),
    (
        "Microsoft.Dynamics.CRM.LastXDays(PropertyName='a',PropertyValue=-1)",
        "non-negative whole number",
    ),
    (
        "Microsoft.Dynamics.CRM.LastXDays(PropertyName='a',PropertyValue=1.5)",
        "non-negative whole number",
    ),
    (
        "Microsoft.Dynamics.CRM.LastXDays(PropertyName='a')",
        "needs the parameter 'PropertyValue'",
    ),
    (
        "Microsoft.Dynamics.CRM.On(PropertyName='a',PropertyValue='yesterday')",
        "must be a date",
    ),
    (
        "Microsoft.Dynamics.CRM.On(PropertyName='a',PropertyValue='2024-02-30')",
        "must be a date",
    ),
    ("contains(name)", "takes 2 arguments"),
    ("tolower(name,'x') eq 'a'", "takes 1 argument"),
    ("contains(x='a','b')", "takes 2 arguments"),
];

#[test]
fn query_function_errors() {
    for (f, want) in CALL_ERRORS {
        let err = parse_err(f);
        assert!(err.contains(want), "{f}: {err}");
    }
}

#[test]
fn unchecked_calls_fail_at_evaluation() {
    // Hand-built expressions that skip `validate` fail at evaluation.
    let e = Expr::Call("nope".into(), vec![]);
    assert!(
        eval(&e, &json!({}))
            .unwrap_err()
            .to_string()
            .contains("'nope'")
    );
    let e = Expr::Call(
        "Microsoft.Dynamics.CRM.In".into(),
        vec![(None, Expr::Lit(Literal::Null))],
    );
    assert!(eval(&e, &json!({})).is_err());
    assert!(validate(&e).is_err());
}

#[test]
fn wildcards() {
    for f in [
        "startswith(name,'%x')",
        "contains(name,'%x')",
        "not startswith(name,'%value')",
        "a eq 1 and (contains(name,'%'))",
        "accounts/any(a:startswith(a/name,'%x'))",
    ] {
        let err = parse_err(f);
        assert!(err.contains("leading wildcard"), "{f}: {err}");
    }
    for f in ["endswith(name,'value%')", "not endswith(name,'%')"] {
        let err = parse_err(f);
        assert!(err.contains("trailing wildcard"), "{f}: {err}");
    }
    for f in [
        "startswith(name,'x%')",
        "contains(name,'x%y')",
        "endswith(name,'%x')",
        "startswith(name,'[%]x')",
        "startswith(name,name)",
    ] {
        parse(f).unwrap_or_else(|err| panic!("{f}: {err}"));
    }
}

#[test]
fn lambdas() {
    let r = json!({
        "name": "Contoso",
        "Account_Tasks": [
            {"subject": "Call", "statecode": 1},
            {"subject": "Email", "statecode": 1}
        ],
        "Account_Emails": [],
        "tags": ["red", "green"],
        "contact_customer_accounts": [
            {"jobtitle": "Boss", "opportunity_customer_contacts": [{"description": "N/A"}, {"description": "big"}]},
            {"jobtitle": "Clerk", "opportunity_customer_contacts": []}
        ],
        "primarycontactid": {"fullname": "Ann"}
    });
    check(
        &r,
        &ctx(),
        &[
            ("Account_Tasks/any(t:t/subject eq 'call')", true),
            ("Account_Tasks/any(t:t/subject eq 'x')", false),
            ("Account_Tasks/all(t:t/statecode eq 1)", true),
            ("Account_Tasks/all(t:t/subject eq 'Call')", false),
            ("Account_Tasks/any()", true),
            ("Account_Emails/any()", false),
            ("Account_Emails/all(e:e/statecode eq 0)", true),
            ("Missing/any()", false),
            ("Missing/all(m:m/x eq 1)", true),
            (
                "Account_Tasks/ANY( t : contains(t/subject,'mai') and t/statecode eq 1 )",
                true,
            ),
            ("tags/any(t:t eq 'GREEN')", true),
            ("tags/all(t:t ne 'blue')", true),
            // Outer properties stay visible inside the body.
            (
                "Account_Tasks/any(t:name eq 'contoso' and t/statecode eq 1)",
                true,
            ),
            (
                "(contact_customer_accounts/any(c:c/jobtitle eq 'boss' and c/opportunity_customer_contacts/any(o:o/description ne 'N/A'))) and endswith(name,'so')",
                true,
            ),
            (
                "contact_customer_accounts/all(c:c/opportunity_customer_contacts/any())",
                false,
            ),
            ("not Account_Tasks/any(t:t/statecode eq 0)", true),
            ("primarycontactid/fullname eq 'ann'", true),
        ],
    );
    assert_eq!(
        parse("Account_Tasks/any(t:t/subject eq 'x')").unwrap(),
        Expr::Lambda {
            path: "Account_Tasks".into(),
            op: LambdaOp::Any,
            var: "t".into(),
            body: Box::new(Expr::Cmp(
                CmpOp::Eq,
                Box::new(Expr::Property("t/subject".into())),
                Box::new(Expr::Lit(Literal::String("x".into()))),
            )),
        }
    );
    // A lambda over something that is not a collection.
    let e = parse("name/any(n:n eq 'x')").unwrap();
    assert!(
        eval(&e, &r)
            .unwrap_err()
            .to_string()
            .contains("not a collection")
    );
    for f in [
        "Account_Tasks/all()",
        "Account_Tasks/any(t:)",
        "Account_Tasks/any(1:t eq 1)",
        "Account_Tasks/any(t t/x eq 1)",
        "Account_Tasks/any(t:t/x eq 1",
        "any(t:t eq 1)",
    ] {
        assert!(parse(f).is_err(), "{f:?} parsed");
    }
    assert!(parse_err("Account_Tasks/all()").contains("needs a lambda expression"));
}

#[test]
fn dates_compare_as_instants() {
    let r = json!({"d": "2024-05-01T10:00:00Z"});
    check(
        &r,
        &EvalContext::default(),
        &[
            ("d eq 2024-05-01T10:00:00.000Z", true),
            ("d eq 2024-05-01T12:00:00+02:00", true),
            ("d gt 2024-05-01", true),
            ("d lt 2024-05-02", true),
            ("d gt 2024-05-01T11:00:00+02:00", true),
            ("d eq '2024-05-01T10:00:00Z'", true),
        ],
    );
    assert!(parse_datetime("2024-05-01T10:00:00+0200").is_some());
    // Dates and other text mixed still sort consistently.
    let mut v: Vec<Value> = [
        "2024-05-01T10:00:00+02:00",
        "2024-05-01T09:00:00Z",
        "2024-05-01T09:30:00 junk",
        "Abc",
        "2024-05-01",
    ]
    .map(|s| json!(s))
    .to_vec();
    v.sort_by(|a, b| compare(a, b).unwrap());
    assert_eq!(v[0], json!("2024-05-01"));
    for bad in [
        "2024-13-01",
        "2024-05-01T25:00",
        "2024-05-01T10:00:00.",
        "2024-05-01X",
        "2024-05-01T10:00+2",
        "２０２４-05-01",
    ] {
        assert!(parse_datetime(bad).is_none(), "{bad}");
    }
}

/// Each nesting form stops at the depth limit with an error, not a
/// stack overflow, on the 2 MiB stack of a Rust or tokio worker thread
/// (a debug build uses about 0.65 MiB at the limit, a release build
/// about 0.15 MiB).
#[test]
fn deep_nesting_is_rejected() {
    let run = || {
        let n = 500;
        let cases = [
            "(".repeat(n) + "a eq 1" + &")".repeat(n),
            "not ".repeat(n) + "a eq 1",
            "f(".repeat(n) + &")".repeat(n),
            "a eq ".to_string() + &"[".repeat(n) + &"]".repeat(n),
            "x/any(a:".repeat(n) + "true" + &")".repeat(n),
            "Microsoft.Dynamics.CRM.In(PropertyName=".repeat(n),
            "(".repeat(40) + &"not ".repeat(40) + "a eq 1" + &")".repeat(40),
        ];
        for f in &cases {
            let err = parse(f).unwrap_err();
            assert_eq!(err, FilterError::TooDeep, "{}", &f[..20]);
        }
        // Just inside the limit parses and evaluates.
        let d = MAX_DEPTH - 2;
        let ok = [
            "(".repeat(d) + "a eq 1" + &")".repeat(d),
            "not ".repeat(d) + "a eq 1",
            "x/any(a:a/".repeat(d) + "x/any()" + &")".repeat(d),
            "contains(".repeat(d) + "a,'x')" + &",'y')".repeat(d - 1),
        ];
        let mut record = json!([]);
        for _ in 0..MAX_DEPTH + 5 {
            record = json!({"a": 1, "x": [record]});
        }
        for f in &ok {
            let e = parse(f).unwrap_or_else(|err| panic!("{}: {err}", &f[..20]));
            must_not_panic(eval(&e, &record));
        }
    };
    std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(run)
        .unwrap()
        .join()
        .unwrap();
}
