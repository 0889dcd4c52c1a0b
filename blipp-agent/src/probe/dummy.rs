//! The original BLiPP's test probe, kept so that its test configurations
//! (the adaptive scheduler's) run: each collection occupies `duration`
//! seconds (`schedule_params.duration`, as the original read it, so that
//! `adaptive.simple_avoid` has runs of a real length to plan around) and
//! then reports `ps:testing:dummy` = 1 for the node. The 1 is measured,
//! not made up: it counts the run that just completed its wait. The wait
//! happens on the blocking pool (see [`Probe::blocks`]), so it never holds
//! up other probes.

use std::time::Duration;

use super::{BuildContext, Built, Fallback, Probe, ProbeError, ProbeSpec, Reach};
use crate::config::ProbeConfig;
use crate::limits::MAX_DUMMY_DURATION;
use crate::sample::{Name, Sample, Source, Timestamp, Value};
use crate::schedule::ScheduleSpec;

/// The event type the original used.
pub const EVENT_TYPE: &str = "ps:testing:dummy";

/// Registry row.
pub const SPEC: ProbeSpec = ProbeSpec {
    module: "dummy",
    summary: "the original's test probe: waits schedule_params.duration seconds, then reports 1 (one completed run)",
    fallback: Fallback::Only(Source::Proc),
    programs: &[],
    reach: Reach::NONE,
    build,
    options: crate::config::option_keys::<super::NoOptions>,
};

struct Dummy {
    wait: Duration,
    node: Name,
    event_type: Name,
}

/// `duration` of the probe's schedule, or of its `schedule_params` under
/// any other schedule, as the original read it whatever the schedule.
fn wait_of(config: &ProbeConfig) -> Duration {
    if let ScheduleSpec::Avoid(a) = &config.schedule {
        return a.duration;
    }
    let secs = config
        .raw
        .pointer("/schedule_params/duration")
        .and_then(serde_json::Value::as_f64)
        .filter(|s| s.is_finite() && *s > 0.0)
        .unwrap_or(0.0);
    Duration::from_secs_f64(secs.min(MAX_DUMMY_DURATION))
}

fn build(config: &ProbeConfig, ctx: &mut BuildContext<'_>) -> Result<Built, ProbeError> {
    Ok(Built {
        probe: Box::new(Dummy {
            wait: wait_of(config),
            node: ctx.node.clone(),
            event_type: Name::from(EVENT_TYPE),
        }),
        source: Source::Proc,
    })
}

impl Probe for Dummy {
    fn collect(&mut self, ts: Timestamp, out: &mut Vec<Sample>) -> Result<(), ProbeError> {
        std::thread::sleep(self.wait);
        out.push(Sample::new(
            ts,
            &self.node,
            &self.event_type,
            Value::Int(1),
            Source::Proc,
        ));
        Ok(())
    }

    fn blocks(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::testing;
    use serde_json::json;
    use std::time::Instant;

    #[test]
    fn reports_one_run_after_waiting_its_duration() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = testing::build(
            "dummy",
            &json!({"collection_schedule": "adaptive.simple_avoid",
                    "schedule_params": {"every": 60, "duration": 0.2, "num_to_schedule": 2, "max_wait": 1}}),
            dir.path(),
        );
        assert!(p.blocks(), "its wait must not hold a runtime worker");
        let started = Instant::now();
        let out = testing::collect(p.as_mut(), 0.0);
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].event_type.as_ref(), EVENT_TYPE);
        assert_eq!(out[0].value, Value::Int(1));
    }

    #[test]
    fn without_a_duration_it_reports_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = testing::build("dummy", &json!({}), dir.path());
        let started = Instant::now();
        assert_eq!(testing::collect(p.as_mut(), 0.0).len(), 1);
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
