//! A loaded plugin: a component checked against the `plugin` world,
//! compiled once (or loaded from the artifact cache), prepared as an
//! `InstancePre`, and described. Each call gets a fresh `Store` from the
//! pool, an epoch deadline, a memory cap and its own handle table.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;
use wasmtime::{Store, Trap, UpdateDeadline};

use crate::audit::CallRecord;
use crate::backend::{Metadata, Records, Unconnected};
use crate::bindings::{self, actions};
use crate::cache;
use crate::calls::DataverseState;
use crate::engine::Engine;
use crate::error::{InvokeError, LoadError};
use crate::grants::Grants;
use crate::invocation::{Invocation, Limiter};
use crate::limits::PluginLimits;
use crate::log::{LogBook, LogLine, Source};
use crate::warm::{self, Attempt, Permit, Prepared};
use crate::wasi;

/// What one call may use.
#[derive(Clone)]
pub struct Capabilities {
    /// Row operations of the plugin's connection.
    pub records: Arc<dyn Records>,
    /// Metadata of the plugin's connection.
    pub metadata: Arc<dyn Metadata>,
    /// Tables × operations the plugin may use.
    pub grants: Arc<Grants>,
    /// Its limits.
    pub limits: PluginLimits,
    /// A host directory the guest sees as `/scratch`, when granted.
    pub scratch_dir: Option<PathBuf>,
}

impl Capabilities {
    /// No connection, no grants, default limits.
    pub fn unconnected() -> Capabilities {
        Capabilities {
            records: Arc::new(Unconnected),
            metadata: Arc::new(Unconnected),
            grants: Arc::new(Grants::none()),
            limits: PluginLimits::default(),
            scratch_dir: None,
        }
    }
}

/// One action, as the plugin describes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActionInfo {
    /// Name, used in URLs.
    pub name: String,
    /// What it does.
    pub description: String,
    /// JSON Schema of its input.
    pub input_schema: Value,
    /// JSON Schema of its output.
    pub output_schema: Value,
}

/// Everything about one call.
#[derive(Debug)]
pub struct Report {
    /// The action's output (JSON text), or why there is none.
    pub output: Result<String, InvokeError>,
    /// Every Dataverse call the guest made, granted or not.
    pub calls: Vec<CallRecord>,
    /// Log lines and captured stdout/stderr, up to the log budget.
    pub log: Vec<LogLine>,
    /// Log bytes beyond the budget, dropped.
    pub log_dropped_bytes: u64,
    /// Wall time of the call, instantiation included when the call
    /// instantiated (not when it found an instance [`prepared`](Report::prepared)).
    pub duration: Duration,
    /// Whether the call ran in an instance prepared after an earlier call
    /// (fresh all the same: no call ran in it before), rather than one
    /// instantiated on its way.
    pub prepared: bool,
}

/// What [`Plugin::describe_recorded`] answered.
pub struct Described {
    /// The plugin with its new action list, or why it could not be
    /// described.
    pub plugin: Result<Plugin, LoadError>,
    /// Every Dataverse call the guest's `describe` made.
    pub calls: Vec<CallRecord>,
}

/// A plugin ready to run. Cheap to clone.
#[derive(Clone)]
pub struct Plugin {
    engine: Engine,
    pub(crate) pre: bindings::PluginPre<Invocation>,
    hash: Arc<str>,
    actions: Arc<[ActionInfo]>,
    from_cache: bool,
    warm: Arc<warm::Key>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("hash", &self.hash)
            .field("actions", &self.actions.len())
            .finish()
    }
}

/// Magic and layer bytes: `\0asm`, then version 1 layer 0 for a core
/// module, version 13 layer 1 for a component.
fn check_kind(bytes: &[u8]) -> Result<(), LoadError> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(LoadError::NotWasm);
    }
    if bytes[4..8] == [1, 0, 0, 0] {
        return Err(LoadError::CoreModule);
    }
    Ok(())
}

/// Action names travel in URL paths: plain ASCII words.
fn valid_action_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

fn action_info(a: actions::ActionInfo) -> Result<ActionInfo, LoadError> {
    if !valid_action_name(&a.name) {
        return Err(LoadError::Describe(format!(
            "action name '{}' is not 1 to 100 letters, digits, '-', '_' or '.'",
            a.name.chars().take(100).collect::<String>()
        )));
    }
    let schema = |text: &str, which: &str| -> Result<Value, LoadError> {
        match serde_json::from_str::<Value>(text) {
            Ok(v @ (Value::Object(_) | Value::Bool(_))) => Ok(v),
            Ok(_) => Err(LoadError::Describe(format!(
                "the {which} schema of '{}' is not a JSON Schema object",
                a.name
            ))),
            Err(e) => Err(LoadError::Describe(format!(
                "the {which} schema of '{}' is not JSON: {e}",
                a.name
            ))),
        }
    };
    Ok(ActionInfo {
        input_schema: schema(&a.input_schema, "input")?,
        output_schema: schema(&a.output_schema, "output")?,
        name: a.name,
        description: a.description,
    })
}

impl Engine {
    /// Checks, compiles (or loads from the cache), links and describes a
    /// component.
    pub async fn load(&self, bytes: &[u8]) -> Result<Plugin, LoadError> {
        check_kind(bytes)?;
        let hash = cache::content_hash(bytes);
        let (component, from_cache) = {
            let engine = self.wasmtime().clone();
            let bytes = bytes.to_vec();
            let dir = self.cache_dir().map(|d| d.to_path_buf());
            let hash = hash.clone();
            tokio::task::spawn_blocking(move || {
                cache::compile(&engine, &bytes, &hash, dir.as_deref())
            })
            .await
            .map_err(|e| LoadError::Invalid(format!("compilation stopped: {e}")))??
        };
        let instance_pre = self
            .linker()
            .instantiate_pre(&component)
            .map_err(|e| LoadError::Incompatible(format!("{e:#}")))?;
        let pre = bindings::PluginPre::new(instance_pre)
            .map_err(|e| LoadError::Incompatible(format!("{e:#}")))?;
        let plugin = Plugin {
            engine: self.clone(),
            pre,
            hash: hash.into(),
            actions: Arc::from(Vec::new()),
            from_cache,
            warm: self.prepared().key(),
        };
        plugin.describe_with(&Capabilities::unconnected()).await
    }
}

impl Plugin {
    /// The actions the plugin offers.
    pub fn actions(&self) -> &[ActionInfo] {
        &self.actions
    }

    /// Whether an instance is prepared for this plugin's next call (see
    /// [`Report::prepared`]).
    pub fn prepared(&self) -> bool {
        self.warm.ready() > 0
    }

    /// How many instances are prepared for this plugin's next calls (at
    /// most two).
    pub fn prepared_instances(&self) -> usize {
        self.warm.ready()
    }

    /// One action by name.
    pub fn action(&self, name: &str) -> Option<&ActionInfo> {
        self.actions.iter().find(|a| a.name == name)
    }

    /// SHA-256 of the component, in hex.
    pub fn content_hash(&self) -> &str {
        &self.hash
    }

    /// Whether the compiled code came from the disk cache.
    pub fn from_cache(&self) -> bool {
        self.from_cache
    }

    pub(crate) fn store(
        &self,
        caps: &Capabilities,
        deadline: Instant,
    ) -> Result<Store<Invocation>, InvokeError> {
        let book = LogBook::new(caps.limits.log_bytes);
        let wasi = wasi::context(&book, caps.scratch_dir.as_deref())
            .map_err(|e| InvokeError::Instantiate(e.to_string()))?;
        let invocation = Invocation {
            wasi,
            handles: Default::default(),
            limiter: Limiter::new(&caps.limits),
            dataverse: DataverseState::new(
                caps.grants.clone(),
                caps.records.clone(),
                caps.metadata.clone(),
                caps.limits,
                deadline,
            ),
            log: book,
        };
        let mut store = Store::new(self.engine.wasmtime(), invocation);
        store.limiter(|s| &mut s.limiter);
        arm(&mut store, deadline);
        Ok(store)
    }

    /// A prepared instance for a call under `caps`, with the call's grants,
    /// backends, quotas and deadline put in its store.
    fn take_prepared(&self, caps: &Capabilities, deadline: Instant) -> Option<Prepared> {
        // Noted first: an instance prepared from now on is for these.
        self.warm.want(caps);
        let mut prepared = self.warm.take(caps)?;
        prepared.store.data_mut().dataverse = DataverseState::new(
            caps.grants.clone(),
            caps.records.clone(),
            caps.metadata.clone(),
            caps.limits,
            deadline,
        );
        arm(&mut prepared.store, deadline);
        Some(prepared)
    }

    /// Ends a call: when the plugin's next instance is to be prepared (see
    /// `warm`), the store is dropped (its pool slot reset) and the next
    /// instance made in the background, off the caller's path; otherwise
    /// the store is dropped here.
    fn recycle(&self, store: Store<Invocation>, held: Option<Permit>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return drop(store);
        };
        let attempt = match self.warm.begin(held) {
            Ok(attempt) => attempt,
            Err(held) => {
                // The store (its pool slot) goes before its place.
                drop(store);
                return drop(held);
            }
        };
        let plugin = self.clone();
        runtime.spawn(async move {
            drop(store);
            plugin.prepare(attempt).await;
        });
    }

    /// Instantiates the plugin for its next calls, under the latest call's
    /// settings, one instance after another while the attempt wants more.
    async fn prepare(&self, mut attempt: Attempt) {
        loop {
            let Some((limits, scratch_dir)) = attempt.settings() else {
                return;
            };
            // No connection while preparing: instantiation needs none, and
            // one that calls an import is refused.
            let caps = Capabilities {
                limits,
                scratch_dir,
                ..Capabilities::unconnected()
            };
            let deadline = Instant::now() + caps.limits.deadline;
            // A scratch directory that cannot be opened now may open later.
            let Ok(mut store) = self.store(&caps, deadline) else {
                return;
            };
            let made =
                tokio::time::timeout_at(deadline.into(), self.pre.instantiate_async(&mut store))
                    .await;
            let lasting = match made {
                Ok(Ok(instance)) => {
                    if attempt.keep(store, instance, &caps) {
                        continue;
                    }
                    return;
                }
                // Past its deadline, or a trap in a start function: it would
                // fail again. Anything else (the pool full) may pass.
                Err(_) => true,
                Ok(Err(e)) => e.downcast_ref::<Trap>().is_some(),
            };
            // The store (its pool slot) goes before the attempt's place.
            drop(store);
            if lasting {
                attempt.refuse();
            }
            return;
        }
    }
}

/// Puts `deadline` on `store`.
fn arm(store: &mut Store<Invocation>, deadline: Instant) {
    // Every epoch tick the guest yields to the async executor, so a guest
    // computing for its whole deadline shares its worker thread with other
    // calls instead of holding it; at the deadline it traps.
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        if Instant::now() >= deadline {
            Err(Trap::Interrupt.into())
        } else {
            Ok(UpdateDeadline::Yield(1))
        }
    });
}

impl Plugin {
    /// Describes the plugin again, this time under `caps`: the guest's
    /// `describe` may call the `metadata` (and `records`) imports of a
    /// connection, within `caps`' grants, quotas and deadline, exactly as an
    /// invocation would. Returns a plugin sharing this one's compiled code
    /// (cheap: nothing is compiled or linked again) whose
    /// [`actions`](Plugin::actions) are the new answer.
    ///
    /// [`Engine::load`] describes with [`Capabilities::unconnected`]; a
    /// plugin whose actions depend on the environment (such as the
    /// generated table actions, `plugins/tables`) answers there with what it
    /// can without a connection, and gets its real action list from this
    /// call once it is bound to one. Call it again after the grants or the
    /// environment's tables change.
    ///
    /// The answer is checked as at load: action names, no action described
    /// twice, schemas that are JSON Schema objects (or booleans).
    ///
    /// # Errors
    ///
    /// [`LoadError::Describe`] when `describe` traps (a guest that fails to
    /// read metadata and panics says why on stderr, which the message
    /// carries), runs past `caps.limits.deadline`, runs out of memory, or
    /// answers something the checks above refuse.
    pub async fn describe_with(&self, caps: &Capabilities) -> Result<Plugin, LoadError> {
        self.describe_recorded(caps).await.plugin
    }

    /// [`Plugin::describe_with`], with the Dataverse calls the guest's
    /// `describe` made (granted or not, whether it then succeeded or not),
    /// for the audit log: they are calls the plugin made, like an
    /// invocation's.
    pub async fn describe_recorded(&self, caps: &Capabilities) -> Described {
        let deadline = Instant::now() + caps.limits.deadline;
        let mut store = match self.store(caps, deadline) {
            Ok(store) => store,
            Err(e) => {
                return Described {
                    plugin: Err(LoadError::Describe(e.to_string())),
                    calls: Vec::new(),
                };
            }
        };
        let actions = self.describe(&mut store, caps, deadline).await;
        let calls = store.into_data().dataverse.audit;
        Described {
            plugin: actions.map(|actions| Plugin {
                actions: actions.into(),
                ..self.clone()
            }),
            calls,
        }
    }

    async fn describe(
        &self,
        store: &mut Store<Invocation>,
        caps: &Capabilities,
        deadline: Instant,
    ) -> Result<Vec<ActionInfo>, LoadError> {
        let described = tokio::time::timeout_at(deadline.into(), async {
            let instance = self.pre.instantiate_async(&mut *store).await?;
            instance
                .dvhost_plugin_actions()
                .call_describe(&mut *store)
                .await
        })
        .await;
        let list = match described {
            Err(_) => return Err(LoadError::Describe("it ran past its deadline".into())),
            Ok(Err(e)) => {
                return Err(LoadError::Describe(
                    classify(e, store, &caps.limits).to_string(),
                ));
            }
            Ok(Ok(list)) => list,
        };
        let mut seen = std::collections::BTreeSet::new();
        let mut infos = Vec::with_capacity(list.len());
        for a in list {
            if !seen.insert(a.name.clone()) {
                return Err(LoadError::Describe(format!(
                    "action '{}' is described twice",
                    a.name
                )));
            }
            infos.push(action_info(a)?);
        }
        Ok(infos)
    }

    /// Runs action `name` on `input` (JSON text) with `caps`. Never panics:
    /// traps, limits and deadlines become [`InvokeError`]s in the report.
    pub async fn invoke(&self, caps: &Capabilities, name: &str, input: &str) -> Report {
        self.invoke_with(caps, name, input, |_| {}).await
    }

    /// [`Plugin::invoke`], then hands every linear memory of the guest to
    /// `inspect` (the engine must be `inspectable`).
    pub async fn invoke_inspecting(
        &self,
        caps: &Capabilities,
        name: &str,
        input: &str,
        mut inspect: impl FnMut(&[u8]),
    ) -> Report {
        self.invoke_with(caps, name, input, |store| {
            for instance in store.debug_all_instances() {
                let mut index = 0;
                while let Some(memory) = instance.debug_memory(&mut *store, index) {
                    inspect(memory.data(&*store));
                    index += 1;
                }
            }
        })
        .await
    }

    async fn invoke_with(
        &self,
        caps: &Capabilities,
        name: &str,
        input: &str,
        after: impl FnOnce(&mut Store<Invocation>),
    ) -> Report {
        let started = Instant::now();
        let deadline = started + caps.limits.deadline;
        let (mut store, ready, permit) = match self.take_prepared(caps, deadline) {
            Some(p) => (p.store, Some(p.instance), Some(p.permit)),
            None => match self.store(caps, deadline) {
                Ok(s) => (s, None, None),
                Err(e) => {
                    return Report {
                        output: Err(e),
                        calls: Vec::new(),
                        log: Vec::new(),
                        log_dropped_bytes: 0,
                        duration: started.elapsed(),
                        prepared: false,
                    };
                }
            },
        };
        let prepared = ready.is_some();
        let ran = tokio::time::timeout_at(deadline.into(), async {
            let instance = match ready {
                Some(instance) => instance,
                None => self
                    .pre
                    .instantiate_async(&mut store)
                    .await
                    .map_err(Failure::Instantiate)?,
            };
            instance
                .dvhost_plugin_actions()
                .call_invoke(&mut store, name, input)
                .await
                .map_err(Failure::Run)
        })
        .await;
        let output = match ran {
            Err(_) => Err(InvokeError::Deadline(caps.limits.deadline)),
            Ok(Err(Failure::Instantiate(e))) => Err(InvokeError::Instantiate(format!("{e:#}"))),
            Ok(Err(Failure::Run(e))) => Err(classify(e, &store, &caps.limits)),
            Ok(Ok(answer)) => action_output(answer, &caps.limits),
        };
        after(&mut store);
        let invocation = store.data_mut();
        let calls = std::mem::take(&mut invocation.dataverse.audit);
        let (log, log_dropped_bytes) = {
            let mut book = invocation.log.lock();
            (book.take_lines(), book.dropped_bytes)
        };
        self.recycle(store, permit);
        Report {
            output,
            calls,
            log,
            log_dropped_bytes,
            duration: started.elapsed(),
            prepared,
        }
    }
}

/// Frames of one function at the top of the stack that mark a runaway
/// recursion (wasmtime keeps the top 20 frames of a trap's backtrace).
const RECURSION_FRAMES: usize = 16;

/// Whether a trap happened under a deep run of one function. Rust and C
/// guests keep their stack in linear memory, so their runaway recursion
/// ends in an out-of-bounds access below address 0, not in wasmtime's
/// stack-overflow trap.
fn runaway_recursion(e: &wasmtime::Error) -> bool {
    let Some(trace) = e.downcast_ref::<wasmtime::WasmBacktrace>() else {
        return false;
    };
    let frames = trace.frames();
    frames.len() >= RECURSION_FRAMES
        && frames
            .iter()
            .all(|f| f.func_index() == frames[0].func_index())
}

/// The guest's answer to `invoke`, checked against the output limit.
pub(crate) fn action_output(
    answer: Result<String, actions::ActionError>,
    limits: &PluginLimits,
) -> Result<String, InvokeError> {
    match answer {
        Err(actions::ActionError::InvalidInput(m)) => Err(InvokeError::InvalidInput(m)),
        Err(actions::ActionError::UnknownAction(m)) => Err(InvokeError::UnknownAction(m)),
        Err(actions::ActionError::Failed(m)) => Err(InvokeError::Failed(m)),
        Ok(out) if out.len() > limits.output_bytes => Err(InvokeError::OutputTooLarge {
            size: out.len(),
            limit: limits.output_bytes,
        }),
        Ok(out) => Ok(out),
    }
}

enum Failure {
    Instantiate(wasmtime::Error),
    Run(wasmtime::Error),
}

/// Turns a failed call into the error callers see: limits by name, other
/// traps with wasmtime's message (and backtrace with function names) plus
/// the last lines the guest wrote to stderr, where a Rust panic lands.
pub(crate) fn classify(
    e: wasmtime::Error,
    store: &Store<Invocation>,
    limits: &PluginLimits,
) -> InvokeError {
    if let Some(wanted) = store.data().limiter.memory_refused {
        return InvokeError::MemoryLimit {
            wanted,
            limit: limits.memory_bytes,
        };
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => return InvokeError::Deadline(limits.deadline),
        Some(Trap::StackOverflow) => return InvokeError::StackOverflow,
        Some(Trap::MemoryOutOfBounds) if runaway_recursion(&e) => {
            return InvokeError::StackOverflow;
        }
        _ => {}
    }
    let mut message: String = format!("{e:?}").chars().take(4000).collect();
    let stderr: Vec<String> = store
        .data()
        .log
        .lock()
        .lines_from(Source::Stderr)
        .rev()
        .take(3)
        .map(str::to_owned)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    if !stderr.is_empty() {
        message.push_str("\nguest stderr: ");
        message.push_str(&stderr.join("\n"));
    }
    InvokeError::Trap(message)
}
