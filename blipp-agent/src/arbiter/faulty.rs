//! The probes a configuration wants that could not be built: each fault
//! is kept for `status` and the `agent` probe and logged once; a probe
//! whose configuration is at fault waits for a new configuration, one
//! whose environment failed is built again with back-off (see
//! [`super::retry`]).

use super::RunLength;
use super::supervisor::{Supervisor, failure};
use crate::config::ProbeConfig;
use crate::control::protocol::Failure;
use crate::probe::Fault;
use crate::sample::{Name, Timestamp};

impl Supervisor {
    /// Keeps `fault`, which building `p` gave, for `status` and the
    /// `agent` probe, and says so once: a probe whose environment failed
    /// is tried again later (but not in a `--once` run). Returns what a
    /// control-socket client is told.
    pub(super) fn fault(&mut self, p: &ProbeConfig, fault: Fault) -> Failure {
        let refused = failure(p, &fault);
        let retry = !fault.is_config() && self.options.length != RunLength::Once;
        if retry {
            let again = self.retries.get(&p.name).is_some();
            let wait = self
                .retries
                .failed(p, refused.error.clone(), tokio::time::Instant::now());
            if again {
                tracing::debug!(probe = %p.name, error = %fault, retry_in = ?wait, "probe still not built");
            } else {
                tracing::warn!(probe = %p.name, error = %fault, retry_in = ?wait, "probe not started: what it needs from the host failed; trying again with back-off");
            }
            self.failed.remove(&p.name);
        } else {
            self.retries.remove(&p.name);
            tracing::error!(probe = %p.name, error = %fault, "probe not started");
            self.failed
                .insert(p.name.clone(), (p.clone(), refused.error.clone()));
        }
        self.publish_failed();
        refused
    }

    /// Whether `p`, as configured, is known not to build: building it
    /// again gives the same fault (its configuration), or waits for its
    /// next attempt (its environment).
    pub(super) fn known_fault(&self, p: &ProbeConfig) -> bool {
        self.failed.get(&p.name).is_some_and(|(c, _)| c == p)
            || self.retries.get(&p.name).is_some_and(|r| r.config == *p)
    }

    /// Builds `p`, which is not running, now (`blippcmd probe start`),
    /// and starts it; its fault is kept and returned when it still
    /// cannot be built.
    pub(super) fn build_again(&mut self, p: &ProbeConfig) -> Result<(), Failure> {
        match self.build(p) {
            Ok(built) => {
                self.spawn(p.clone(), built, Timestamp::now());
                self.publish_failed();
                Ok(())
            }
            Err(fault) => Err(self.fault(p, fault)),
        }
    }

    /// Tells the `agent` probe which probes the configuration wants and
    /// cannot run.
    pub(super) fn publish_failed(&self) {
        let names = self
            .failed
            .keys()
            .map(String::as_str)
            .chain(self.retries.names())
            .map(|n| Name::from(format!("probe:{n}")))
            .collect();
        self.builder.costs().set_failed(names);
    }

    /// Builds the probes whose next attempt is due, and starts those that
    /// can now be built.
    pub(super) fn retry_due(&mut self) {
        let now = tokio::time::Instant::now();
        for p in self.retries.due(now) {
            match self.build(&p) {
                Ok(built) => {
                    let attempts = self.retries.remove(&p.name).map_or(0, |r| r.attempts);
                    tracing::info!(probe = %p.name, failed_attempts = attempts, "probe built at last");
                    self.spawn(p, built, Timestamp::now());
                }
                Err(fault) => {
                    self.fault(&p, fault);
                }
            }
        }
        self.publish_failed();
    }
}
