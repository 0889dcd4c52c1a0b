//! Probes whose environment failed when they were built (a sysfs file
//! they need could not be read, eBPF was refused), tried again with
//! exponential back-off rather than given up: the host may come right (a
//! file system mounted late, a node brought online), and a host whose
//! blippd exited on it would lose every other probe too.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::ProbeConfig;

/// The wait before the first new attempt.
pub(super) const FIRST: Duration = Duration::from_secs(1);
/// The longest wait between attempts: a probe that comes right is running
/// again within five minutes.
pub(super) const LONGEST: Duration = Duration::from_secs(300);

/// One probe waiting for its next attempt.
#[derive(Debug)]
pub(super) struct Retry {
    /// The configuration it is built from.
    pub(super) config: ProbeConfig,
    /// Failed attempts so far.
    pub(super) attempts: u32,
    /// The wait before the next attempt.
    delay: Duration,
    /// When the next attempt is due.
    pub(super) at: Instant,
    /// Why the last attempt failed.
    pub(super) error: String,
}

/// Every probe waiting to be built again, by name.
#[derive(Debug, Default)]
pub(super) struct Retries(BTreeMap<String, Retry>);

impl Retries {
    /// Records that building `config` failed at `now` with `error`, and
    /// returns the wait before the next attempt: [`FIRST`] for a probe
    /// not waiting yet (or waiting with another configuration), else
    /// twice the last wait, up to [`LONGEST`].
    pub(super) fn failed(&mut self, config: &ProbeConfig, error: String, now: Instant) -> Duration {
        let r = match self.0.get_mut(&config.name) {
            Some(r) if r.config == *config => {
                r.attempts += 1;
                r.delay = (r.delay * 2).min(LONGEST);
                r
            }
            _ => {
                self.0.insert(
                    config.name.clone(),
                    Retry {
                        config: config.clone(),
                        attempts: 1,
                        delay: FIRST,
                        at: now,
                        error: String::new(),
                    },
                );
                self.0.get_mut(&config.name).expect("just inserted")
            }
        };
        r.at = now + r.delay;
        r.error = error;
        r.delay
    }

    /// When the next attempt of any probe is due.
    pub(super) fn next_at(&self) -> Option<Instant> {
        self.0.values().map(|r| r.at).min()
    }

    /// The configurations whose attempt is due at `now`.
    pub(super) fn due(&self, now: Instant) -> Vec<ProbeConfig> {
        self.0
            .values()
            .filter(|r| r.at <= now)
            .map(|r| r.config.clone())
            .collect()
    }

    /// Probe `name`'s record, while it waits.
    pub(super) fn get(&self, name: &str) -> Option<&Retry> {
        self.0.get(name)
    }

    /// Stops waiting for `name` (built, or no longer wanted as it was).
    pub(super) fn remove(&mut self, name: &str) -> Option<Retry> {
        self.0.remove(name)
    }

    /// Keeps only the probes `keep` says yes to.
    pub(super) fn retain(&mut self, mut keep: impl FnMut(&ProbeConfig) -> bool) {
        self.0.retain(|_, r| keep(&r.config));
    }

    /// The names of the probes waiting.
    pub(super) fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// Whether no probe waits.
    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(name: &str, every: f64) -> ProbeConfig {
        let doc = serde_json::json!({"properties": {"configurations": {"probes": {
            name: {"probe_module": "numa", "schedule_params": {"every": every}}}}}});
        crate::config::resolve(doc).unwrap().probes.remove(0)
    }

    #[test]
    fn waits_double_from_one_second_to_five_minutes() {
        let mut r = Retries::default();
        let numa = probe("numa", 5.0);
        let t0 = Instant::now();
        let mut now = t0;
        let mut waits = Vec::new();
        for _ in 0..12 {
            let wait = r.failed(&numa, "unreadable".into(), now);
            waits.push(wait.as_secs());
            assert_eq!(r.next_at(), Some(now + wait));
            assert!(r.due(now).is_empty(), "not before its time");
            now += wait;
            assert_eq!(r.due(now), std::slice::from_ref(&numa));
        }
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        assert_eq!(r.get("numa").unwrap().attempts, 12);
        // Another configuration of the same probe starts over.
        assert_eq!(r.failed(&probe("numa", 1.0), "x".into(), now), FIRST);
        assert_eq!(r.get("numa").unwrap().attempts, 1);
        r.retain(|p| p.name != "numa");
        assert!(r.is_empty() && r.next_at().is_none());
    }
}
