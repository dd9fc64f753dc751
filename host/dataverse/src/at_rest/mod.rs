//! Secrets at rest and at the door: the operator's master key (from the
//! environment or an owner-only key file created at first start) and the
//! tenants' API keys (minted here, shown once, kept elsewhere only as a
//! hash, verified here in constant time). The store keeps what these
//! produce; it never sees the master key or an API key.

mod api_key;
mod master_key_file;

pub use api_key::{API_KEY_PREFIX, ApiKeyError, NewApiKey, PresentedApiKey};
pub use master_key_file::{MASTER_KEY_ENV, MasterKeyError, MasterKeyOrigin};
