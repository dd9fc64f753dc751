//! dvhost's secret-owning transport: connection certificates, Entra ID
//! tokens, and the Dataverse Web API client.
//!
//! This is the only crate of dvhost that ever holds a private key, a client
//! assertion, an access token or a refresh token, and its public API is
//! shaped so that none of them can leave it:
//!
//! - no public function returns a key, a token, an assertion or a refresh
//!   token; a private key leaves only sealed ([`SealedKey`], AES-256-GCM under
//!   the operator's [`MasterKey`]), a signed-in user's refresh token likewise
//!   ([`SealedSignIn`]), and a tenant's API key once, when it is minted
//!   ([`NewApiKey::show_once`]; what is kept is its hash);
//! - no public function takes a request URL or a raw path: requests are built
//!   from validated names ([`EntitySet`], [`TableName`], [`ColumnName`],
//!   [`RecordKey`]) and the only URLs are configuration ([`Environment`],
//!   [`Authority`]), which must be `https` (or `http` on loopback);
//! - every request is checked, just before the bearer token is attached, to
//!   go to the connection's own environment under its Web API path; a next
//!   link or an entity set name from a server that points anywhere else is
//!   refused with a typed error before anything is sent;
//! - the HTTP client is built here ([`HttpClient`]) with redirects off and
//!   no proxy, so no caller-configured client can carry the token elsewhere.
//!
//! ```compile_fail,E0624
//! // The private key cannot be read outside this crate.
//! fn leak(cert: &dvhost_dataverse::Certificate) -> String {
//!     cert.private_key_pem().to_string()
//! }
//! ```
//!
//! ```compile_fail
//! // Nor can a connection's access token be fetched (both the method and
//! // the token type it returns are private).
//! async fn leak(tokens: &dvhost_dataverse::TokenSource) {
//!     let _token = tokens.token(std::time::Instant::now()).await;
//! }
//! ```
//!
//! ```compile_fail,E0624
//! // Nor a signed-in user's access or refresh token.
//! fn leak(user: &dvhost_dataverse::UserTokens) -> String {
//!     user.access_token().to_string()
//! }
//! ```
//!
//! ```compile_fail
//! // Nor can a request be aimed at a URL of the caller's choosing (the
//! // sending methods and their types are private).
//! async fn aim(c: &dvhost_dataverse::Client, url: url::Url) {
//!     let now = std::time::Instant::now();
//!     let _reply = c.send_url(reqwest::Method::GET, url, None, &[], todo!(), now).await;
//! }
//! ```
//!
//! ```compile_fail,E0382
//! // A minted API key is shown once.
//! fn twice(key: dvhost_dataverse::NewApiKey, out: &mut Vec<u8>) {
//!     key.show_once(out).unwrap();
//!     key.show_once(out).unwrap();
//! }
//! ```
//!
//! The same code doing what is allowed compiles, so the examples above fail
//! for the call they make, not for a typo in a path (doc tests check no
//! error codes on stable Rust):
//!
//! ```
//! fn fine(cert: &dvhost_dataverse::Certificate) -> String {
//!     cert.sha1_thumbprint_hex()
//! }
//! async fn fine_too(tokens: &dvhost_dataverse::TokenSource) {
//!     let _info = tokens.warm(std::time::Instant::now()).await;
//! }
//! fn fine_three(user: &dvhost_dataverse::UserTokens) -> String {
//!     user.scope.to_string()
//! }
//! fn fine_five(key: dvhost_dataverse::NewApiKey, out: &mut Vec<u8>) {
//!     key.show_once(out).unwrap();
//! }
//! async fn fine_four(c: &dvhost_dataverse::Client, url: url::Url) {
//!     let _now = (reqwest::Method::GET, url, std::time::Instant::now());
//!     let _who = c.who_am_i(std::time::Instant::now()).await;
//! }
//! ```

mod admin;
mod at_rest;
mod endpoint;
mod identity;
mod retry;
mod seconds;
mod webapi;

pub use admin::{
    AdminError, AppRegistration, EnvironmentAdmin, GraphAdmin, GraphService, RegisteredKey,
};
pub use at_rest::{
    API_KEY_PREFIX, ApiKeyError, MASTER_KEY_ENV, MasterKeyError, MasterKeyOrigin, NewApiKey,
    PresentedApiKey,
};
pub use endpoint::{Authority, DiscoveryService, EndpointError, Environment};
pub use identity::{
    Certificate, Connection, DeviceCodePrompt, DeviceSignIn, Discovery, HttpClient, IdentityError,
    Instance, MasterKey, PendingSignIn, SealedKey, SealedSignIn, SigningAlgorithm, TokenInfo,
    TokenSource, UserTokens,
};
pub use retry::counting_retries;
pub use webapi::{
    AlternateKey, BatchOperation, BatchPart, BatchResponse, BulkWrite, Client, ColumnInfo,
    ColumnName, DataverseError, EntitySet, Expand, FilterValue, KeyValue, LookupTarget,
    MetadataCacheConfig, Op, OptionValue, Page, Query, RecordKey, Stats, TableDescription,
    TableInfo, TableName, TargetError, TextMatch, WhoAmI,
};
