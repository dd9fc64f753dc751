//! Stored delegated sign-ins (`dvhost login`) as the flows use them: which
//! stored sign-in acts (by user, by Entra tenant, or the only one), fresh
//! tokens from it (the rotated refresh token stored again), and storing a
//! new one. The refresh token is sealed and opened inside
//! `dvhost-dataverse`; this module handles ids and sealed bytes only.

use std::time::{Duration, Instant};

use dvhost_dataverse::{DeviceSignIn, IdentityError, MasterKey, SealedSignIn, UserTokens};
use dvhost_store::{Sealed, SignIn, Store, StoreError};
use uuid::Uuid;

/// What Global Discovery wants (the same scope for the emulator): what a
/// stored administrator sign-in is resumed for before the flows sign in to
/// Graph and the environment with its refresh token.
pub const DISCOVERY_SCOPE: &str = "https://globaldisco.crm.dynamics.com/user_impersonation";

/// How long redeeming a stored sign-in may take.
const RESUME_TIMEOUT: Duration = Duration::from_secs(60);

/// Why no stored sign-in can act. Never carries a token.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// Nobody fitting is signed in.
    #[error("{0}: run dvhost login")]
    NotSignedIn(String),
    /// Several stored sign-ins fit and none was named.
    #[error("several users are signed in ({}): name the one to act as", .0.join(", "))]
    Ambiguous(Vec<String>),
    /// The stored sign-in no longer works (expired, revoked, another key).
    #[error("the stored sign-in of {who} cannot be used ({cause}): run dvhost login again")]
    Unusable {
        /// The user.
        who: String,
        /// Why.
        cause: IdentityError,
    },
    /// Entra's answer did not name the user or tenant.
    #[error("Entra did not name the user's {0}")]
    Incomplete(&'static str),
    /// The refresh token could not be sealed.
    #[error("the sign-in could not be sealed: {0}")]
    Seal(IdentityError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Which stored sign-in: `user` (sign-in name or object id) and the Entra
/// tenant, each optional.
#[derive(Debug, Clone, Copy, Default)]
pub struct Wanted<'a> {
    /// The user's sign-in name or object id.
    pub user: Option<&'a str>,
    /// The user's Entra tenant.
    pub entra_tenant: Option<Uuid>,
}

impl Wanted<'_> {
    fn fits(&self, s: &SignIn) -> bool {
        let user = self.user.is_none_or(|who| {
            s.upn
                .as_deref()
                .is_some_and(|u| u.eq_ignore_ascii_case(who))
                || s.user_oid.to_string() == who.to_ascii_lowercase()
        });
        user && self.entra_tenant.is_none_or(|t| t == s.entra_tenant_id)
    }

    /// Nobody fitting is signed in, in words.
    fn nobody(&self) -> String {
        match (self.user, self.entra_tenant) {
            (Some(user), Some(tenant)) => {
                format!("{user} is not signed in to Entra tenant {tenant} on this host")
            }
            (Some(user), None) => format!("{user} is not signed in on this host"),
            (None, Some(tenant)) => {
                format!("nobody of Entra tenant {tenant} is signed in on this host")
            }
            (None, None) => "nobody is signed in on this host".to_string(),
        }
    }
}

/// The one stored sign-in that fits `wanted`.
pub async fn chosen(store: &Store, wanted: Wanted<'_>) -> Result<SignIn, SignInError> {
    let mut found: Vec<SignIn> = store
        .sign_ins()
        .await?
        .into_iter()
        .filter(|s| wanted.fits(s))
        .collect();
    match found.len() {
        0 => Err(SignInError::NotSignedIn(wanted.nobody())),
        1 => Ok(found.remove(0)),
        _ => Err(SignInError::Ambiguous(
            found
                .iter()
                .map(|s| s.upn.clone().unwrap_or_else(|| s.user_oid.to_string()))
                .collect(),
        )),
    }
}

/// An administrator's fresh tokens for the connection flows
/// ([`crate::flows::auto::AdminSignIn`]): the stored sign-in fitting
/// `wanted`, resumed through `device`.
pub async fn administrator(
    store: &Store,
    master: &MasterKey,
    device: &DeviceSignIn,
    wanted: Wanted<'_>,
) -> Result<UserTokens, SignInError> {
    let stored = chosen(store, wanted).await?;
    resume(store, master, device, &stored, &[DISCOVERY_SCOPE]).await
}

/// Fresh tokens for `scopes` from `stored`, through `device` (the public
/// client it was signed in with); stored again, since Entra may rotate the
/// refresh token.
pub async fn resume(
    store: &Store,
    master: &MasterKey,
    device: &DeviceSignIn,
    stored: &SignIn,
    scopes: &[&str],
) -> Result<UserTokens, SignInError> {
    let sealed = SealedSignIn::from_bytes(stored.sealed_refresh_token.as_bytes().to_vec());
    let tokens = device
        .resume(
            &sealed,
            master,
            &stored.user_oid.to_string(),
            scopes,
            Instant::now() + RESUME_TIMEOUT,
        )
        .await
        .map_err(|cause| SignInError::Unusable {
            who: stored
                .upn
                .clone()
                .unwrap_or_else(|| stored.user_oid.to_string()),
            cause,
        })?;
    save(store, master, &tokens, Some(stored)).await?;
    Ok(tokens)
}

/// Seals and stores `tokens`' refresh token for their user; `previous`
/// keeps the time of the last interactive sign-in when a resumed sign-in
/// is stored again.
pub async fn save(
    store: &Store,
    master: &MasterKey,
    tokens: &UserTokens,
    previous: Option<&SignIn>,
) -> Result<SignIn, SignInError> {
    let id = |what: &'static str, v: &Option<String>| -> Result<Uuid, SignInError> {
        v.as_deref()
            .and_then(|text| text.parse().ok())
            .ok_or(SignInError::Incomplete(what))
    };
    let sealed = tokens
        .seal_refresh_token(master)
        .map_err(SignInError::Seal)?;
    let record = SignIn {
        entra_tenant_id: id("tenant", &tokens.entra_tenant_id)?,
        user_oid: id("object id", &tokens.oid)?,
        upn: tokens.upn.clone(),
        scope: tokens.scope.clone(),
        sealed_refresh_token: Sealed::new(sealed.as_bytes().to_vec()),
        signed_in_at: previous.map_or_else(time::OffsetDateTime::now_utc, |p| p.signed_in_at),
    };
    store.save_sign_in(&record).await?;
    Ok(record)
}
