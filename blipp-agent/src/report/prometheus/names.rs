//! From blipp's event types and subjects to Prometheus families, types,
//! units and labels: one rule, pure, shared by the scrape endpoint and
//! remote write.
//!
//! **Family name.** The event type loses its namespace
//! (`ps:tools:blipp:linux:`, `ps:tools:blipp:`, else `ps:`), `blipp_` goes
//! in front, and every character outside `[A-Za-z0-9_]` (the `:`
//! separators) becomes `_`: `ps:tools:blipp:linux:disk:utilization:iops:read`
//! is `blipp_disk_utilization_iops_read`. Then, from the [`RULES`] entry
//! that matches the event type:
//! - a percentile (`p50`, `p90`, `p99`, `max`) leaves the name and becomes
//!   the `quantile` label (`0.5`, `0.9`, `0.99`, `1`) of a summary;
//! - a unit the value is converted to (`bytes` from kB, `seconds` from
//!   ms, µs or ns) is appended as `_bytes` or `_seconds`, after dropping a
//!   trailing component that named the old unit or `total` (a counter's
//!   suffix follows), unless a component of the name already is that unit;
//! - a counter gets `_total`.
//!
//! **Types.** Cumulative kernel counters (the values the counter module
//! tracks: requests, bytes, packets, ticks of time) are counters; fractions,
//! rates, sizes and levels are gauges; latency percentiles are summaries
//! of quantiles. Text values (a process's state, a link's duplex) are a
//! gauge of 1 with the text in the `state` label. Event types that name
//! one process's life events (`procevents`' exec, fork, exit) are not
//! exported: their subjects carry a pid, so every process would be a
//! series of its own.
//!
//! **Labels.** The subject: `node` gives none; `<kind>:<rest>` gives the
//! label [`SUBJECT_LABELS`] names for the kind (`port:eth0` ->
//! `interface="eth0"`); any other subject is `subject="<subject>"`.
//! The source (`ebpf`, `proc`) is never a label: one quantity is one
//! series whichever source measured it.

/// What a family is in Prometheus.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Cumulative: only grows, except at a reset.
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// Quantiles over an interval (no `_sum`, no `_count`).
    Summary,
}

impl Kind {
    /// The `# TYPE` word.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Summary => "summary",
        }
    }
}

/// The unit a value is converted to, and from what.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Unit {
    /// Exported as measured.
    None,
    /// Bytes: the value times `factor` (1024 for kB).
    Bytes(f64),
    /// Seconds: the value times `factor` (1e-3 for ms).
    Seconds(f64),
}

impl Unit {
    /// The suffix word, if any.
    pub fn word(self) -> Option<&'static str> {
        match self {
            Unit::None => None,
            Unit::Bytes(_) => Some("bytes"),
            Unit::Seconds(_) => Some("seconds"),
        }
    }

    /// The factor from the sample's value to the exported one.
    pub fn factor(self) -> f64 {
        match self {
            Unit::None => 1.0,
            Unit::Bytes(f) | Unit::Seconds(f) => f,
        }
    }
}

const KB: Unit = Unit::Bytes(1024.0);
const BYTES: Unit = Unit::Bytes(1.0);
const MS: Unit = Unit::Seconds(1e-3);
const US: Unit = Unit::Seconds(1e-6);
const NS: Unit = Unit::Seconds(1e-9);
const SECONDS: Unit = Unit::Seconds(1.0);

/// How the event types a [`Rule`] matches are exported.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Export {
    /// As a family of this kind and unit.
    As(Kind, Unit),
    /// As a summary: the last component is the quantile.
    Quantiles(Unit),
    /// Not exported, for this reason.
    Skip(&'static str),
}

/// One row of [`RULES`]: a pattern of the event type's components after
/// its namespace (`*` one component, a final `**` any number, at least
/// one), what it is, and what its HELP says.
#[derive(Debug)]
pub struct Rule {
    /// The pattern, e.g. `disk:requests:*`.
    pub pattern: &'static str,
    /// How it is exported.
    pub export: Export,
    /// The HELP text.
    pub help: &'static str,
}

const fn rule(pattern: &'static str, export: Export, help: &'static str) -> Rule {
    Rule {
        pattern,
        export,
        help,
    }
}

use Export::{As, Quantiles, Skip};
use Kind::{Counter, Gauge};

const PER_PID: &str = "one process's events: a pid per subject, a series per process";

/// Every event type blipp's own probes emit, first match wins. Event
/// types a configuration names (`cmd`, `json_probe`, `nagios` performance
/// data, `netlogger`) that match none are gauges as measured
/// ([`GENERIC`]).
pub static RULES: &[Rule] = &[
    // cpu
    rule(
        "cpu:utilization:*",
        As(Gauge, Unit::None),
        "Fraction of the interval's CPU time in this state, 0..1.",
    ),
    rule("cpu:load:*", As(Gauge, Unit::None), "Load average."),
    // mem
    rule(
        "memory:utilization:**",
        As(Gauge, KB),
        "Memory, from /proc/meminfo.",
    ),
    // net
    rule(
        "network:utilization:bytes:*",
        As(Counter, BYTES),
        "Bytes received or sent by the interface.",
    ),
    rule(
        "network:ip:utilization:packets:*",
        As(Counter, Unit::None),
        "Packets received or sent by the interface.",
    ),
    rule(
        "network:ip:utilization:errors",
        As(Counter, Unit::None),
        "Errors of the interface, both directions.",
    ),
    rule(
        "network:ip:utilization:errors:*",
        As(Counter, Unit::None),
        "Errors of the interface.",
    ),
    rule(
        "network:ip:utilization:drops",
        As(Counter, Unit::None),
        "Drops of the interface, both directions.",
    ),
    rule(
        "network:ip:utilization:drops:*",
        As(Counter, Unit::None),
        "Drops of the interface (kernel: kfree_skb naming it).",
    ),
    rule(
        "network:tcp:utilization:segments:*",
        As(Counter, Unit::None),
        "TCP segments (InSegs, OutSegs).",
    ),
    rule(
        "network:tcp:utilization:retrans",
        As(Counter, Unit::None),
        "TCP segments retransmitted.",
    ),
    rule(
        "network:udp:utilization:datagrams:*",
        As(Counter, Unit::None),
        "UDP datagrams.",
    ),
    rule(
        "network:tcp:connections:*",
        As(Counter, Unit::None),
        "TCP connections since the programs were attached.",
    ),
    rule(
        "network:tcp:resets:*",
        As(Counter, Unit::None),
        "TCP resets since the programs were attached.",
    ),
    rule(
        "network:link:capacity",
        As(Gauge, Unit::None),
        "Link speed, bytes per second.",
    ),
    rule(
        "network:link:duplex",
        As(Gauge, Unit::None),
        "Link duplex (1 for the state label's value).",
    ),
    // disk
    rule(
        "disk:requests:*",
        As(Counter, Unit::None),
        "Requests completed.",
    ),
    rule("disk:merged:*", As(Counter, Unit::None), "Requests merged."),
    rule(
        "disk:sectors:*",
        As(Counter, Unit::None),
        "512-byte sectors transferred.",
    ),
    rule(
        "disk:time:*",
        As(Counter, MS),
        "Time spent on requests, or with requests in flight (io), or request-time in flight (weighted).",
    ),
    rule(
        "disk:inprogress",
        As(Gauge, Unit::None),
        "Requests in flight.",
    ),
    rule(
        "disk:utilization:iops:*",
        As(Gauge, Unit::None),
        "Requests completed per second over the interval.",
    ),
    rule(
        "disk:utilization:bytes:*",
        As(Gauge, Unit::None),
        "Bytes per second over the interval.",
    ),
    rule(
        "disk:utilization:await:*",
        As(Gauge, MS),
        "Time per completed request over the interval.",
    ),
    rule(
        "disk:utilization:busy",
        As(Gauge, Unit::None),
        "Fraction of the interval with I/O in flight, 0..1.",
    ),
    rule(
        "disk:utilization:queue",
        As(Gauge, Unit::None),
        "Average requests in flight over the interval.",
    ),
    rule(
        "disk:latency:*:*:*",
        Quantiles(US),
        "Request latency over the interval (eBPF): total, queue (creation to issue) or device (issue to completion).",
    ),
    // process
    rule("process:pid", As(Gauge, Unit::None), "The pid followed."),
    rule(
        "process:state",
        As(Gauge, Unit::None),
        "Process state (1 for the state label's value).",
    ),
    rule(
        "process:start_time",
        As(Gauge, SECONDS),
        "Process start, Unix time.",
    ),
    rule(
        "process:cpu:utilization",
        As(Gauge, Unit::None),
        "Share of the host's CPU time over the interval, 0..1.",
    ),
    rule(
        "process:cpu:utilization:*",
        As(Gauge, Unit::None),
        "Share of the host's CPU time in user or system mode over the interval, 0..1.",
    ),
    rule("process:memory:*", As(Gauge, KB), "Process memory."),
    rule("process:threads", As(Gauge, Unit::None), "Threads."),
    rule(
        "process:fds",
        As(Gauge, Unit::None),
        "Open file descriptors.",
    ),
    rule(
        "process:io:bytes:*",
        As(Counter, BYTES),
        "Bytes through the storage layer.",
    ),
    rule(
        "process:faults:major",
        As(Counter, Unit::None),
        "Major page faults.",
    ),
    rule(
        "process:context_switches:*",
        As(Counter, Unit::None),
        "Context switches.",
    ),
    // procevents
    rule(
        "process:events:*",
        As(Counter, Unit::None),
        "Process events counted (exec, fork, exit since the programs were attached; clone since boot; lost, dropped).",
    ),
    rule("process:exec:**", Skip(PER_PID), ""),
    rule("process:fork:**", Skip(PER_PID), ""),
    rule("process:exit:**", Skip(PER_PID), ""),
    rule("process:disk:**", Skip(PER_PID), ""),
    // numa
    rule("numa:memory:*", As(Gauge, KB), "NUMA node memory."),
    rule(
        "numa:pages:*",
        As(Counter, Unit::None),
        "NUMA node page allocations (numastat).",
    ),
    // pressure
    rule(
        "pressure:*:*:avg10",
        As(Gauge, Unit::None),
        "Pressure stall, kernel's 10 s average, 0..1.",
    ),
    rule(
        "pressure:*:*:avg60",
        As(Gauge, Unit::None),
        "Pressure stall, kernel's 60 s average, 0..1.",
    ),
    rule(
        "pressure:*:*:avg300",
        As(Gauge, Unit::None),
        "Pressure stall, kernel's 300 s average, 0..1.",
    ),
    rule("pressure:*:*:total", As(Counter, US), "Time stalled."),
    rule(
        "pressure:*:*:stalled",
        As(Gauge, Unit::None),
        "Fraction of the interval stalled, 0..1.",
    ),
    // counting (and the original's iptables)
    rule(
        "net:count:packets",
        As(Counter, Unit::None),
        "Packets matching the counting rule.",
    ),
    rule(
        "net:count:bytes",
        As(Counter, BYTES),
        "Bytes (IP datagrams) matching the counting rule.",
    ),
    rule(
        "net:iptables:counting",
        As(Counter, Unit::None),
        "Packets matching the original's iptables rule.",
    ),
    rule(
        "net:iptables:counting:bytes",
        As(Counter, BYTES),
        "Bytes matching the original's iptables rule.",
    ),
    // traceroute (default event types)
    rule(
        "net:traceroute:hopip",
        As(Gauge, Unit::None),
        "Addresses that answered at the hop (1 for the state label's value).",
    ),
    rule(
        "net:traceroute:rtt",
        As(Gauge, MS),
        "Shortest round-trip time of the hop's answers.",
    ),
    rule(
        "net:traceroute:hops",
        As(Gauge, Unit::None),
        "Hops to the destination.",
    ),
    // registration_probe
    rule(
        "registration:status",
        As(Gauge, Unit::None),
        "The watched service's status (1 for the state label's value).",
    ),
    rule(
        "registration:pid",
        As(Gauge, Unit::None),
        "The watched service's pid.",
    ),
    // nagios
    rule(
        "nagios:*:status",
        As(Gauge, Unit::None),
        "Plugin exit status: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.",
    ),
    rule(
        "nagios:*:state",
        As(Gauge, Unit::None),
        "Plugin state (1 for the state label's value).",
    ),
    // ceph_probe's defaults
    rule(
        "ceph:status",
        As(Gauge, Unit::None),
        "Ceph health (1 for the state label's value).",
    ),
    rule(
        "ceph:bytes:*",
        As(Gauge, KB),
        "Ceph space of the first monitor.",
    ),
    // json_probe's default (the iperf preset)
    rule(
        "net:iperf:bandwidth",
        As(Gauge, Unit::None),
        "iperf3 mean throughput of the report's intervals, bits per second.",
    ),
    // dummy
    rule(
        "testing:dummy",
        As(Gauge, Unit::None),
        "The original's test probe: 1 per completed run.",
    ),
    // agent
    rule(
        "agent:probe:collect_seconds",
        As(Gauge, SECONDS),
        "Duration of the probe's last collection.",
    ),
    rule(
        "agent:probe:failed",
        As(Gauge, Unit::None),
        "1 for a probe the configuration wants that could not be built, failed or is retrying.",
    ),
    rule(
        "agent:probes:failed",
        As(Gauge, Unit::None),
        "Probes the configuration wants that could not be built, failed or are retrying.",
    ),
    rule(
        "agent:ebpf:runs",
        As(Counter, Unit::None),
        "Runs of the eBPF program (kernel BPF statistics).",
    ),
    rule(
        "agent:ebpf:run_time_ns",
        As(Counter, NS),
        "Time the eBPF program ran (kernel BPF statistics).",
    ),
    rule(
        "agent:ebpf:missed",
        As(Counter, Unit::None),
        "Runs the kernel skipped because the program was running on that CPU.",
    ),
    rule(
        "agent:unis:requests",
        As(Gauge, Unit::None),
        "Requests to UNIS per second over the interval.",
    ),
    rule(
        "agent:ms:requests",
        As(Gauge, Unit::None),
        "Requests to the MS per second over the interval.",
    ),
    rule(
        "agent:sink:failures",
        As(Gauge, Unit::None),
        "Failed deliveries and polls per second over the interval.",
    ),
    rule(
        "agent:sink:bytes",
        As(Gauge, Unit::None),
        "Request bytes per second over the interval.",
    ),
    rule(
        "agent:spool:bytes",
        As(Gauge, BYTES),
        "Bytes spooled to disk.",
    ),
    rule(
        "agent:pending:samples",
        As(Gauge, Unit::None),
        "Samples waiting in memory.",
    ),
    rule(
        "agent:pending:age",
        As(Gauge, SECONDS),
        "How long the oldest waiting sample has waited.",
    ),
];

/// What an event type no rule matches is: a gauge, as measured.
pub const GENERIC: Export = As(Gauge, Unit::None);

/// The HELP of [`GENERIC`] families.
pub const GENERIC_HELP: &str =
    "Measured by a configured command, plugin or log (see the probe's configuration).";

/// Namespaces stripped from event types, longest first.
const NAMESPACES: [&str; 3] = ["ps:tools:blipp:linux:", "ps:tools:blipp:", "ps:"];

/// Subject kinds (`<kind>:<rest>`) and their label.
pub static SUBJECT_LABELS: &[(&str, &str)] = &[
    ("port", "interface"),
    ("disk", "device"),
    ("cpu", "cpu"),
    ("numa", "numa_node"),
    ("process", "process"),
    ("probe", "probe"),
    ("ebpf", "program"),
    ("count", "rule"),
    ("service", "service"),
    ("hop", "hop"),
];

/// The label a subject that is not `node` and of no known kind is put in.
pub const SUBJECT_LABEL: &str = "subject";

/// The label of a text value.
pub const STATE_LABEL: &str = "state";

/// The label of a summary's quantile.
pub const QUANTILE_LABEL: &str = "quantile";

/// The event type without its namespace.
pub fn tail(event_type: &str) -> &str {
    NAMESPACES
        .iter()
        .find_map(|ns| event_type.strip_prefix(ns))
        .unwrap_or(event_type)
}

fn matches(pattern: &str, tail: &str) -> bool {
    let mut parts = tail.split(':');
    for p in pattern.split(':') {
        if p == "**" {
            return parts.next().is_some();
        }
        match parts.next() {
            Some(c) if p == "*" || p == c => {}
            _ => return false,
        }
    }
    parts.next().is_none()
}

/// The rule of an event type, `None` for [`GENERIC`] ones.
pub fn rule_of(event_type: &str) -> Option<&'static Rule> {
    let t = tail(event_type);
    RULES.iter().find(|r| matches(r.pattern, t))
}

/// One family, as both encoders need it.
#[derive(Clone, Debug, PartialEq)]
pub struct Family {
    /// The family's name (a counter's without `_total`).
    pub name: Box<str>,
    /// Its type.
    pub kind: Kind,
    /// Its unit.
    pub unit: Unit,
    /// Its HELP text.
    pub help: &'static str,
}

impl Family {
    /// The name its samples carry: a counter's ends in `_total`.
    pub fn sample_name(&self) -> String {
        match self.kind {
            Kind::Counter => format!("{}_total", self.name),
            _ => self.name.to_string(),
        }
    }
}

/// How one event type is exported.
#[derive(Clone, Debug, PartialEq)]
pub enum Mapped {
    /// In `family`; a summary's quantile label value when the event type is
    /// one percentile.
    Family {
        /// The family.
        family: Family,
        /// The `quantile` label's value.
        quantile: Option<&'static str>,
    },
    /// Not exported.
    Skipped(&'static str),
}

/// The quantile of a percentile component.
pub fn quantile(component: &str) -> Option<&'static str> {
    Some(match component {
        "p50" => "0.5",
        "p90" => "0.9",
        "p95" => "0.95",
        "p99" => "0.99",
        "p999" => "0.999",
        "max" => "1",
        _ => return None,
    })
}

fn sanitize(out: &mut String, text: &str) {
    out.extend(text.chars().map(|c| {
        if c.is_ascii_alphanumeric() || c == '_' {
            c
        } else {
            '_'
        }
    }));
}

/// Unit words that a last component may end with (`collect_seconds`,
/// `run_time_ns`): the unit suffix replaces them.
const UNIT_ENDINGS: [&str; 6] = ["ns", "us", "ms", "kb", "seconds", "bytes"];

/// The family name of an event type's components (namespace and quantile
/// gone), by the module's rule: `blipp_` and the components joined by `_`,
/// a last component's own unit ending or a counter's last `total`
/// dropped, then the unit's word unless one already is in the name.
fn family_name(components: &[&str], kind: Kind, unit: Unit) -> Box<str> {
    let mut parts: Vec<&str> = components.to_vec();
    if let Some(last) = parts.last_mut()
        && let Some((stem, ending)) = last.rsplit_once('_')
        && unit.word().is_some()
        && UNIT_ENDINGS.contains(&ending)
    {
        *last = stem;
    }
    if kind == Kind::Counter && parts.len() > 1 && parts.last() == Some(&"total") {
        parts.pop();
    }
    let mut name = String::from("blipp");
    for p in parts {
        name.push('_');
        sanitize(&mut name, p);
    }
    if let Some(u) = unit.word()
        && !name.split('_').any(|w| w == u)
    {
        name.push('_');
        name.push_str(u);
    }
    name.into_boxed_str()
}

/// How `event_type` is exported. Allocates: call it once per event type
/// and keep the answer ([`super::catalog::Catalog`] does).
pub fn map(event_type: &str) -> Mapped {
    let t = tail(event_type);
    let rule = RULES.iter().find(|r| matches(r.pattern, t));
    let (export, help) = rule.map_or((GENERIC, GENERIC_HELP), |r| (r.export, r.help));
    let components: Vec<&str> = t.split(':').collect();
    match export {
        Skip(why) => Mapped::Skipped(why),
        As(kind, unit) => Mapped::Family {
            family: Family {
                name: family_name(&components, kind, unit),
                kind,
                unit,
                help,
            },
            quantile: None,
        },
        Quantiles(unit) => {
            let (last, rest) = components.split_last().unwrap_or((&"", &[]));
            match quantile(last) {
                Some(q) if !rest.is_empty() => Mapped::Family {
                    family: Family {
                        name: family_name(rest, Kind::Summary, unit),
                        kind: Kind::Summary,
                        unit,
                        help,
                    },
                    quantile: Some(q),
                },
                _ => {
                    Mapped::Skipped("a percentile event type whose last component is no percentile")
                }
            }
        }
    }
}

/// The label of a subject, `None` for `node`: (label name, value).
pub fn subject_label(subject: &str) -> Option<(&'static str, &str)> {
    if subject == "node" {
        return None;
    }
    if let Some((kind, rest)) = subject.split_once(':')
        && let Some((_, label)) = SUBJECT_LABELS.iter().find(|(k, _)| *k == kind)
    {
        return Some((label, rest));
    }
    Some((SUBJECT_LABEL, subject))
}

#[cfg(test)]
mod tests;
