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
//! directory differ instantiates afresh. Instances are made under the
//! settings of the plugin's latest call, noted when it starts: one made
//! under settings a call has since changed is not kept but made again.
//!
//! What it costs is bounded: at most [`PER_PLUGIN`] prepared instances per
//! plugin (two, so that a call coming right after another still finds one
//! while the next is being made), at most
//! [`EngineConfig::prepared_instances`](crate::EngineConfig) in all
//! (each holds a pool slot, which the pool is sized for; a permit is held
//! until the store is dropped), and one unused for a minute (by default)
//! is dropped. A plugin whose instantiation traps, runs out its deadline or
//! touches an import while preparing is not prepared again: its calls
//! instantiate as before and report what went wrong.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use wasmtime::Store;

use crate::bindings;
use crate::invocation::Invocation;
use crate::limits::PluginLimits;
use crate::plugin::Capabilities;

/// How long a prepared instance waits for a call before it is dropped,
/// unless the engine's configuration says otherwise.
pub(crate) const IDLE: Duration = Duration::from_secs(60);

/// Most instances prepared for one plugin. With one, calls back to back
/// alternate: the second comes while the first's replacement is being made
/// and instantiates on its way; with two it takes the other.
pub(crate) const PER_PLUGIN: usize = 2;

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
        self.fits_settings(&caps.limits, caps.scratch_dir.as_deref())
    }

    /// [`Prepared::fits`] for a call's limits and scratch directory.
    fn fits_settings(&self, limits: &PluginLimits, scratch_dir: Option<&Path>) -> bool {
        self.memory_bytes == limits.memory_bytes
            && self.log_bytes == limits.log_bytes
            && self.scratch_dir.as_deref() == scratch_dir
    }
}

/// What the plugin's latest call ran under: what its next instances are
/// prepared for.
type Settings = (PluginLimits, Option<PathBuf>);

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
            slot: Mutex::new(Vec::new()),
            wanted: Mutex::new(None),
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
            let expired: Vec<_> = {
                let mut slot = key.slot.lock();
                let (old, kept) = std::mem::take(&mut *slot)
                    .into_iter()
                    .partition(|(_, since)| since.elapsed() >= self.idle);
                *slot = kept;
                old
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

/// A plugin's place in the [`Pool`]: its prepared instances, if any.
/// Dropped with the plugin's last clone, and the instances (and their
/// places in the budget) with it.
pub(crate) struct Key {
    pool: Arc<Pool>,
    /// The prepared instances (at most [`PER_PLUGIN`]) and when each was
    /// made, the newest last.
    slot: Mutex<Vec<(Prepared, Instant)>>,
    /// The settings of the plugin's latest call: an attempt under way
    /// prepares for them, even when they changed after it began.
    wanted: Mutex<Option<Settings>>,
    /// Instances are being prepared (one at a time).
    busy: AtomicBool,
    /// Preparing failed in a way that will not change (a trap, its
    /// deadline, an import called): never again for this plugin.
    refused: AtomicBool,
}

impl Key {
    /// A prepared instance (the newest), if there is one and `caps` fit
    /// it. If it does not fit, the plugin's settings changed: every
    /// instance prepared under the old ones is dropped.
    pub(crate) fn take(&self, caps: &Capabilities) -> Option<Prepared> {
        let mut slot = self.slot.lock();
        let (prepared, _) = slot.pop()?;
        if prepared.fits(caps) {
            return Some(prepared);
        }
        let stale = std::mem::take(&mut *slot);
        drop(slot);
        drop((prepared, stale));
        None
    }

    /// Notes the settings a call ran under, for the instances prepared
    /// after it.
    pub(crate) fn want(&self, caps: &Capabilities) {
        let mut wanted = self.wanted.lock();
        let same = wanted
            .as_ref()
            .is_some_and(|(limits, dir)| *limits == caps.limits && *dir == caps.scratch_dir);
        if !same {
            *wanted = Some((caps.limits, caps.scratch_dir.clone()));
        }
    }

    /// How many instances are prepared for the plugin's next calls.
    pub(crate) fn ready(&self) -> usize {
        self.slot.lock().len()
    }

    /// Starts preparing the plugin's next instances, unless it has its
    /// [`PER_PLUGIN`], one is under way or the plugin was refused: in
    /// `held`'s place in the budget (a finished call's prepared instance),
    /// or a free one.
    /// Otherwise gives `held` back, for the caller to drop after the store
    /// it was for.
    pub(crate) fn begin(self: &Arc<Key>, held: Option<Permit>) -> Result<Attempt, Option<Permit>> {
        if self.busy.swap(true, Ordering::AcqRel) {
            return Err(held);
        }
        // Checked while `busy` is held: no other attempt can fill the slot
        // between this check and this attempt's end.
        if self.refused.load(Ordering::Acquire) || self.ready() >= PER_PLUGIN {
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

/// One attempt to prepare instances for a plugin, one after another.
pub(crate) struct Attempt {
    key: Arc<Key>,
    permit: Option<Permit>,
}

impl Attempt {
    /// The settings to prepare the next instance under: the latest call's.
    pub(crate) fn settings(&self) -> Option<Settings> {
        self.key.wanted.lock().clone()
    }

    /// Keeps `store` and `instance` for one of the plugin's next calls
    /// under `caps`, unless instantiating called an import: a call's
    /// records must start empty. True when another instance is wanted and
    /// the budget has a place for it, which the attempt then holds.
    pub(crate) fn keep(
        &mut self,
        store: Store<Invocation>,
        instance: bindings::Plugin,
        caps: &Capabilities,
    ) -> bool {
        if !store.data().dataverse.audit.is_empty() {
            // The store (its pool slot) goes before the attempt's place.
            drop(store);
            self.refuse();
            return false;
        }
        let Some(permit) = self.permit.take() else {
            return false;
        };
        let prepared = Prepared {
            store,
            instance,
            memory_bytes: caps.limits.memory_bytes,
            log_bytes: caps.limits.log_bytes,
            scratch_dir: caps.scratch_dir.clone(),
            permit,
        };
        let current = self
            .key
            .wanted
            .lock()
            .as_ref()
            .is_some_and(|(limits, dir)| prepared.fits_settings(limits, dir.as_deref()));
        if !current {
            // A call under other settings came while it was made: made
            // again, under those, in the same place.
            let Prepared { store, permit, .. } = prepared;
            drop(store);
            self.permit = Some(permit);
            return true;
        }
        let mut slot = self.key.slot.lock();
        slot.push((prepared, Instant::now()));
        let extra = (slot.len() > PER_PLUGIN).then(|| slot.remove(0));
        let wanted = slot.len() < PER_PLUGIN;
        drop(slot);
        drop(extra);
        if wanted {
            self.permit = self.key.pool.permit();
        }
        self.permit.is_some()
    }

    /// Instantiating failed in a way that will fail again (a trap, the
    /// deadline): this plugin is not prepared again. Any other failure (the
    /// pool full, a directory that could not be opened) just ends the
    /// attempt: drop it.
    pub(crate) fn refuse(&self) {
        self.key.refused.store(true, Ordering::Release);
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        self.key.busy.store(false, Ordering::Release);
    }
}
