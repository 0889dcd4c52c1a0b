use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::json;

use super::*;
use crate::probe::{REGISTRY, testing};
use crate::sample::Sample;

/// The event types each probe module emits, by module (`<n>`-like parts
/// given one example value), and whether its event types come from its
/// configuration (so that those not listed are [`GENERIC`] gauges). A
/// module of the registry without a row fails
/// [`every_module_has_its_event_types_mapped`].
static EMITS: &[(&str, bool, &[&str])] = &[
    (
        "cpu",
        false,
        &[
            "ps:tools:blipp:linux:cpu:utilization:user",
            "ps:tools:blipp:linux:cpu:utilization:system",
            "ps:tools:blipp:linux:cpu:utilization:nice",
            "ps:tools:blipp:linux:cpu:utilization:idle",
            "ps:tools:blipp:linux:cpu:utilization:iowait",
            "ps:tools:blipp:linux:cpu:utilization:hwirq",
            "ps:tools:blipp:linux:cpu:utilization:swirq",
            "ps:tools:blipp:linux:cpu:utilization:steal",
            "ps:tools:blipp:linux:cpu:utilization:guest",
            "ps:tools:blipp:linux:cpu:load:onemin",
            "ps:tools:blipp:linux:cpu:load:fivemin",
            "ps:tools:blipp:linux:cpu:load:fifteenmin",
        ],
    ),
    (
        "mem",
        false,
        &[
            "ps:tools:blipp:linux:memory:utilization:free",
            "ps:tools:blipp:linux:memory:utilization:used",
            "ps:tools:blipp:linux:memory:utilization:buffer",
            "ps:tools:blipp:linux:memory:utilization:cache",
            "ps:tools:blipp:linux:memory:utilization:kernel",
            "ps:tools:blipp:linux:memory:utilization:available",
            "ps:tools:blipp:linux:memory:utilization:swap:used",
            "ps:tools:blipp:linux:memory:utilization:swap:free",
            "ps:tools:blipp:linux:memory:utilization:dirty",
        ],
    ),
    (
        "net",
        false,
        &[
            "ps:tools:blipp:linux:network:utilization:bytes:in",
            "ps:tools:blipp:linux:network:utilization:bytes:out",
            "ps:tools:blipp:linux:network:ip:utilization:packets:in",
            "ps:tools:blipp:linux:network:ip:utilization:packets:out",
            "ps:tools:blipp:linux:network:ip:utilization:errors",
            "ps:tools:blipp:linux:network:ip:utilization:drops",
            "ps:tools:blipp:linux:network:ip:utilization:errors:in",
            "ps:tools:blipp:linux:network:ip:utilization:errors:out",
            "ps:tools:blipp:linux:network:ip:utilization:drops:in",
            "ps:tools:blipp:linux:network:ip:utilization:drops:out",
            "ps:tools:blipp:linux:network:ip:utilization:drops:kernel",
            "ps:tools:blipp:linux:network:tcp:utilization:segments:in",
            "ps:tools:blipp:linux:network:tcp:utilization:segments:out",
            "ps:tools:blipp:linux:network:tcp:utilization:retrans",
            "ps:tools:blipp:linux:network:udp:utilization:datagrams:in",
            "ps:tools:blipp:linux:network:udp:utilization:datagrams:out",
            "ps:tools:blipp:linux:network:tcp:connections:active",
            "ps:tools:blipp:linux:network:tcp:connections:passive",
            "ps:tools:blipp:linux:network:tcp:connections:closed",
            "ps:tools:blipp:linux:network:tcp:resets:out",
            "ps:tools:blipp:linux:network:tcp:resets:in",
        ],
    ),
    ("disk", false, DISK),
    (
        "port",
        false,
        &[
            "ps:tools:blipp:linux:network:link:capacity",
            "ps:tools:blipp:linux:network:link:duplex",
        ],
    ),
    (
        "process",
        false,
        &[
            "ps:tools:blipp:linux:process:pid",
            "ps:tools:blipp:linux:process:state",
            "ps:tools:blipp:linux:process:start_time",
            "ps:tools:blipp:linux:process:cpu:utilization",
            "ps:tools:blipp:linux:process:cpu:utilization:user",
            "ps:tools:blipp:linux:process:cpu:utilization:system",
            "ps:tools:blipp:linux:process:memory:rss",
            "ps:tools:blipp:linux:process:memory:swap",
            "ps:tools:blipp:linux:process:memory:virtual",
            "ps:tools:blipp:linux:process:threads",
            "ps:tools:blipp:linux:process:fds",
            "ps:tools:blipp:linux:process:io:bytes:read",
            "ps:tools:blipp:linux:process:io:bytes:write",
            "ps:tools:blipp:linux:process:faults:major",
            "ps:tools:blipp:linux:process:context_switches:voluntary",
            "ps:tools:blipp:linux:process:context_switches:involuntary",
        ],
    ),
    (
        "numa",
        false,
        &[
            "ps:tools:blipp:linux:numa:memory:total",
            "ps:tools:blipp:linux:numa:memory:free",
            "ps:tools:blipp:linux:numa:memory:used",
            "ps:tools:blipp:linux:numa:memory:cache",
            "ps:tools:blipp:linux:numa:memory:anon",
            "ps:tools:blipp:linux:numa:memory:slab",
            "ps:tools:blipp:linux:numa:memory:dirty",
            "ps:tools:blipp:linux:numa:pages:hit",
            "ps:tools:blipp:linux:numa:pages:miss",
            "ps:tools:blipp:linux:numa:pages:foreign",
            "ps:tools:blipp:linux:numa:pages:interleave_hit",
            "ps:tools:blipp:linux:numa:pages:local",
            "ps:tools:blipp:linux:numa:pages:other",
        ],
    ),
    ("pressure", false, PRESSURE),
    (
        "counting",
        false,
        &[
            "ps:tools:blipp:linux:net:count:packets",
            "ps:tools:blipp:linux:net:count:bytes",
        ],
    ),
    (
        "iptables",
        false,
        &[
            "ps:tools:blipp:linux:net:iptables:counting",
            "ps:tools:blipp:linux:net:iptables:counting:bytes",
        ],
    ),
    ("cmd", true, &[]),
    ("cmd_line_probe", true, &[]),
    (
        "nagios",
        true,
        &[
            "ps:tools:blipp:nagios:load:status",
            "ps:tools:blipp:nagios:load:state",
        ],
    ),
    (
        "json_probe",
        true,
        &["ps:tools:blipp:linux:net:iperf:bandwidth"],
    ),
    (
        "ceph_probe",
        true,
        &[
            "ps:tools:blipp:linux:ceph:status",
            "ps:tools:blipp:linux:ceph:bytes:used",
            "ps:tools:blipp:linux:ceph:bytes:free",
        ],
    ),
    ("traceroute", true, TRACEROUTE),
    ("traceroute_probe", true, TRACEROUTE),
    (
        "procevents",
        false,
        &[
            "ps:tools:blipp:linux:process:events:exec",
            "ps:tools:blipp:linux:process:events:fork",
            "ps:tools:blipp:linux:process:events:exit",
            "ps:tools:blipp:linux:process:events:lost",
            "ps:tools:blipp:linux:process:events:dropped",
            "ps:tools:blipp:linux:process:events:clone",
        ],
    ),
    (
        "agent",
        false,
        &[
            "ps:tools:blipp:agent:probe:collect_seconds",
            "ps:tools:blipp:agent:probe:failed",
            "ps:tools:blipp:agent:probes:failed",
            "ps:tools:blipp:agent:ebpf:runs",
            "ps:tools:blipp:agent:ebpf:run_time_ns",
            "ps:tools:blipp:agent:ebpf:missed",
            "ps:tools:blipp:agent:unis:requests",
            "ps:tools:blipp:agent:ms:requests",
            "ps:tools:blipp:agent:sink:failures",
            "ps:tools:blipp:agent:sink:bytes",
            "ps:tools:blipp:agent:spool:bytes",
            "ps:tools:blipp:agent:pending:samples",
            "ps:tools:blipp:agent:pending:age",
        ],
    ),
    ("netlogger", true, &[]),
    ("netlogger_probe", true, &[]),
    ("dummy", false, &["ps:testing:dummy"]),
    (
        "registration_probe",
        false,
        &[
            "ps:tools:blipp:linux:registration:status",
            "ps:tools:blipp:linux:registration:pid",
        ],
    ),
];

/// procevents' per-process event types: known, and not exported.
static PER_PROCESS: &[&str] = &[
    "ps:tools:blipp:linux:process:exec:parent",
    "ps:tools:blipp:linux:process:fork:parent",
    "ps:tools:blipp:linux:process:exit:code",
    "ps:tools:blipp:linux:process:exit:signal",
    "ps:tools:blipp:linux:process:exit:lifetime",
    "ps:tools:blipp:linux:process:exit:disk:bytes:read",
    "ps:tools:blipp:linux:process:exit:disk:bytes:write",
    "ps:tools:blipp:linux:process:disk:utilization:bytes:read",
    "ps:tools:blipp:linux:process:disk:utilization:bytes:write",
];

static PRESSURE: &[&str] = &[
    "ps:tools:blipp:linux:pressure:cpu:some:avg10",
    "ps:tools:blipp:linux:pressure:cpu:some:avg60",
    "ps:tools:blipp:linux:pressure:cpu:some:avg300",
    "ps:tools:blipp:linux:pressure:cpu:some:total",
    "ps:tools:blipp:linux:pressure:cpu:some:stalled",
    "ps:tools:blipp:linux:pressure:memory:some:avg10",
    "ps:tools:blipp:linux:pressure:memory:some:avg60",
    "ps:tools:blipp:linux:pressure:memory:some:avg300",
    "ps:tools:blipp:linux:pressure:memory:some:total",
    "ps:tools:blipp:linux:pressure:memory:some:stalled",
    "ps:tools:blipp:linux:pressure:memory:full:avg10",
    "ps:tools:blipp:linux:pressure:memory:full:avg60",
    "ps:tools:blipp:linux:pressure:memory:full:avg300",
    "ps:tools:blipp:linux:pressure:memory:full:total",
    "ps:tools:blipp:linux:pressure:memory:full:stalled",
    "ps:tools:blipp:linux:pressure:io:some:avg10",
    "ps:tools:blipp:linux:pressure:io:some:avg60",
    "ps:tools:blipp:linux:pressure:io:some:avg300",
    "ps:tools:blipp:linux:pressure:io:some:total",
    "ps:tools:blipp:linux:pressure:io:some:stalled",
    "ps:tools:blipp:linux:pressure:io:full:avg10",
    "ps:tools:blipp:linux:pressure:io:full:avg60",
    "ps:tools:blipp:linux:pressure:io:full:avg300",
    "ps:tools:blipp:linux:pressure:io:full:total",
    "ps:tools:blipp:linux:pressure:io:full:stalled",
];

static TRACEROUTE: &[&str] = &[
    "ps:tools:blipp:linux:net:traceroute:hopip",
    "ps:tools:blipp:linux:net:traceroute:rtt",
    "ps:tools:blipp:linux:net:traceroute:hops",
];

static DISK: &[&str] = &[
    "ps:tools:blipp:linux:disk:requests:read",
    "ps:tools:blipp:linux:disk:requests:write",
    "ps:tools:blipp:linux:disk:requests:discard",
    "ps:tools:blipp:linux:disk:requests:flush",
    "ps:tools:blipp:linux:disk:requests:other",
    "ps:tools:blipp:linux:disk:merged:read",
    "ps:tools:blipp:linux:disk:merged:write",
    "ps:tools:blipp:linux:disk:merged:discard",
    "ps:tools:blipp:linux:disk:sectors:read",
    "ps:tools:blipp:linux:disk:sectors:write",
    "ps:tools:blipp:linux:disk:sectors:discard",
    "ps:tools:blipp:linux:disk:time:read",
    "ps:tools:blipp:linux:disk:time:write",
    "ps:tools:blipp:linux:disk:time:discard",
    "ps:tools:blipp:linux:disk:time:flush",
    "ps:tools:blipp:linux:disk:time:io",
    "ps:tools:blipp:linux:disk:time:weighted",
    "ps:tools:blipp:linux:disk:inprogress",
    "ps:tools:blipp:linux:disk:utilization:iops:read",
    "ps:tools:blipp:linux:disk:utilization:iops:write",
    "ps:tools:blipp:linux:disk:utilization:iops:discard",
    "ps:tools:blipp:linux:disk:utilization:iops:flush",
    "ps:tools:blipp:linux:disk:utilization:bytes:read",
    "ps:tools:blipp:linux:disk:utilization:bytes:write",
    "ps:tools:blipp:linux:disk:utilization:bytes:discard",
    "ps:tools:blipp:linux:disk:utilization:await:read",
    "ps:tools:blipp:linux:disk:utilization:await:write",
    "ps:tools:blipp:linux:disk:utilization:await:discard",
    "ps:tools:blipp:linux:disk:utilization:await:flush",
    "ps:tools:blipp:linux:disk:utilization:busy",
    "ps:tools:blipp:linux:disk:utilization:queue",
    "ps:tools:blipp:linux:disk:latency:read:total:p50",
    "ps:tools:blipp:linux:disk:latency:read:total:p90",
    "ps:tools:blipp:linux:disk:latency:read:total:p99",
    "ps:tools:blipp:linux:disk:latency:read:total:max",
    "ps:tools:blipp:linux:disk:latency:write:queue:p99",
    "ps:tools:blipp:linux:disk:latency:discard:device:p50",
    "ps:tools:blipp:linux:disk:latency:flush:device:max",
];

/// The family name of a sample (with `_total` for counters) and its
/// quantile.
fn exported(event_type: &str) -> Option<(String, Kind, Option<&'static str>)> {
    match map(event_type) {
        Mapped::Family { family, quantile } => Some((family.sample_name(), family.kind, quantile)),
        Mapped::Skipped(_) => None,
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.contains("__")
}

#[test]
fn the_documented_examples() {
    let cases = [
        (
            "ps:tools:blipp:linux:disk:utilization:iops:read",
            "blipp_disk_utilization_iops_read",
            Kind::Gauge,
            None,
        ),
        (
            "ps:tools:blipp:linux:cpu:utilization:user",
            "blipp_cpu_utilization_user",
            Kind::Gauge,
            None,
        ),
        (
            "ps:tools:blipp:linux:network:utilization:bytes:in",
            "blipp_network_utilization_bytes_in_total",
            Kind::Counter,
            None,
        ),
        (
            "ps:tools:blipp:linux:memory:utilization:swap:used",
            "blipp_memory_utilization_swap_used_bytes",
            Kind::Gauge,
            None,
        ),
        (
            "ps:tools:blipp:linux:disk:time:io",
            "blipp_disk_time_io_seconds_total",
            Kind::Counter,
            None,
        ),
        (
            "ps:tools:blipp:linux:disk:utilization:await:write",
            "blipp_disk_utilization_await_write_seconds",
            Kind::Gauge,
            None,
        ),
        (
            "ps:tools:blipp:linux:disk:latency:read:device:p99",
            "blipp_disk_latency_read_device_seconds",
            Kind::Summary,
            Some("0.99"),
        ),
        (
            "ps:tools:blipp:linux:disk:latency:write:total:max",
            "blipp_disk_latency_write_total_seconds",
            Kind::Summary,
            Some("1"),
        ),
        (
            "ps:tools:blipp:linux:pressure:io:some:total",
            "blipp_pressure_io_some_seconds_total",
            Kind::Counter,
            None,
        ),
        (
            "ps:tools:blipp:linux:numa:memory:total",
            "blipp_numa_memory_total_bytes",
            Kind::Gauge,
            None,
        ),
        (
            "ps:tools:blipp:linux:process:start_time",
            "blipp_process_start_time_seconds",
            Kind::Gauge,
            None,
        ),
        (
            "ps:tools:blipp:linux:process:io:bytes:read",
            "blipp_process_io_bytes_read_total",
            Kind::Counter,
            None,
        ),
        (
            "ps:tools:blipp:agent:probe:collect_seconds",
            "blipp_agent_probe_collect_seconds",
            Kind::Gauge,
            None,
        ),
        (
            "ps:tools:blipp:agent:ebpf:run_time_ns",
            "blipp_agent_ebpf_run_time_seconds_total",
            Kind::Counter,
            None,
        ),
        (
            "ps:tools:blipp:agent:spool:bytes",
            "blipp_agent_spool_bytes",
            Kind::Gauge,
            None,
        ),
        (
            "ps:tools:blipp:nagios:load:load1",
            "blipp_nagios_load_load1",
            Kind::Gauge,
            None,
        ),
        (
            "ps:tools:blipp:netlogger:transfer.rate",
            "blipp_netlogger_transfer_rate",
            Kind::Gauge,
            None,
        ),
        ("ps:testing:dummy", "blipp_testing_dummy", Kind::Gauge, None),
        (
            "my-site:ping rtt",
            "blipp_my_site_ping_rtt",
            Kind::Gauge,
            None,
        ),
    ];
    for (event_type, name, kind, quantile) in cases {
        assert_eq!(
            exported(event_type),
            Some((name.to_owned(), kind, quantile)),
            "{event_type}"
        );
    }
    assert_eq!(
        map("ps:tools:blipp:linux:process:exec:parent"),
        Mapped::Skipped(PER_PID)
    );
}

#[test]
fn units_convert_values() {
    let factor = |et: &str| match map(et) {
        Mapped::Family { family, .. } => family.unit.factor(),
        Mapped::Skipped(_) => panic!("{et}"),
    };
    assert_eq!(
        factor("ps:tools:blipp:linux:memory:utilization:free"),
        1024.0
    );
    assert_eq!(factor("ps:tools:blipp:linux:disk:time:read"), 1e-3);
    assert_eq!(
        factor("ps:tools:blipp:linux:disk:latency:read:total:p50"),
        1e-6
    );
    assert_eq!(factor("ps:tools:blipp:agent:ebpf:run_time_ns"), 1e-9);
    assert_eq!(
        factor("ps:tools:blipp:linux:network:utilization:bytes:in"),
        1.0
    );
}

#[test]
fn subjects_become_labels() {
    assert_eq!(subject_label("node"), None);
    assert_eq!(subject_label("port:eth0"), Some(("interface", "eth0")));
    assert_eq!(
        subject_label("disk:nvme0n1p1"),
        Some(("device", "nvme0n1p1"))
    );
    assert_eq!(subject_label("cpu:3"), Some(("cpu", "3")));
    assert_eq!(subject_label("process:nginx"), Some(("process", "nginx")));
    assert_eq!(subject_label("probe:disk"), Some(("probe", "disk")));
    assert_eq!(
        subject_label("ebpf:block_rq_complete"),
        Some(("program", "block_rq_complete"))
    );
    assert_eq!(subject_label("count:ssh"), Some(("rule", "ssh")));
    assert_eq!(subject_label("numa:0"), Some(("numa_node", "0")));
    assert_eq!(subject_label("ps:eth0:x"), Some(("subject", "ps:eth0:x")));
}

/// Every module of the registry has its row in [`EMITS`]; every event type
/// its own probes emit has an explicit rule (not the generic one), a valid
/// name and the suffix its type wants; no two of them share a series.
#[test]
fn every_module_has_its_event_types_mapped() {
    let rows: HashMap<&str, _> = EMITS.iter().map(|(m, d, t)| (*m, (*d, *t))).collect();
    for spec in REGISTRY {
        assert!(
            rows.contains_key(spec.module),
            "probe module {} has no row in EMITS: list the event types it emits and map them in RULES",
            spec.module
        );
    }
    let mut seen: HashMap<(String, Option<&str>), &str> = HashMap::new();
    for (module, _, types) in EMITS {
        for et in *types {
            assert!(rule_of(et).is_some(), "{module}: {et} matches no rule");
            let (name, kind, quantile) =
                exported(et).unwrap_or_else(|| panic!("{module}: {et} is not exported"));
            assert!(valid_name(&name), "{et}: {name}");
            assert_eq!(
                name.ends_with("_total"),
                kind == Kind::Counter,
                "{et}: {name}"
            );
            for reserved in ["_count", "_sum", "_bucket"] {
                assert!(!name.ends_with(reserved), "{et}: {name}");
            }
            if let Some(other) = seen.insert((name.clone(), quantile), et) {
                assert_eq!(other, *et, "{et} and {other} share {name}");
            }
        }
    }
    for et in PER_PROCESS {
        assert!(matches!(map(et), Mapped::Skipped(_)), "{et}");
    }
    for r in RULES {
        assert!(
            !matches!(r.export, Export::As(..) | Export::Quantiles(_)) || !r.help.is_empty(),
            "{} has no HELP",
            r.pattern
        );
    }
}

fn manifest() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the probes that run without eBPF, root or network on fixture
/// trees, twice (rates need two collections): whatever they emit must be
/// listed in their module's row of [`EMITS`] (or be a [`PER_PROCESS`]
/// type), so that a new event type cannot go out without its mapping.
#[test]
fn what_probes_emit_is_listed() {
    let host: PathBuf = manifest().join("../tests/data/host/proc");
    let pressure = tempfile::tempdir().unwrap();
    let fixtures = manifest().join("src/source/procfs/fixtures");
    std::fs::create_dir(pressure.path().join("pressure")).unwrap();
    for r in ["cpu", "memory", "io"] {
        std::fs::copy(
            fixtures.join(format!("pressure-{r}-6.18")),
            pressure.path().join("pressure").join(r),
        )
        .unwrap();
    }
    let process = manifest().join("src/probe/process/fixtures/proc");
    let runs: Vec<(&str, serde_json::Value, PathBuf)> = vec![
        ("cpu", json!({"percpu": true}), host.clone()),
        ("mem", json!({}), host.clone()),
        ("net", json!({}), host.clone()),
        ("disk", json!({}), host.clone()),
        ("pressure", json!({}), pressure.path().to_owned()),
        ("process", json!({"process_name": "nginx"}), process),
        ("agent", json!({}), host.clone()),
        ("dummy", json!({}), host),
    ];
    for (module, options, dir) in runs {
        let mut probe = testing::build(module, &options, &dir);
        let mut samples: Vec<Sample> = testing::collect(&mut *probe, 0.0);
        samples.extend(testing::collect(&mut *probe, 5.0));
        assert!(!samples.is_empty(), "{module} emitted nothing");
        let listed = EMITS.iter().find(|(m, _, _)| *m == module).unwrap().2;
        for s in samples {
            let et = &*s.event_type;
            assert!(
                listed.contains(&et) || PER_PROCESS.contains(&et),
                "{module} emits {et}, which its row of EMITS does not list"
            );
        }
    }
    let numa = testing::try_build_sys(
        "numa",
        &json!({}),
        &manifest().join("src/probe/numa/fixtures/sys"),
    )
    .unwrap()
    .probe;
    let mut numa = numa;
    for s in testing::collect(&mut *numa, 0.0) {
        let listed = EMITS.iter().find(|(m, _, _)| *m == "numa").unwrap().2;
        assert!(
            listed.contains(&&*s.event_type),
            "numa emits {}",
            s.event_type
        );
    }
}
