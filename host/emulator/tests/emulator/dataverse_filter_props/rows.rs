//! The accounts the properties query.

use super::*;

// ---------------------------------------------------------------------------
// The rows
// ---------------------------------------------------------------------------

/// Words of account names, with quotes; rows and literals draw from them.
pub(crate) const WORDS: &[&str] = &[
    "Contoso",
    "Fabrikam",
    "Northwind",
    "O'Brien",
    "Trader's",
    "d'Arcy",
    "Alpine",
    "Ski",
    "House",
    "Blue",
    "Yonder",
    "Litware",
    "Lucerne",
    "Coho",
    "Winery",
    "works",
];

pub(crate) const CITIES: &[&str] = &[
    "Seattle", "Redmond", "Paris", "Val-d'Or", "L'Aquila", "Bellevue", "Bergen", "Oslo", "New York",
];

/// Revenues shared by several rows and by literals, so that `eq` and the
/// bounds of `ge`/`le`/`Between` hit.
pub(crate) const REVENUES: &[f64] = &[0.0, 100.0, 999.99, 1000.0, 1000.5, 25000.0, 1e6, 12345.67];
pub(crate) const EMPLOYEES: &[i64] = &[0, 1, 10, 50, 100, 1000];

/// One inserted account, as this test keeps it.
#[derive(Debug, Clone)]
pub(crate) struct Account {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) city: Option<String>,
    pub(crate) revenue: Option<f64>,
    pub(crate) employees: Option<i64>,
    pub(crate) credit: bool,
    pub(crate) category: Option<i64>,
}

impl Account {
    pub(crate) fn body(&self) -> Value {
        json!({
            "@odata.type": "Microsoft.Dynamics.CRM.account",
            "name": self.name,
            "address1_city": self.city,
            "revenue": self.revenue,
            "numberofemployees": self.employees,
            "creditonhold": self.credit,
            "accountcategorycode": self.category,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Case {
    AsIs,
    Lower,
    Upper,
    Title,
}

impl Case {
    pub(crate) fn apply(self, s: &str) -> String {
        match self {
            Case::AsIs => s.to_string(),
            Case::Lower => s.to_lowercase(),
            Case::Upper => s.to_uppercase(),
            Case::Title => {
                let lower = s.to_lowercase();
                let mut chars = lower.chars();
                match chars.next() {
                    Some(c) => c.to_uppercase().chain(chars).collect(),
                    None => lower,
                }
            }
        }
    }
}

pub(crate) fn case() -> impl Strategy<Value = Case> {
    prop_oneof![
        3 => Just(Case::AsIs),
        1 => Just(Case::Lower),
        1 => Just(Case::Upper),
        1 => Just(Case::Title),
    ]
}

pub(crate) fn cents(max: i64) -> impl Strategy<Value = f64> {
    (0..=max).prop_map(|c| c as f64 / 100.0)
}

pub(crate) fn account() -> impl Strategy<Value = Account> {
    let name = prop::collection::vec((prop::sample::select(WORDS), case()), 1..=3).prop_map(|w| {
        w.iter()
            .map(|(w, c)| c.apply(w))
            .collect::<Vec<_>>()
            .join(" ")
    });
    let city = prop::option::weighted(
        0.7,
        (prop::sample::select(CITIES), case()).prop_map(|(c, k)| k.apply(c)),
    );
    let revenue = prop::option::weighted(
        0.75,
        prop_oneof![prop::sample::select(REVENUES), cents(200_000_000)],
    );
    let employees = prop::option::weighted(
        0.75,
        prop_oneof![prop::sample::select(EMPLOYEES), 0..6000i64],
    );
    let category = prop::option::weighted(0.7, 1..=2i64);
    (name, city, revenue, employees, any::<bool>(), category).prop_map(
        |(name, city, revenue, employees, credit, category)| Account {
            id: String::new(),
            name,
            city,
            revenue,
            employees,
            credit,
            category,
        },
    )
}
