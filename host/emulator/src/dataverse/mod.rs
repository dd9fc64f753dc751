//! The Dataverse Web API (`<environment URL>/api/data/v9.2/`), one
//! environment per seed entry, served at `<emulator>/<unique_name>/api/data/...`
//! so that a token's `aud` (the environment URL) matches the URL the client
//! calls ("Compose HTTP requests and handle errors",
//! <https://learn.microsoft.com/power-apps/developer/data-platform/webapi/compose-http-requests-handle-errors>); this module
//! routes, authenticates and answers.

mod batch;
mod bulk;
mod caller;
mod csdl;
mod definitions;
mod dispatch;
pub mod error;
mod fetchxml;
mod handlers;
mod impersonation;
mod limits;
pub mod metadata;
mod path;
mod prefer;
pub mod query;
mod service;
pub mod store;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::any;
use parking_lot::{Mutex, RwLock};
use uuid::Uuid;

use crate::Emulator;
use crate::odata::filter::EvalContext;
use crate::state::Environment;
use metadata::Schema;
use prefer::Prefer;
use query::Annotations;
use store::{Caller, EnvData};

/// Every environment's data, created on first use, and the service
/// protection counters.
#[derive(Default)]
pub(crate) struct Environments {
    envs: Mutex<HashMap<Uuid, Arc<RwLock<EnvData>>>>,
    limits: Arc<limits::Tracker>,
    /// Rows loaded from the `--state` rows file, taken on first use.
    restored: Mutex<HashMap<Uuid, store::Snapshot>>,
    /// Set by every write request; cleared when the rows file is written.
    dirty: std::sync::atomic::AtomicBool,
}

pub(crate) fn routes() -> Router<Arc<Emulator>> {
    // The first segment is named like the Entra routes' (`tenant`) because
    // the router requires one name per position; here it is the environment.
    Router::new()
        .route("/{tenant}/api/data/{version}", any(service::handle_root))
        .route("/{tenant}/api/data/{version}/", any(service::handle_root))
        .route("/{tenant}/api/data/{version}/{*rest}", any(service::handle))
        // Anything else under `/api` is an unknown segment to Dataverse.
        .route("/{tenant}/api", any(service::unknown_segment))
        .route("/{tenant}/api/{*rest}", any(service::unknown_segment))
}

/// Everything a handler needs about one request.
struct Ctx {
    /// The emulator: its directory names the applications whose users
    /// Dataverse fills in.
    emu: Arc<crate::Emulator>,
    data: Arc<RwLock<EnvData>>,
    caller: Caller,
    /// `https://host:port/<env>/api/data/v9.2/` as the client addressed it.
    api_base: String,
    headers: HeaderMap,
    prefer: Prefer,
    /// Set for the operations of a `$batch` (internal state a client cannot
    /// set): a `$batch` inside one is rejected.
    in_batch: bool,
    /// The change set an operation of a `$batch` runs in: its writes are
    /// recorded there, to be undone if the change set fails.
    change_set: Option<u64>,
}

/// The environment's rows locked for writing by one request; what it
/// changes is recorded in its change set's journal, if it runs in one.
struct Writer<'a>(parking_lot::RwLockWriteGuard<'a, EnvData>);

impl std::ops::Deref for Writer<'_> {
    type Target = EnvData;
    fn deref(&self) -> &EnvData {
        &self.0
    }
}

impl std::ops::DerefMut for Writer<'_> {
    fn deref_mut(&mut self) -> &mut EnvData {
        &mut self.0
    }
}

impl Drop for Writer<'_> {
    fn drop(&mut self) {
        self.0.journal_into(None);
    }
}

impl Ctx {
    /// The environment's rows, locked for this request's writes.
    fn write(&self) -> Writer<'_> {
        let mut rows = self.data.write();
        rows.journal_into(self.change_set);
        Writer(rows)
    }

    /// The annotations `Prefer: odata.include-annotations` asks for.
    fn annotations(&self) -> Annotations {
        Annotations::parse(self.prefer.annotations.as_deref())
    }

    /// What `$filter` evaluation needs: the caller (`EqualUserId`) and the
    /// clock (`Today`, `LastXDays`, ...).
    fn eval_context(&self) -> EvalContext {
        EvalContext {
            user_id: Some(self.caller.systemuser.to_string()),
            now: Some(time::OffsetDateTime::now_utc()),
        }
    }
}

impl Environments {
    fn get_or_create(&self, env: &Environment) -> Arc<RwLock<EnvData>> {
        self.envs
            .lock()
            .entry(env.id)
            .or_insert_with(|| {
                // Validated when the environment was seeded.
                let schema = Arc::new(
                    metadata::build_schema(&env.tables, &env.alternate_keys)
                        .unwrap_or_else(|_| Schema::standard().clone()),
                );
                let data = match self.restored.lock().remove(&env.id) {
                    Some(saved) => EnvData::from_snapshot(schema, saved),
                    None => EnvData::new(schema, env.id, &env.unique_name),
                };
                Arc::new(RwLock::new(data))
            })
            .clone()
    }

    /// Rows saved by an earlier run, used when each environment is first
    /// touched.
    pub(crate) fn restore(&self, saved: HashMap<Uuid, store::Snapshot>) {
        *self.restored.lock() = saved;
    }

    /// Every environment's rows, for the rows file (those restored but not
    /// touched yet as they were loaded).
    pub(crate) fn snapshots(&self) -> HashMap<Uuid, store::Snapshot> {
        let mut out = self.restored.lock().clone();
        let envs: Vec<(Uuid, Arc<RwLock<EnvData>>)> = self
            .envs
            .lock()
            .iter()
            .map(|(id, d)| (*id, d.clone()))
            .collect();
        for (id, data) in envs {
            out.insert(id, data.read().saved());
        }
        out
    }

    /// Notes that rows may have changed.
    pub(crate) fn mark_dirty(&self) {
        self.dirty.store(true, std::sync::atomic::Ordering::Release);
    }

    /// Whether rows changed since the last call.
    pub(crate) fn take_dirty(&self) -> bool {
        self.dirty.swap(false, std::sync::atomic::Ordering::AcqRel)
    }
}
