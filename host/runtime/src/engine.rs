//! A narrow wrapper over `wasmtime::Engine`: the component model on, epoch
//! interruption driven by a ticker thread, the pooling allocator sized for
//! the plugin ceilings, and one `Linker` with WASI and dvhost's imports,
//! built once and shared by every plugin.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::component::Linker;
use wasmtime::{Enabled, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig};

use crate::bindings;
use crate::error::LoadError;
use crate::invocation::{Invocation, MAX_TABLE_ELEMENTS};
use crate::limits::CEILING;
use crate::log::{LogData, LogView};
use crate::metadata::{MetadataData, MetadataView};
use crate::records::{RecordsData, RecordsView};
use crate::warm;

/// How often the epoch advances. A deadline is rounded up to whole ticks,
/// so a guest overruns its deadline by at most one tick; and a computing
/// guest yields its worker thread at every tick, so a request that lands
/// on that thread waits at most a tick for it (1 ms: another tenant's
/// request behind a busy guest; each yield costs about a microsecond).
pub(crate) const TICK: Duration = Duration::from_millis(1);

/// Ticks between two upkeeps of the prepared instances (about a second):
/// one idle past `prepared_idle` is dropped even when no call comes.
const UPKEEP_TICKS: u32 = 1000;

/// Dirty bytes of a linear memory restored in place (not decommitted) when
/// its pool slot is reset, with the `PAGEMAP_SCAN` ioctl. Only written pages
/// count: a Rust guest's call writes a few dozen 4 KiB pages (512 KiB was
/// as fast as 4 MiB in the benchmark). It bounds what each warm slot keeps
/// resident.
const MEMORY_KEEP_RESIDENT: usize = 1 << 20;

/// Raw engine settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Where compiled components are kept, keyed by content hash and engine
    /// settings, so a restart does not compile again. `None`: no disk cache.
    pub cache_dir: Option<PathBuf>,
    /// Instances alive at once across all plugins (the pool's size): calls
    /// beyond it wait in the caller's queue, they are not failed here.
    pub max_instances: u32,
    /// Instances prepared ahead of calls, at most two per plugin (see
    /// [`Report::prepared`](crate::Report)): after a call answers, the
    /// plugin's next instances are made in the background, so the next calls
    /// skip instantiation. Each holds a pool slot on top of
    /// `max_instances`, and is dropped after a minute unused. 0: every call
    /// instantiates on its way.
    pub prepared_instances: u32,
    /// How long a prepared instance waits for a call before it is dropped
    /// (checked about once a second). Default: a minute.
    pub prepared_idle: Duration,
    /// Lets [`Plugin::invoke_inspecting`](crate::Plugin) read a guest's
    /// memory after a call (tests of the secret wall). Slower code.
    pub inspectable: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            cache_dir: None,
            max_instances: 1000,
            prepared_instances: 64,
            prepared_idle: warm::IDLE,
            inspectable: false,
        }
    }
}

struct Ticker {
    stop: Arc<AtomicBool>,
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

struct Inner {
    wasmtime: wasmtime::Engine,
    linker: Linker<Invocation>,
    cache_dir: Option<PathBuf>,
    prepared: Arc<warm::Pool>,
    _ticker: Ticker,
}

/// The engine every plugin of a host runs on. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("cache_dir", &self.inner.cache_dir)
            .finish()
    }
}

fn pool(config: &EngineConfig) -> PoolingAllocationConfig {
    let mut pool = PoolingAllocationConfig::default();
    let calls = config.max_instances.max(1);
    let prepared = config.prepared_instances;
    // Room per instance: a Rust component holds one core instance, memory
    // and table, a Python or JavaScript one a dozen core instances. Calls
    // get room for a mix; prepared instances (which may all be of one
    // plugin) for the larger kind, so they never take a call's share.
    let room = |per_call: u32, per_prepared: u32| {
        calls
            .saturating_mul(per_call)
            .saturating_add(prepared.saturating_mul(per_prepared))
    };
    pool.total_component_instances(room(1, 1))
        .total_core_instances(room(4, 16))
        .total_memories(room(2, 4))
        .total_tables(room(4, 16))
        .total_stacks(calls)
        .max_memories_per_component(16)
        .max_tables_per_component(64)
        .max_core_instances_per_component(64)
        .max_memory_size(CEILING.memory_bytes)
        .table_elements(MAX_TABLE_ELEMENTS)
        .max_core_instance_size(16 << 20)
        .max_component_instance_size(1 << 20)
        .table_keep_resident(64 << 10);
    if PoolingAllocationConfig::is_pagemap_scan_available() {
        // Linux 6.7+: at reset the pool asks the kernel which pages the call
        // wrote (PAGEMAP_SCAN) and restores only those, to the component's
        // memory image or zeros, up to `MEMORY_KEEP_RESIDENT`; the rest is
        // decommitted. The next call still sees a pristine memory, and the
        // stack top, data and heap pages stay mapped from call to call: no
        // `madvise`, no TLB shootdown, no page faults to bring them back
        // (fresh store + no-op invoke: 30 µs -> 11 µs, see the README).
        pool.pagemap_scan(Enabled::Yes)
            .linear_memory_keep_resident(MEMORY_KEEP_RESIDENT);
    } else {
        // Without the scan the first `keep_resident` bytes are `memset` on
        // every reset whether written or not, and a Rust guest's first MiB
        // is its stack (used from the top): keep only a little.
        pool.linear_memory_keep_resident(64 << 10);
    }
    pool
}

fn linker(engine: &wasmtime::Engine) -> wasmtime::Result<Linker<Invocation>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    bindings::records::add_to_linker::<Invocation, RecordsData>(&mut linker, |s| RecordsView {
        state: &mut s.dataverse,
        handles: &mut s.handles,
    })?;
    bindings::metadata::add_to_linker::<Invocation, MetadataData>(&mut linker, |s| MetadataView {
        state: &mut s.dataverse,
    })?;
    bindings::log::add_to_linker::<Invocation, LogData>(&mut linker, |s| LogView { book: &s.log })?;
    Ok(linker)
}

impl Engine {
    /// An engine with `config`.
    pub fn new(config: EngineConfig) -> Result<Engine, LoadError> {
        let mut wasm = wasmtime::Config::new();
        wasm.wasm_component_model(true)
            .epoch_interruption(true)
            .cranelift_opt_level(OptLevel::Speed)
            .max_wasm_stack(1 << 20)
            .async_stack_size(2 << 20)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool(&config)));
        wasm.guest_debug(config.inspectable);
        let wasmtime =
            wasmtime::Engine::new(&wasm).map_err(|e| LoadError::Engine(format!("{e:#}")))?;
        let linker = linker(&wasmtime).map_err(|e| LoadError::Engine(format!("{e:#}")))?;
        if let Some(dir) = &config.cache_dir {
            std::fs::create_dir_all(dir)
                .map_err(|e| LoadError::Cache(format!("cannot create {}: {e}", dir.display())))?;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let ticking = wasmtime.weak();
        let stopped = stop.clone();
        let prepared = warm::Pool::new(config.prepared_instances, config.prepared_idle);
        let upkept = Arc::downgrade(&prepared);
        std::thread::Builder::new()
            .name("dvhost-epoch".into())
            .spawn(move || {
                let mut ticks: u32 = 0;
                while !stopped.load(Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    match ticking.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => return,
                    }
                    ticks = ticks.wrapping_add(1);
                    if ticks.is_multiple_of(UPKEEP_TICKS)
                        && let Some(prepared) = upkept.upgrade()
                    {
                        prepared.upkeep();
                    }
                }
            })
            .map_err(|e| LoadError::Engine(format!("cannot start the epoch thread: {e}")))?;
        Ok(Engine {
            inner: Arc::new(Inner {
                wasmtime,
                linker,
                cache_dir: config.cache_dir,
                prepared,
                _ticker: Ticker { stop },
            }),
        })
    }

    pub(crate) fn wasmtime(&self) -> &wasmtime::Engine {
        &self.inner.wasmtime
    }

    pub(crate) fn linker(&self) -> &Linker<Invocation> {
        &self.inner.linker
    }

    pub(crate) fn prepared(&self) -> &Arc<warm::Pool> {
        &self.inner.prepared
    }

    pub(crate) fn cache_dir(&self) -> Option<&std::path::Path> {
        self.inner.cache_dir.as_deref()
    }
}
