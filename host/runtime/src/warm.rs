//! Prepared instances: a plugin's next instance, instantiated after a call
//! has answered instead of when the next call arrives.
//!
//! Each call still runs in a fresh `Store` and instance that nothing ran in
//! before and nothing runs in after: preparing only moves the instantiation
//! (and the previous store's drop and pool-slot reset) off the caller's
//! path. A prepared instance is made under the plugin's memory cap, log
//! budget and scratch directory with no connection; the call that takes it
//! puts its own grants, backends, quotas and deadline into the store before
//! the guest runs, and a call whose memory cap, log budget or scratch
//! directory differ instantiates afresh.
//!
//! What it costs is bounded: at most one prepared instance per plugin, at
//! most [`EngineConfig::prepared_instances`](crate::EngineConfig) in all
//! (each holds a pool slot, which the pool is sized for; a permit is held
//! until the store is dropped), and one unused for a minute (by default)
//! is dropped. A plugin whose instantiation traps, runs out its deadline or
//! touches an import while preparing is not prepared again: its calls
//! instantiate as before and report what went wrong.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use wasmtime::Store;

use crate::bindings;
use crate::invocation::Invocation;
use crate::plugin::Capabilities;

/// How long a prepared instance waits for a call before it is dropped,
/// unless the engine's configuration says otherwise.
pub(crate) const IDLE: Duration = Duration::from_secs(60);

/// A store with an instance in it, never run.
pub(crate) struct Prepared {
    pub(crate) store: Store<Invocation>,
    pub(crate) instance: bindings::Plugin,
    /// What instantiation built into the store: the memory cap (the
    /// limiter), the log budget (the log book) and the WASI directory.
    memory_bytes: usize,
    log_bytes: usize,
    scratch_dir: Option<PathBuf>,
    /// Held until the store is dropped: the pool slot is the budget's.
    pub(crate) permit: Permit,
}

impl Prepared {
    /// Whether a call under `caps` may run in it: the rest of a call's
    /// limits (deadline, quotas) is put in when the call takes it.
    fn fits(&self, caps: &Capabilities) -> bool {
        self.memory_bytes == caps.limits.memory_bytes
            && self.log_bytes == caps.limits.log_bytes
            && self.scratch_dir == caps.scratch_dir
    }
}

/// One of the budget's places, given back when the prepared instance is
/// dropped (taken and finished, expired, or its plugin unloaded).
pub(crate) struct Permit(Arc<AtomicUsize>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::AcqRel);
    }
}

/// The engine's prepared instances: the budget, and the plugins' keys for
/// the idle upkeep.
pub(crate) struct Pool {
    keys: Mutex<Vec<Weak<Key>>>,
    free: Arc<AtomicUsize>,
    idle: Duration,
}

impl Pool {
    pub(crate) fn new(budget: u32, idle: Duration) -> Arc<Pool> {
        Arc::new(Pool {
            keys: Mutex::new(Vec::new()),
            free: Arc::new(AtomicUsize::new(budget as usize)),
            idle,
        })
    }

    /// A key for a newly loaded plugin, shared by its clones.
    pub(crate) fn key(self: &Arc<Pool>) -> Arc<Key> {
        let key = Arc::new(Key {
            pool: self.clone(),
            slot: Mutex::new(None),
            busy: AtomicBool::new(false),
            refused: AtomicBool::new(false),
        });
        self.keys.lock().push(Arc::downgrade(&key));
        key
    }

    /// Drops prepared instances idle past their time, and forgets unloaded
    /// plugins. The engine's ticker calls it about once a second, so an
    /// idle host lets them go too.
    pub(crate) fn upkeep(&self) {
        let live: Vec<Arc<Key>> = {
            let mut keys = self.keys.lock();
            keys.retain(|k| k.strong_count() > 0);
            keys.iter().filter_map(Weak::upgrade).collect()
        };
        for key in live {
            // Taken under the slot's lock, dropped after it.
            let expired = {
                let mut slot = key.slot.lock();
                match &*slot {
                    Some((_, since)) if since.elapsed() >= self.idle => slot.take(),
                    _ => None,
                }
            };
            drop(expired);
        }
    }

    /// A place in the budget, if one is free.
    fn permit(&self) -> Option<Permit> {
        self.free
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .ok()
            .map(|_| Permit(self.free.clone()))
    }
}

/// A plugin's place in the [`Pool`]: its prepared instance, if any.
/// Dropped with the plugin's last clone, and the instance (and its place
/// in the budget) with it.
pub(crate) struct Key {
    pool: Arc<Pool>,
    /// The prepared instance and when it was made.
    slot: Mutex<Option<(Prepared, Instant)>>,
    /// An instance is being prepared.
    busy: AtomicBool,
    /// Preparing failed in a way that will not change (a trap, its
    /// deadline, an import called): never again for this plugin.
    refused: AtomicBool,
}

impl Key {
    /// The prepared instance, if there is one and `caps` fit it. One that
    /// does not fit is dropped: the plugin's settings changed.
    pub(crate) fn take(&self, caps: &Capabilities) -> Option<Prepared> {
        let (prepared, _) = self.slot.lock().take()?;
        prepared.fits(caps).then_some(prepared)
    }

    /// Whether an instance is prepared for the plugin's next call.
    pub(crate) fn ready(&self) -> bool {
        self.slot.lock().is_some()
    }

    /// Starts preparing the plugin's next instance, unless one is ready or
    /// under way or the plugin was refused: in `held`'s place in the
    /// budget (a finished call's prepared instance), or a free one.
    /// Otherwise gives `held` back, for the caller to drop after the store
    /// it was for.
    pub(crate) fn begin(self: &Arc<Key>, held: Option<Permit>) -> Result<Attempt, Option<Permit>> {
        if self.busy.swap(true, Ordering::AcqRel) {
            return Err(held);
        }
        // Checked while `busy` is held: no other attempt can fill the slot
        // between this check and this attempt's end.
        if self.refused.load(Ordering::Acquire) || self.ready() {
            self.busy.store(false, Ordering::Release);
            return Err(held);
        }
        let Some(permit) = held.or_else(|| self.pool.permit()) else {
            self.busy.store(false, Ordering::Release);
            return Err(None);
        };
        Ok(Attempt {
            key: self.clone(),
            permit: Some(permit),
        })
    }
}

/// One attempt to prepare an instance for a plugin.
pub(crate) struct Attempt {
    key: Arc<Key>,
    permit: Option<Permit>,
}

impl Attempt {
    /// Keeps `store` and `instance` for the plugin's next call under `caps`,
    /// unless instantiating called an import: a call's records must start
    /// empty.
    pub(crate) fn keep(
        mut self,
        store: Store<Invocation>,
        instance: bindings::Plugin,
        caps: &Capabilities,
    ) {
        if !store.data().dataverse.audit.is_empty() {
            // The store (its pool slot) goes before the attempt's place.
            drop(store);
            return self.refuse();
        }
        let Some(permit) = self.permit.take() else {
            return;
        };
        let prepared = Prepared {
            store,
            instance,
            memory_bytes: caps.limits.memory_bytes,
            log_bytes: caps.limits.log_bytes,
            scratch_dir: caps.scratch_dir.clone(),
            permit,
        };
        let replaced = self.key.slot.lock().replace((prepared, Instant::now()));
        drop(replaced);
    }

    /// Instantiating failed in a way that will fail again (a trap, the
    /// deadline): this plugin is not prepared again. Any other failure (the
    /// pool full, a directory that could not be opened) just ends the
    /// attempt: drop it.
    pub(crate) fn refuse(self) {
        self.key.refused.store(true, Ordering::Release);
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        self.key.busy.store(false, Ordering::Release);
    }
}
