//! The only URLs this crate accepts: configuration, checked once. A request
//! is never aimed with a caller's URL; it is built from these and typed
//! names, and checked again before a token is attached.

use url::Url;

/// A URL that was not accepted as an endpoint.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// Not an absolute URL at all.
    #[error("'{0}' is not a URL")]
    NotAUrl(String),
    /// `http` to a host that is not loopback, or another scheme: a token
    /// would cross the network in clear text.
    #[error("'{0}' must use https (plain http is allowed for loopback addresses only)")]
    Insecure(String),
    /// User name, password, query or fragment, which no endpoint has (the
    /// URL is not repeated: it may hold a password).
    #[error("an endpoint URL must not carry a user name, password, query or fragment")]
    Extra,
    /// A tenant that is not a GUID or a domain name.
    #[error("'{0}' is not a tenant id or domain name")]
    Tenant(String),
    /// Credentials offered to an endpoint other than the one they belong to.
    #[error("refused: {0}")]
    Mismatch(&'static str),
}

/// The text of a refused URL without anything before an `@` (a user name
/// and password would be there).
fn redact(s: &str) -> String {
    match s.rsplit_once('@') {
        Some((_, host)) => format!("…@{host}"),
        None => s.to_string(),
    }
}

/// A checked base URL: `https`, or `http` on loopback (the emulator), no
/// credentials, query or fragment; its path always ends with `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Base(Url);

impl Base {
    fn parse(s: &str) -> Result<Base, EndpointError> {
        let mut url = Url::parse(s.trim()).map_err(|_| EndpointError::NotAUrl(redact(s)))?;
        let loopback = match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            None => return Err(EndpointError::NotAUrl(redact(s))),
        };
        match url.scheme() {
            "https" => {}
            "http" if loopback => {}
            _ => return Err(EndpointError::Insecure(redact(s))),
        }
        if !url.username().is_empty()
            || url.password().is_some()
            || url.query().is_some()
            || url.fragment().is_some()
        {
            return Err(EndpointError::Extra);
        }
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        Ok(Base(url))
    }

    /// The URL without its trailing slash, as Microsoft writes these.
    fn display(&self) -> &str {
        self.0.as_str().trim_end_matches('/')
    }
}

/// A Dataverse environment (organization) URL, such as
/// `https://contoso.crm.dynamics.com`. It is both where requests go and the
/// resource tokens are asked for, so the two can never differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Environment(Base);

impl Environment {
    /// Checks an environment URL (`https`, or `http` on loopback).
    pub fn parse(url: &str) -> Result<Environment, EndpointError> {
        Base::parse(url).map(Environment)
    }

    /// The URL without a trailing slash.
    pub fn as_str(&self) -> &str {
        self.0.display()
    }

    /// `<environment>/api/data/v9.2/`.
    pub(crate) fn web_api(&self) -> Url {
        // The base ends with '/', so a relative join cannot leave it.
        self.0
            .0
            .join("api/data/v9.2/")
            .expect("a relative path joins onto an http(s) base")
    }

    /// The scope of an app-only token for this environment.
    pub(crate) fn default_scope(&self) -> String {
        format!("{}/.default", self.as_str())
    }
}

impl std::fmt::Display for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An Entra ID authority host, `https://login.microsoftonline.com` in the
/// public cloud (or the emulator's address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authority(Base);

impl Authority {
    /// Checks an authority host URL (`https`, or `http` on loopback).
    pub fn parse(url: &str) -> Result<Authority, EndpointError> {
        Base::parse(url).map(Authority)
    }

    /// `https://login.microsoftonline.com`.
    pub fn public_cloud() -> Authority {
        Authority::parse("https://login.microsoftonline.com").expect("a valid constant")
    }

    /// The URL without a trailing slash.
    pub fn as_str(&self) -> &str {
        self.0.display()
    }

    /// Scheme, host and port.
    pub(crate) fn origin(&self) -> url::Origin {
        self.0.0.origin()
    }

    /// `<authority>/<tenant>/oauth2/v2.0/<leaf>`; `tenant` must be a GUID or
    /// a domain name (or `organizations`/`common`), so it cannot add a path.
    pub(crate) fn oauth2(&self, tenant: &str, leaf: &str) -> Result<Url, EndpointError> {
        check_tenant(tenant)?;
        self.0
            .0
            .join(&format!("{tenant}/oauth2/v2.0/{leaf}"))
            .map_err(|_| EndpointError::Tenant(tenant.into()))
    }
}

impl std::fmt::Display for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The Global Discovery service, `https://globaldisco.crm.dynamics.com` in
/// the public cloud (or the emulator's address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveryService(Base);

impl DiscoveryService {
    /// Checks a Global Discovery URL (`https`, or `http` on loopback).
    pub fn parse(url: &str) -> Result<DiscoveryService, EndpointError> {
        Base::parse(url).map(DiscoveryService)
    }

    /// `https://globaldisco.crm.dynamics.com`.
    pub fn public_cloud() -> DiscoveryService {
        DiscoveryService::parse("https://globaldisco.crm.dynamics.com").expect("a valid constant")
    }

    /// Whether tokens issued by `authority` may be shown to this service:
    /// Microsoft's service for Microsoft's public cloud, or a service on the
    /// authority's own origin (the emulator serves both).
    pub(crate) fn trusts(&self, authority: &Authority) -> bool {
        if *authority == Authority::public_cloud() {
            *self == DiscoveryService::public_cloud()
        } else {
            self.0.0.origin() == authority.origin()
        }
    }

    /// `<service>/api/discovery/v2.0/Instances`.
    pub(crate) fn instances(&self) -> Url {
        self.0
            .0
            .join("api/discovery/v2.0/Instances")
            .expect("a relative path joins onto an http(s) base")
    }
}

/// A tenant id, a verified domain, or `organizations`/`common`.
pub(crate) fn check_tenant(tenant: &str) -> Result<(), EndpointError> {
    let ok = !tenant.is_empty()
        && tenant.len() <= 253
        && !tenant.starts_with(['.', '-'])
        && !tenant.contains("..")
        && tenant
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if ok {
        Ok(())
    } else {
        Err(EndpointError::Tenant(tenant.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback_http_without_extras() {
        for ok in [
            "https://contoso.crm.dynamics.com",
            "https://contoso.crm.dynamics.com/",
            "http://127.0.0.1:8080/contoso-dev",
            "http://localhost:1",
            "http://[::1]:2/x/",
        ] {
            let e = Environment::parse(ok).unwrap();
            assert!(e.web_api().as_str().ends_with("/api/data/v9.2/"), "{ok}");
            assert!(!e.as_str().ends_with('/'));
        }
        assert_eq!(
            Environment::parse("http://127.0.0.1:1/org")
                .unwrap()
                .web_api()
                .as_str(),
            "http://127.0.0.1:1/org/api/data/v9.2/"
        );
        for bad in [
            "http://contoso.crm.dynamics.com",
            "ftp://contoso",
            "https://user:password@contoso.crm.dynamics.com",
            "http://user:password@contoso.crm.dynamics.com",
            "https://user:password@conto so",
            "https://contoso.crm.dynamics.com/?x=1",
            "https://contoso.crm.dynamics.com/#f",
            "contoso.crm.dynamics.com",
            "//contoso.crm.dynamics.com",
            "",
        ] {
            let e = Environment::parse(bad).unwrap_err().to_string();
            assert!(!e.contains("password@") && !e.contains("user:"), "{e}");
            assert!(Environment::parse(bad).is_err(), "{bad}");
            assert!(Authority::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tenants_cannot_add_path_segments() {
        let a = Authority::public_cloud();
        assert_eq!(
            a.oauth2("contoso.onmicrosoft.com", "token")
                .unwrap()
                .as_str(),
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
        );
        for bad in ["", "../x", "a/b", "a?b", "a#b", "..", "a b", "x%2f"] {
            assert!(a.oauth2(bad, "token").is_err(), "{bad}");
        }
    }
}
