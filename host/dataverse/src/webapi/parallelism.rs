//! A concurrency limit that follows the server's `x-ms-dop-hint` (the
//! degree of parallelism Dataverse recommends), never above a hard cap.

use tokio::sync::{Semaphore, SemaphorePermit};

/// Hard bounds of the limit, whatever the server says.
const MIN: usize = 1;
const MAX: usize = 64;

/// The limit: a semaphore whose size moves with the hint. Shrinking cannot
/// take back permits that are in use, so what could not be removed at once
/// is owed and removed as those permits come back.
#[derive(Debug)]
pub(crate) struct Parallelism {
    semaphore: Semaphore,
    state: parking_lot::Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// The limit wanted.
    limit: usize,
    /// Permits still to remove when they are released.
    owed: usize,
}

/// A slot; returned to the semaphore on drop unless a shrink is owed.
pub(crate) struct Slot<'a> {
    permit: Option<SemaphorePermit<'a>>,
    owner: &'a Parallelism,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let Some(permit) = self.permit.take() else {
            return;
        };
        let mut state = self.owner.state.lock();
        if state.owed > 0 {
            state.owed -= 1;
            permit.forget();
        }
    }
}

impl Parallelism {
    pub(crate) fn new(initial: usize) -> Parallelism {
        let initial = initial.clamp(MIN, MAX);
        Parallelism {
            semaphore: Semaphore::new(initial),
            state: parking_lot::Mutex::new(State {
                limit: initial,
                owed: 0,
            }),
        }
    }

    /// The current limit.
    pub(crate) fn limit(&self) -> usize {
        self.state.lock().limit
    }

    pub(crate) async fn acquire(&self) -> Slot<'_> {
        let permit = self
            .semaphore
            .acquire()
            .await
            .expect("the semaphore is never closed");
        Slot {
            permit: Some(permit),
            owner: self,
        }
    }

    /// Moves the limit to the server's hint, clamped to 1..=64.
    pub(crate) fn follow(&self, hint: usize) {
        let hint = hint.clamp(MIN, MAX);
        let mut state = self.state.lock();
        if hint > state.limit {
            // Cancel debts first; only then hand out new permits.
            let mut grow = hint - state.limit;
            let cancelled = grow.min(state.owed);
            state.owed -= cancelled;
            grow -= cancelled;
            self.semaphore.add_permits(grow);
        } else if hint < state.limit {
            let shrink = state.limit - hint;
            let removed = self.semaphore.forget_permits(shrink);
            state.owed += shrink - removed;
        }
        state.limit = hint;
    }

    /// Permits that exist now (free or in use), for tests.
    #[cfg(test)]
    fn capacity(&self, in_use: usize) -> usize {
        self.semaphore.available_permits() + in_use - self.state.lock().owed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_oscillating_hint_never_raises_concurrency_above_the_limit() {
        let p = Parallelism::new(8);
        let mut held = Vec::new();
        for _ in 0..8 {
            held.push(p.acquire().await);
        }
        // All eight in use: a shrink to 2 can remove nothing now.
        p.follow(2);
        p.follow(8);
        p.follow(2);
        assert_eq!(p.limit(), 2);
        assert_eq!(p.capacity(held.len()), 2);
        assert_eq!(p.semaphore.available_permits(), 0);
        // As slots come back, the debt is paid before anything is freed.
        held.truncate(1);
        assert_eq!(p.semaphore.available_permits(), 1);
        held.clear();
        assert_eq!(p.semaphore.available_permits(), 2);
        p.follow(1000);
        assert_eq!(p.semaphore.available_permits(), MAX);
        p.follow(0);
        assert_eq!(p.semaphore.available_permits(), MIN);
    }
}
