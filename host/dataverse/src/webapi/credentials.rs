//! Whom a [`Client`]'s requests act as: a connection's app (client
//! credentials, cached and renewed by its [`TokenSource`]), or a signed-in
//! user, with the delegated token the user got for that one environment, so
//! a plugin author browses the metadata they themselves may use.

use std::sync::Arc;
use std::time::Instant;

use super::{Client, MetadataCacheConfig};
use crate::endpoint::Environment;
use crate::identity::{AccessToken, HttpClient, IdentityError, TokenSource, UserTokens};

/// The source of a client's bearer tokens.
#[derive(Clone)]
pub(super) enum Credentials {
    /// A connection's app.
    App(Arc<TokenSource>),
    /// A signed-in user's token for the client's environment.
    User(Arc<UserTokens>),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::App(tokens) => tokens.fmt(f),
            Credentials::User(user) => f
                .debug_struct("User")
                .field("upn", &user.upn)
                .finish_non_exhaustive(),
        }
    }
}

/// A bearer token held for one request.
pub(super) enum Bearer {
    App(AccessToken),
    User(Arc<UserTokens>),
}

impl Bearer {
    /// The bearer value, attached in `Client::exchange` only.
    pub(super) fn secret(&self) -> &str {
        match self {
            Bearer::App(token) => token.secret(),
            Bearer::User(user) => user.access_token(),
        }
    }
}

impl Credentials {
    /// A valid token before `deadline`. A user's token is not renewed here:
    /// one that expired is an error asking for a new one.
    pub(super) async fn bearer(&self, deadline: Instant) -> Result<Bearer, IdentityError> {
        match self {
            Credentials::App(tokens) => Ok(Bearer::App(tokens.token(deadline).await?)),
            Credentials::User(user) if user.expires_at > Instant::now() => {
                Ok(Bearer::User(user.clone()))
            }
            Credentials::User(_) => Err(IdentityError::SignIn(
                "the signed-in user's token for this environment expired; ask for a new one".into(),
            )),
        }
    }

    /// Drops a cached app token after a 401 (a user's token cannot be renewed here).
    pub(super) fn invalidate(&self) {
        if let Credentials::App(tokens) = self {
            tokens.invalidate();
        }
    }
}

/// Whether `scope` (space-separated, as Entra granted it) is for `environment`.
fn grants(scope: &str, environment: &Environment) -> bool {
    let base = environment.as_str().trim_end_matches('/');
    scope.split_whitespace().any(|s| {
        s.strip_prefix(base)
            .is_some_and(|rest| rest.starts_with('/') && !rest[1..].contains('/'))
    })
}

impl Client {
    /// A client acting as the signed-in user of `user`, whose token must
    /// have been granted for `environment` (ask for
    /// `<environment>/user_impersonation`): it goes to that environment's
    /// Web API and nowhere else. The token is not renewed; build a new
    /// client when it expires.
    pub fn for_user(
        user: UserTokens,
        environment: &Environment,
        http: HttpClient,
    ) -> Result<Client, IdentityError> {
        if !grants(&user.scope, environment) {
            return Err(IdentityError::Endpoint(crate::EndpointError::Mismatch(
                "the user's token was not granted for this environment",
            )));
        }
        Ok(Client::build(
            http,
            environment.web_api(),
            Credentials::User(Arc::new(user)),
            MetadataCacheConfig::default(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scope_grants_its_own_environment_only() {
        let env = Environment::parse("https://contoso.crm.dynamics.com").unwrap();
        assert!(grants(
            "https://contoso.crm.dynamics.com/user_impersonation openid",
            &env
        ));
        assert!(grants(
            "openid https://contoso.crm.dynamics.com/.default",
            &env
        ));
        assert!(!grants(
            "https://contoso.crm.dynamics.com.evil.net/user_impersonation",
            &env
        ));
        assert!(!grants(
            "https://globaldisco.crm.dynamics.com/user_impersonation",
            &env
        ));
        assert!(!grants("https://contoso.crm.dynamics.com/a/b", &env));
        assert!(!grants("", &env));
    }
}
