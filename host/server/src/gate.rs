//! Per-tenant admission: a rate limit, a concurrency limit and a bounded
//! queue. A call past the rate, or arriving when the queue is full, or
//! still queued at its deadline, gets 429 with `Retry-After` at once rather
//! than piling up on the engine's instance pool; so one tenant's flood
//! waits in its own queue and leaves other tenants' calls alone.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use axum::http::StatusCode;
use dvhost_store::TenantId;
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::TenantLimits;
use crate::error::ApiError;

/// Every tenant's gate, made on first use.
pub(crate) struct Gates {
    limits: TenantLimits,
    gates: Mutex<HashMap<TenantId, Arc<Gate>>>,
}

struct Gate {
    running: Arc<Semaphore>,
    waiting: AtomicU32,
    rate: DefaultDirectRateLimiter,
}

/// A running slot of a tenant, given back when dropped.
pub(crate) struct Permit {
    _running: OwnedSemaphorePermit,
}

fn busy(message: String, seconds: u64) -> ApiError {
    ApiError::new(StatusCode::TOO_MANY_REQUESTS, "tenant_busy", message).retry_after(seconds)
}

impl Gates {
    pub(crate) fn new(limits: TenantLimits) -> Gates {
        Gates {
            limits,
            gates: Mutex::new(HashMap::new()),
        }
    }

    fn gate(&self, tenant: TenantId) -> Arc<Gate> {
        let limits = self.limits;
        self.gates
            .lock()
            .entry(tenant)
            .or_insert_with(|| {
                let rate = NonZeroU32::new(limits.rate_per_second).unwrap_or(NonZeroU32::MIN);
                let burst = NonZeroU32::new(limits.burst).unwrap_or(rate);
                Arc::new(Gate {
                    running: Arc::new(Semaphore::new(limits.concurrency.max(1) as usize)),
                    waiting: AtomicU32::new(0),
                    rate: RateLimiter::direct(Quota::per_second(rate).allow_burst(burst)),
                })
            })
            .clone()
    }

    /// Admits one call of `tenant`, waiting in its queue until `deadline` at
    /// most.
    pub(crate) async fn enter(
        &self,
        tenant: TenantId,
        deadline: Instant,
    ) -> Result<Permit, ApiError> {
        let gate = self.gate(tenant);
        if let Err(not_until) = gate.rate.check() {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            return Err(busy(
                format!(
                    "the tenant's rate of {} calls per second is used up",
                    self.limits.rate_per_second
                ),
                wait.as_secs_f64().ceil() as u64,
            ));
        }
        if let Ok(permit) = gate.running.clone().try_acquire_owned() {
            return Ok(Permit { _running: permit });
        }
        if gate.waiting.fetch_add(1, Ordering::AcqRel) >= self.limits.queue {
            gate.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(busy(
                format!(
                    "the tenant has {} calls running and {} waiting; try again shortly",
                    self.limits.concurrency, self.limits.queue
                ),
                1,
            ));
        }
        let acquired =
            tokio::time::timeout_at(deadline.into(), gate.running.clone().acquire_owned()).await;
        gate.waiting.fetch_sub(1, Ordering::AcqRel);
        match acquired {
            Ok(Ok(permit)) => Ok(Permit { _running: permit }),
            _ => Err(busy(
                "the call waited in the tenant's queue until its deadline".into(),
                1,
            )),
        }
    }
}
