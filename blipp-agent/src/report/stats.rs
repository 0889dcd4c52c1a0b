//! What the UNIS/MS sink has done so far, for the `agent` probe: requests
//! to UNIS and to the MS, failed deliveries and polls, bytes sent, and what
//! waits (spooled bytes, samples in memory, since when). The sink runs in
//! its own task and the agent probe in another, and there is one sink per
//! process: process-wide counters, written by the sink after each step,
//! read by the probe at each collection. An operator sees a backlog grow
//! before it turns into loss.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The sink's counters (cumulative) and gauges.
#[derive(Debug)]
pub struct SinkStats {
    active: AtomicBool,
    unis_requests: AtomicU64,
    ms_requests: AtomicU64,
    failures: AtomicU64,
    bytes_sent: AtomicU64,
    spooled_bytes: AtomicU64,
    memory_samples: AtomicU64,
    /// When the oldest sample still waiting started waiting, µs since the
    /// epoch; 0 when nothing waits.
    waiting_since_us: AtomicU64,
}

/// The process's sink.
pub static SINK: SinkStats = SinkStats::new();

/// One reading of [`SinkStats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SinkReading {
    /// Requests to UNIS so far.
    pub unis_requests: u64,
    /// Requests to the MS so far.
    pub ms_requests: u64,
    /// Failed deliveries and UNIS polls so far.
    pub failures: u64,
    /// Request bytes sent to UNIS and the MS so far.
    pub bytes_sent: u64,
    /// Bytes in the disk spool.
    pub spooled_bytes: u64,
    /// Samples waiting in memory.
    pub memory_samples: u64,
    /// When the oldest waiting sample started waiting (µs), if any waits.
    pub waiting_since_us: Option<u64>,
}

/// What the sink reports after a step.
#[derive(Clone, Copy, Debug, Default)]
pub struct Progress {
    /// Requests to UNIS so far.
    pub unis_requests: u64,
    /// Requests to the MS so far.
    pub ms_requests: u64,
    /// Request bytes sent so far.
    pub bytes_sent: u64,
    /// Bytes in the disk spool.
    pub spooled_bytes: u64,
    /// Samples waiting in memory.
    pub memory_samples: u64,
}

impl SinkStats {
    /// Nothing counted, no sink yet.
    const fn new() -> Self {
        Self {
            active: AtomicBool::new(false),
            unis_requests: AtomicU64::new(0),
            ms_requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
            spooled_bytes: AtomicU64::new(0),
            memory_samples: AtomicU64::new(0),
            waiting_since_us: AtomicU64::new(0),
        }
    }

    /// The sink's progress after a step.
    pub fn update(&self, p: Progress) {
        self.active.store(true, Ordering::Relaxed);
        self.unis_requests.store(p.unis_requests, Ordering::Relaxed);
        self.ms_requests.store(p.ms_requests, Ordering::Relaxed);
        self.bytes_sent.store(p.bytes_sent, Ordering::Relaxed);
        self.spooled_bytes.store(p.spooled_bytes, Ordering::Relaxed);
        self.memory_samples
            .store(p.memory_samples, Ordering::Relaxed);
        if p.spooled_bytes == 0 && p.memory_samples == 0 {
            self.waiting_since_us.store(0, Ordering::Relaxed);
        } else {
            let now = crate::sample::Timestamp::now().0;
            // Only the first step that left something waiting sets it.
            let _ = self.waiting_since_us.compare_exchange(
                0,
                now,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }

    /// A delivery or poll failed.
    pub fn failed(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters now; `None` while no sink runs.
    pub fn read(&self) -> Option<SinkReading> {
        if !self.active.load(Ordering::Relaxed) {
            return None;
        }
        let since = self.waiting_since_us.load(Ordering::Relaxed);
        Some(SinkReading {
            unis_requests: self.unis_requests.load(Ordering::Relaxed),
            ms_requests: self.ms_requests.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            bytes_sent: self.bytes_sent.load(Ordering::Relaxed),
            spooled_bytes: self.spooled_bytes.load(Ordering::Relaxed),
            memory_samples: self.memory_samples.load(Ordering::Relaxed),
            waiting_since_us: (since != 0).then_some(since),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiting_since_the_first_step_that_left_something() {
        let s = SinkStats::new();
        assert_eq!(s.read(), None, "no sink yet");
        s.update(Progress {
            memory_samples: 3,
            ..Progress::default()
        });
        let first = s.read().unwrap().waiting_since_us.unwrap();
        s.update(Progress {
            spooled_bytes: 10,
            ..Progress::default()
        });
        assert_eq!(s.read().unwrap().waiting_since_us, Some(first));
        s.failed();
        s.update(Progress::default());
        let r = s.read().unwrap();
        assert_eq!((r.waiting_since_us, r.failures), (None, 1));
    }
}
