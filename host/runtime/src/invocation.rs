//! The store data of one call: a fresh [`Invocation`] per call, dropped with
//! its `Store`, so nothing (pages, logs, memory) outlives the call or
//! crosses to another tenant. Each interface sees only its own part of it.

use std::sync::Arc;

use parking_lot::Mutex;
use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::calls::DataverseState;
use crate::limits::PluginLimits;
use crate::log::LogBook;

/// Everything a call's `Store` holds.
pub struct Invocation {
    pub(crate) wasi: WasiCtx,
    pub(crate) handles: ResourceTable,
    pub(crate) limiter: Limiter,
    pub(crate) dataverse: DataverseState,
    pub(crate) log: Arc<Mutex<LogBook>>,
}

impl WasiView for Invocation {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.handles,
        }
    }
}

/// Instances, memories and tables a plugin may create. A Rust component
/// has one memory and one table; Python and JavaScript components stack
/// several core instances (interpreter, libc, adapters).
const MAX_INSTANCES: usize = 64;
const MAX_MEMORIES: usize = 16;
const MAX_TABLES: usize = 64;
/// Table elements (function references): Python components need ~30k.
pub(crate) const MAX_TABLE_ELEMENTS: usize = 200_000;

/// `StoreLimits` that remember a refused memory growth, so the report can
/// say "memory cap" rather than a bare trap.
pub(crate) struct Limiter {
    inner: StoreLimits,
    pub(crate) memory_refused: Option<usize>,
}

impl Limiter {
    pub(crate) fn new(limits: &PluginLimits) -> Limiter {
        Limiter {
            inner: StoreLimitsBuilder::new()
                .memory_size(limits.memory_bytes)
                .table_elements(MAX_TABLE_ELEMENTS)
                .instances(MAX_INSTANCES)
                .memories(MAX_MEMORIES)
                .tables(MAX_TABLES)
                .trap_on_grow_failure(true)
                .build(),
            memory_refused: None,
        }
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let answer = self.inner.memory_growing(current, desired, maximum);
        if !matches!(answer, Ok(true)) {
            self.memory_refused = Some(desired);
        }
        answer
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.inner.memory_grow_failed(error)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.inner.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}
