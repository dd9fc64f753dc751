//! What the machine was doing while a benchmark ran, printed beside its
//! figures: these machines are shared virtual machines, and a figure taken
//! while the hypervisor gave the two cores to someone else is not
//! comparable with one taken on a quiet machine.

use procfs::{CpuTime, CurrentSI, KernelStats};

/// The kernel's CPU time counters (`/proc/stat`, all CPUs) at one moment.
pub struct CpuCounters(CpuTime);

impl CpuCounters {
    /// The counters now; `None` where `/proc/stat` cannot be read.
    pub fn now() -> Option<CpuCounters> {
        KernelStats::current().ok().map(|k| CpuCounters(k.total))
    }

    /// Of all CPU time since `self`, the share the hypervisor gave to other
    /// guests (`steal`). `None` when no time has passed or the kernel does
    /// not count steal time.
    pub fn stolen_since(&self) -> Option<f64> {
        let now = CpuCounters::now()?;
        let stolen = now.0.steal?.checked_sub(self.0.steal?)?;
        let total = ticks(&now.0).checked_sub(ticks(&self.0))?;
        (total > 0).then(|| stolen as f64 / total as f64)
    }
}

/// Every kind of CPU time the kernel counts (guest time is already part of
/// user time).
fn ticks(t: &CpuTime) -> u64 {
    t.user
        + t.nice
        + t.system
        + t.idle
        + t.iowait.unwrap_or(0)
        + t.irq.unwrap_or(0)
        + t.softirq.unwrap_or(0)
        + t.steal.unwrap_or(0)
}

/// The 1, 5 and 15 minute load averages, as `/proc/loadavg` shows them.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// `stolen_since` as a sentence for a benchmark's output.
pub fn stolen_text(since: Option<&CpuCounters>) -> String {
    match since.and_then(CpuCounters::stolen_since) {
        Some(share) => format!("{:.1}% of CPU time stolen by the hypervisor", share * 100.0),
        None => "steal time unknown".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steal_is_a_share_of_the_time_that_passed() {
        let Some(start) = CpuCounters::now() else {
            return; // not Linux
        };
        // Burn a little CPU so the counters move.
        let mut x = 0u64;
        let until = std::time::Instant::now() + std::time::Duration::from_millis(50);
        while std::time::Instant::now() < until {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        if let Some(share) = start.stolen_since() {
            assert!((0.0..=1.0).contains(&share), "{share}");
        }
        assert!(ticks(&CpuCounters::now().unwrap().0) > ticks(&start.0));
    }
}
