//! The agent's own cost: how long each probe's last collection took
//! (subject `probe:<name>`), which probes the configuration wants and
//! could not be built (`probe:<name>`'s `probe:failed`, 1, and the node's
//! `probes:failed`, their count) and, per eBPF program (subject
//! `ebpf:<program>`), its skipped runs and, with `ebpf_run_time`, its runs
//! and run time from the kernel's BPF run-time statistics; and, when blippd reports to UNIS, what the
//! UNIS/MS sink does (subject `node`): requests to UNIS and to the MS,
//! failed deliveries and polls, bytes sent (each per second over the
//! interval), bytes spooled, samples waiting in memory and how long the
//! oldest waiting sample has waited (seconds; 0 when nothing waits), so that
//! a backlog shows before it turns into loss. Event types start with
//! `ps:tools:blipp:agent:`.

use serde::Deserialize;

use super::cost::{CostBoard, CostTypes};
use super::{BuildContext, Built, Fallback, Probe, ProbeError, ProbeSpec, Reach};
use crate::config::{Config, ProbeConfig, Status};
use crate::report::stats::{SINK, SinkReading};
use crate::sample::{Name, Sample, Source, Timestamp, Value};

/// Reads one counter of a [`SinkReading`].
type Counter = fn(&SinkReading) -> u64;

/// The sink's rates, per second: (event type, counter).
const SINK_RATES: [(&str, Counter); 4] = [
    ("ps:tools:blipp:agent:unis:requests", |r| r.unis_requests),
    ("ps:tools:blipp:agent:ms:requests", |r| r.ms_requests),
    ("ps:tools:blipp:agent:sink:failures", |r| r.failures),
    ("ps:tools:blipp:agent:sink:bytes", |r| r.bytes_sent),
];

/// Registry row.
pub const SPEC: ProbeSpec = ProbeSpec {
    module: "agent",
    summary: "blippd's own cost: collection time per probe; runs and kernel run time per eBPF program (BPF run-time statistics)",
    fallback: Fallback::Only(Source::Proc),
    programs: &[],
    reach: Reach::NONE,
    build,
    options: crate::config::option_keys::<Options>,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    /// Turn the kernel's BPF run-time statistics on at start-up and publish
    /// each program's runs and run time (default false).
    ebpf_run_time: Option<bool>,
}

/// Whether a probe of `config` that is on publishes the eBPF programs' run
/// time: only then does blippd turn the kernel's run-time statistics on,
/// since they tax every BPF program on the host for as long as they are
/// on. Read once, when the programs are loaded: a later configuration
/// cannot turn them on (that needs `CAP_SYS_ADMIN`, dropped after start-up).
pub fn wants_run_time(config: &Config) -> bool {
    config.probes.iter().any(|p| {
        p.status == Status::On
            && p.module == SPEC.module
            && p.options::<Options>()
                .is_ok_and(|o| o.ebpf_run_time == Some(true))
    })
}

struct AgentProbe {
    board: CostBoard,
    types: CostTypes,
    node: Name,
    rates: [Name; SINK_RATES.len()],
    spooled: Name,
    waiting: Name,
    age: Name,
    /// The sink's previous reading, for its rates.
    last: Option<(Timestamp, SinkReading)>,
}

fn build(config: &ProbeConfig, ctx: &mut BuildContext<'_>) -> Result<Built, ProbeError> {
    config.options::<Options>()?;
    Ok(Built {
        probe: Box::new(AgentProbe {
            board: ctx.costs.clone(),
            types: CostTypes::new(),
            node: ctx.node.clone(),
            rates: SINK_RATES.map(|(t, _)| Name::from(t)),
            spooled: Name::from("ps:tools:blipp:agent:spool:bytes"),
            waiting: Name::from("ps:tools:blipp:agent:pending:samples"),
            age: Name::from("ps:tools:blipp:agent:pending:age"),
            last: None,
        }),
        source: Source::Proc,
    })
}

impl Probe for AgentProbe {
    fn collect(&mut self, ts: Timestamp, out: &mut Vec<Sample>) -> Result<(), ProbeError> {
        self.board.collect(ts, &self.types, &self.node, out);
        if let Some(now) = SINK.read() {
            self.sink(ts, now, out);
        }
        Ok(())
    }
}

impl AgentProbe {
    fn sink(&mut self, ts: Timestamp, now: SinkReading, out: &mut Vec<Sample>) {
        let mut push = |et: &Name, v: Value| {
            out.push(Sample::new(ts, &self.node, et, v, Source::Proc));
        };
        if let Some((then, before)) = self.last
            && ts.0 > then.0
        {
            let secs = (ts.0 - then.0) as f64 / 1e6;
            for ((_, counter), et) in SINK_RATES.iter().zip(&self.rates) {
                let delta = counter(&now).saturating_sub(counter(&before));
                push(et, Value::Float(delta as f64 / secs));
            }
        }
        push(&self.spooled, Value::Int(now.spooled_bytes));
        push(&self.waiting, Value::Int(now.memory_samples));
        let age = now
            .waiting_since_us
            .map_or(0.0, |since| ts.0.saturating_sub(since) as f64 / 1e6);
        push(&self.age, Value::Float(age));
        self.last = Some((ts, now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(probes: serde_json::Value) -> Config {
        let doc = json!({"properties": {"configurations": {
            "probe_defaults": {"schedule_params": {"every": 1}}, "probes": probes}}});
        crate::config::resolve(doc).unwrap()
    }

    #[test]
    fn run_time_statistics_only_for_an_agent_probe_that_is_on_and_asks() {
        let asks = json!({"probe_module": "agent", "ebpf_run_time": true});
        assert!(wants_run_time(&config(json!({"a": asks}))));
        assert!(!wants_run_time(&config(
            json!({"a": {"probe_module": "agent"}})
        )));
        assert!(!wants_run_time(&config(
            json!({"a": {"probe_module": "agent", "ebpf_run_time": false}})
        )));
        let mut off = asks.clone();
        off["status"] = json!("OFF");
        assert!(!wants_run_time(&config(json!({"a": off}))));
        assert!(!wants_run_time(&config(
            json!({"m": {"probe_module": "mem", "ebpf_run_time": true}})
        )));
    }
}
