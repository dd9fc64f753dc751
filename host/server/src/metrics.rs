//! Prometheus metrics through the `metrics` facade. The recorder is
//! process-wide (installed once, however many servers a test starts); the
//! names are what `/metrics` shows:
//!
//! - `dvhost_invocations_total{outcome}`: action calls by outcome (`ok` or
//!   the error code of the answer).
//! - `dvhost_invocation_duration_seconds`: their wall time, instantiation
//!   included (a summary with quantiles).
//! - `dvhost_invocations_prepared_total`: those that ran in an instance
//!   prepared ahead, after the plugin's previous call, rather than one
//!   instantiated on their way.
//! - `dvhost_dataverse_calls_total{interface,operation,outcome}`: calls
//!   plugins made through their imports.
//! - `dvhost_dataverse_throttled_total`: those Dataverse answered with 429.
//! - `dvhost_dataverse_retries_total`: repeats the transport's retry policy
//!   made for them.
//! - `dvhost_instances_running`: plugin instances running now.
//! - `dvhost_http_requests_total{status}`: every HTTP answer by status.
//! - `dvhost_token_renewals_total{outcome}`: access tokens the transport
//!   fetched for connections (counted inside `dvhost-dataverse`).

use std::sync::OnceLock;

use dvhost_runtime::{CallOutcome, Report};
use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// How often histogram samples are folded into their summaries.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// The process's recorder, installed on first use.
pub(crate) fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("another metrics recorder is installed; /metrics will be empty");
        }
        // Histogram samples pile up until upkeep drains them; without a
        // scraper calling `/metrics`, nothing else would.
        let upkeep = handle.clone();
        let spawned = std::thread::Builder::new()
            .name("dvhost-metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(UPKEEP_EVERY);
                    upkeep.run_upkeep();
                }
            });
        if let Err(error) = spawned {
            tracing::warn!(%error, "cannot start the metrics upkeep thread");
        }
        handle
    })
}

/// Counts a plugin instance as running until dropped.
pub(crate) struct Running;

pub(crate) fn running() -> Running {
    gauge!("dvhost_instances_running").increment(1.0);
    Running
}

impl Drop for Running {
    fn drop(&mut self) {
        gauge!("dvhost_instances_running").decrement(1.0);
    }
}

/// Records one action call and the Dataverse calls it made.
pub(crate) fn invocation(report: &Report, error: Option<&'static str>) {
    counter!("dvhost_invocations_total", "outcome" => error.unwrap_or("ok")).increment(1);
    histogram!("dvhost_invocation_duration_seconds").record(report.duration.as_secs_f64());
    if report.prepared {
        counter!("dvhost_invocations_prepared_total").increment(1);
    }
    for call in &report.calls {
        let outcome = match &call.outcome {
            CallOutcome::Ok => "ok",
            CallOutcome::Dataverse { status: 429, .. } => {
                counter!("dvhost_dataverse_throttled_total").increment(1);
                "throttled"
            }
            CallOutcome::Dataverse { .. } => "dataverse_error",
            CallOutcome::NotGranted => "not_granted",
            CallOutcome::Quota => "quota",
            CallOutcome::InvalidInput => "invalid_input",
            CallOutcome::Deadline => "deadline",
            CallOutcome::Unavailable => "unavailable",
        };
        let interface = match call.interface {
            dvhost_runtime::Interface::Records => "records",
            dvhost_runtime::Interface::Metadata => "metadata",
        };
        counter!("dvhost_dataverse_calls_total", "interface" => interface, "operation" => call.operation, "outcome" => outcome).increment(1);
        if call.retries > 0 {
            counter!("dvhost_dataverse_retries_total").increment(u64::from(call.retries));
        }
    }
}

/// Records one HTTP answer.
pub(crate) fn http_answer(status: u16) {
    counter!("dvhost_http_requests_total", "status" => status.to_string()).increment(1);
}
