//! Compiling components, once: compiled artifacts are kept on disk under
//! the SHA-256 of the component and a hash of the engine's settings, so a
//! restart (or a second host on the same disk) loads them without
//! compiling. An artifact that no longer fits the engine is compiled again.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;

use crate::error::LoadError;

/// The component's SHA-256, in hex.
pub(crate) fn content_hash(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

fn engine_key(engine: &wasmtime::Engine) -> String {
    let mut h = DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    format!("{:016x}", h.finish())
}

fn invalid(e: wasmtime::Error) -> LoadError {
    LoadError::Invalid(format!("{e:#}"))
}

/// Compiles `bytes` or loads their artifact from `dir`; says whether the
/// artifact came from the cache.
pub(crate) fn compile(
    engine: &wasmtime::Engine,
    bytes: &[u8],
    hash: &str,
    dir: Option<&Path>,
) -> Result<(Component, bool), LoadError> {
    let Some(dir) = dir else {
        return Ok((Component::new(engine, bytes).map_err(invalid)?, false));
    };
    let path = dir.join(format!("{hash}-{}.cwasm", engine_key(engine)));
    // Read, not mapped: a mapped artifact that something truncates on disk
    // would crash the host (SIGBUS) while the plugin runs.
    if let Ok(artifact) = std::fs::read(&path) {
        // SAFETY: the file is one this module wrote into the host's own
        // cache directory from a component it compiled; wasmtime checks its
        // header and engine compatibility before using it.
        match unsafe { Component::deserialize(engine, &artifact) } {
            Ok(component) => return Ok((component, true)),
            Err(e) => {
                tracing::warn!(path = %path.display(), "compiled artifact unusable, compiling again: {e:#}")
            }
        }
    }
    let artifact = engine.precompile_component(bytes).map_err(invalid)?;
    // A temporary name of its own per write: loads of the same component
    // may run at once in one process. The cache only saves work, so a
    // failed write is logged and the compiled component still used.
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let unique = WRITES.fetch_add(1, Ordering::Relaxed);
    let temporary = path.with_extension(format!("tmp{}-{unique}", std::process::id()));
    let written =
        std::fs::write(&temporary, &artifact).and_then(|()| std::fs::rename(&temporary, &path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temporary);
        tracing::warn!(path = %path.display(), "compiled artifact not cached: {e}");
    }
    // SAFETY: `artifact` was produced by `precompile_component` of this engine
    // just above.
    let component = unsafe { Component::deserialize(engine, &artifact) }.map_err(invalid)?;
    Ok((component, false))
}
