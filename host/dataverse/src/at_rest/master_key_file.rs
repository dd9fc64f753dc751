//! Loading the master key: the environment variable wins; else the key
//! file, created with owner-only permissions (0600) at first start. A key
//! file that others could read, or that does not hold 32 bytes, is refused
//! rather than used or replaced.

use std::fs;
use std::io::{ErrorKind, Write as _};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore as _;
use zeroize::Zeroizing;

use crate::MasterKey;

/// The environment variable `dvhost` reads the master key from (standard
/// base64 of 32 bytes).
pub const MASTER_KEY_ENV: &str = "DVHOST_MASTER_KEY";

/// Largest key file read: a key is 45 bytes of text; anything much larger
/// is not a key file.
const MAX_KEY_FILE: u64 = 1024;

/// Where the master key came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MasterKeyOrigin {
    /// The environment variable.
    Environment,
    /// An existing key file.
    KeyFile,
    /// A key file created just now (tell the operator to back it up).
    CreatedKeyFile,
}

/// Why the master key could not be loaded. Never contains the key.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    /// The environment variable does not hold base64 of 32 bytes.
    #[error("{MASTER_KEY_ENV} must be standard base64 of 32 bytes ({why})")]
    Environment {
        /// What is wrong (never the value).
        why: &'static str,
    },
    /// The key file can be read by others than its owner.
    #[error(
        "the master key file {path} has permissions {mode:o}: it must be readable by its owner only (chmod 600 {path}); it was not used"
    )]
    TooOpen {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The key file does not hold base64 of 32 bytes.
    #[error(
        "the master key file {path} must hold standard base64 of 32 bytes ({why}); it was not used or replaced"
    )]
    Malformed {
        /// The key file.
        path: PathBuf,
        /// What is wrong (never the content).
        why: &'static str,
    },
    /// The key file could not be read or created.
    #[error("the master key file {path} cannot be used: {source}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
}

impl MasterKey {
    /// The operator's master key: from `env_value` (the content of
    /// [`MASTER_KEY_ENV`], when set and not empty), else from `key_file`,
    /// which is created (owner-only, with a fresh random key) when missing.
    pub fn load(
        env_value: Option<&str>,
        key_file: &Path,
    ) -> Result<(MasterKey, MasterKeyOrigin), MasterKeyError> {
        if let Some(value) = env_value.filter(|v| !v.trim().is_empty()) {
            let key = decode(value).map_err(|why| MasterKeyError::Environment { why })?;
            return Ok((key, MasterKeyOrigin::Environment));
        }
        match read_key_file(key_file) {
            Err(MasterKeyError::Io { source, .. }) if source.kind() == ErrorKind::NotFound => {
                match create_key_file(key_file) {
                    Ok(key) => Ok((key, MasterKeyOrigin::CreatedKeyFile)),
                    // Another process created it first: use theirs.
                    Err(MasterKeyError::Io { source, .. })
                        if source.kind() == ErrorKind::AlreadyExists =>
                    {
                        read_key_file(key_file).map(|key| (key, MasterKeyOrigin::KeyFile))
                    }
                    Err(e) => Err(e),
                }
            }
            other => other.map(|key| (key, MasterKeyOrigin::KeyFile)),
        }
    }
}

fn decode(text: &str) -> Result<MasterKey, &'static str> {
    let bytes = Zeroizing::new(
        STANDARD
            .decode(text.trim())
            .map_err(|_| "it is not base64")?,
    );
    let array: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| "it does not decode to 32 bytes")?;
    Ok(MasterKey::from_bytes(array))
}

fn read_key_file(path: &Path) -> Result<MasterKey, MasterKeyError> {
    let io = |source| MasterKeyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = fs::metadata(path).map_err(io)?;
    let malformed = |why| MasterKeyError::Malformed {
        path: path.to_path_buf(),
        why,
    };
    if !meta.is_file() {
        return Err(malformed("it is not a regular file"));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(MasterKeyError::TooOpen {
                path: path.to_path_buf(),
                mode,
            });
        }
    }
    if meta.len() > MAX_KEY_FILE {
        return Err(malformed("it is far longer than a key"));
    }
    let text = Zeroizing::new(fs::read(path).map_err(io)?);
    let text = std::str::from_utf8(&text).map_err(|_| malformed("it is not text"))?;
    decode(text).map_err(malformed)
}

/// Writes a fresh key to a new owner-only file (never over an existing one).
fn create_key_file(path: &Path) -> Result<MasterKey, MasterKeyError> {
    let io = |source| MasterKeyError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(parent).map_err(io)?;
    }
    let mut bytes = Zeroizing::new([0u8; 32]);
    rand::rng().fill_bytes(bytes.as_mut_slice());
    let text = Zeroizing::new(format!("{}\n", STANDARD.encode(bytes.as_slice())));
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(io)?;
    if let Err(e) = file
        .write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
    {
        // A half-written key file would be refused at every later start.
        let _ = fs::remove_file(path);
        return Err(io(e));
    }
    Ok(MasterKey::from_bytes(*bytes))
}
