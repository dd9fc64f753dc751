//! A delegated sign-in kept at rest: the refresh token sealed with the
//! master key (AES-256-GCM, as private keys are), bound to the authority,
//! tenant and client that issued it and to the user's object id. A sealed
//! sign-in opens only through a [`DeviceSignIn`] of the same issuer, for
//! the same user, and only to be redeemed at once: what comes back is fresh
//! [`UserTokens`], never the refresh token.

use std::time::Instant;

use zeroize::Zeroizing;

use super::device::Issuer;
use super::{DeviceSignIn, IdentityError, MasterKey, SealedKey, UserTokens};

/// Format and purpose tag of the binding, so a sealed private key can never
/// be opened as a sign-in or the other way round.
const PURPOSE: &[u8] = b"dvhost sign-in v1";

/// A refresh token sealed for storage (the store keeps these bytes).
#[derive(Clone, PartialEq, Eq)]
pub struct SealedSignIn(SealedKey);

impl std::fmt::Debug for SealedSignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealedSignIn({} bytes)", self.0.as_bytes().len())
    }
}

impl SealedSignIn {
    /// The stored form.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// A sealed sign-in read back from storage; checked when it is opened.
    pub fn from_bytes(bytes: Vec<u8>) -> SealedSignIn {
        SealedSignIn(SealedKey::from_bytes(bytes))
    }
}

/// What a sealed sign-in is bound to: its issuer and its user.
fn binding(issuer: &Issuer, user_oid: &str) -> Vec<u8> {
    let mut out = PURPOSE.to_vec();
    for part in [
        issuer.authority.as_str(),
        &issuer.tenant,
        &issuer.client_id,
        user_oid,
    ] {
        out.push(0);
        out.extend_from_slice(part.as_bytes());
    }
    out
}

fn unusable(why: &str) -> IdentityError {
    IdentityError::SignIn(why.to_string())
}

impl UserTokens {
    /// The refresh token sealed with `master` for the store, bound to this
    /// sign-in's issuer and user. Needs a refresh token (ask for
    /// `offline_access`) and the user's object id (ask for `openid`).
    pub fn seal_refresh_token(&self, master: &MasterKey) -> Result<SealedSignIn, IdentityError> {
        let refresh_token = self.refresh_token.as_ref().ok_or_else(|| {
            unusable("there is no refresh token to keep: sign in asking for offline_access")
        })?;
        let oid = self.oid.as_deref().ok_or_else(|| {
            unusable("the user is unknown (no id token): sign in asking for openid")
        })?;
        let bound = binding(&self.issuer, oid);
        Ok(SealedSignIn(SealedKey::seal(
            master,
            &bound,
            refresh_token.as_bytes(),
        )))
    }
}

impl DeviceSignIn {
    /// Fresh tokens for `scopes` (plus `openid`, so the answer names its
    /// user, who must be `user_oid`) from a sealed sign-in of `user_oid`, issued
    /// by this sign-in client (same authority, tenant and client). Fails
    /// without any request when the master key, the issuer or the user is
    /// not the one it was sealed for. When Entra rotates the refresh token,
    /// seal the returned tokens again and store them in place of the old.
    pub async fn resume(
        &self,
        sealed: &SealedSignIn,
        master: &MasterKey,
        user_oid: &str,
        scopes: &[&str],
        deadline: Instant,
    ) -> Result<UserTokens, IdentityError> {
        if scopes.is_empty() {
            return Err(unusable("name the scopes to resume the sign-in for"));
        }
        let issuer = self.issuer.clone();
        let refresh_token = sealed.0.open(master, &binding(&issuer, user_oid)).map_err(|_| {
            unusable(
                "the stored sign-in does not open: another master key, another user or sign-in client, or damaged data; sign in again",
            )
        })?;
        let refresh_token = std::str::from_utf8(&refresh_token)
            .map(|text| Zeroizing::new(text.to_string()))
            .map_err(|_| unusable("the stored sign-in is damaged; sign in again"))?;
        // `openid` brings an id token naming the user, checked below.
        let mut scopes = scopes.to_vec();
        if !scopes.contains(&"openid") {
            scopes.push("openid");
        }
        let stored = UserTokens {
            // Never sent: `refresh` sends the refresh token only.
            access_token: Zeroizing::new(String::new()),
            refresh_token: Some(refresh_token),
            expires_at: Instant::now(),
            scope: scopes.join(" "),
            upn: None,
            oid: Some(user_oid.to_string()),
            entra_tenant_id: None,
            issuer,
        };
        let tokens = self.refresh(&stored, &scopes, deadline).await?;
        if tokens.oid.as_deref() != Some(user_oid) {
            return Err(unusable(
                "Entra answered for another user than the one this sign-in was stored for",
            ));
        }
        Ok(tokens)
    }
}
