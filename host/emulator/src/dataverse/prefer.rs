//! The `Prefer` request header: `return=representation`,
//! `odata.maxpagesize`, `odata.include-annotations`, `odata.continue-on-error`.

use axum::http::HeaderMap;

/// What the `Prefer` header asks for.
#[derive(Debug, Default, Clone)]
pub(super) struct Prefer {
    pub(super) representation: bool,
    pub(super) max_page_size: Option<usize>,
    pub(super) annotations: Option<String>,
    pub(super) continue_on_error: bool,
}

impl Prefer {
    /// Reads every `Prefer` header.
    pub(super) fn parse(headers: &HeaderMap) -> Prefer {
        let mut p = Prefer::default();
        for v in headers
            .get_all("prefer")
            .iter()
            .filter_map(|v| v.to_str().ok())
        {
            for item in crate::odata::split_unquoted(v, '"') {
                let (k, val) = item
                    .split_once('=')
                    .map(|(k, v)| (k.trim(), Some(v.trim())))
                    .unwrap_or((item.trim(), None));
                match k {
                    "return" if val == Some("representation") => p.representation = true,
                    "odata.maxpagesize" => p.max_page_size = val.and_then(|v| v.parse().ok()),
                    "odata.include-annotations" => {
                        p.annotations = val.map(|v| v.trim_matches('"').to_string())
                    }
                    "odata.continue-on-error" => p.continue_on_error = true,
                    _ => {}
                }
            }
        }
        p
    }

    /// The `Preference-Applied` value for what was honoured.
    pub(super) fn applied(&self, page_size_used: bool) -> Option<String> {
        let mut out = Vec::new();
        if self.representation {
            out.push("return=representation".to_string());
        }
        if page_size_used && let Some(n) = self.max_page_size {
            out.push(format!("odata.maxpagesize={n}"));
        }
        if let Some(a) = &self.annotations {
            out.push(format!("odata.include-annotations=\"{a}\""));
        }
        (!out.is_empty()).then(|| out.join(","))
    }
}
