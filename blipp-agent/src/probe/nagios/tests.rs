use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};

use super::*;
use crate::probe::testing;

/// Debian's monitoring-plugins-basic (installed by `cargo xtask setup`).
const PLUGINS: &str = "/usr/lib/nagios/plugins";

fn plugin(name: &str) -> String {
    let path = format!("{PLUGINS}/{name}");
    assert!(
        Path::new(&path).exists(),
        "{path} is missing: install monitoring-plugins-basic (cargo xtask setup does)"
    );
    path
}

fn probe(options: &Json) -> Box<dyn Probe> {
    testing::build("nagios", options, Path::new("/proc"))
}

fn text<'a>(out: &'a [Sample], event_type: &str) -> &'a str {
    match testing::find(out, "node", event_type).map(|s| &s.value) {
        Some(Value::Text(t)) => t,
        other => panic!("{event_type}: {other:?}"),
    }
}

fn loadavg() -> [f64; 3] {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap();
    let mut it = text.split_whitespace().map(|f| f.parse::<f64>().unwrap());
    [it.next().unwrap(), it.next().unwrap(), it.next().unwrap()]
}

#[test]
fn exit_status_is_the_state() {
    for (code, state) in STATES.iter().enumerate() {
        let mut p = probe(&json!({
            "command": format!("{} {code} $message", plugin("check_dummy")),
            "message": "from blipp",
            "check": "dummy",
        }));
        assert!(p.blocks());
        let out = testing::collect(p.as_mut(), 0.0);
        assert_eq!(
            testing::int(&out, "node", "ps:tools:blipp:nagios:dummy:status"),
            code as u64
        );
        assert_eq!(text(&out, "ps:tools:blipp:nagios:dummy:state"), *state);
        assert_eq!(out.len(), 2, "check_dummy prints no performance data");
    }
}

#[test]
fn check_load_reports_the_kernels_load() {
    // Thresholds no machine reaches: the check is OK.
    let mut p = probe(&json!({
        "command": format!("{} -w 10000,10000,10000 -c 20000,20000,20000", plugin("check_load")),
    }));
    let before = loadavg();
    let out = testing::collect(p.as_mut(), 0.0);
    let after = loadavg();
    assert_eq!(
        testing::int(&out, "node", "ps:tools:blipp:nagios:nagios:status"),
        0
    );
    for (i, label) in ["load1", "load5", "load15"].iter().enumerate() {
        let v = testing::float(
            &out,
            "node",
            &format!("ps:tools:blipp:nagios:nagios:{label}"),
        );
        let (lo, hi) = (before[i].min(after[i]), before[i].max(after[i]));
        // /proc/loadavg prints two decimals, check_load three.
        assert!(
            v >= lo - 0.006 && v <= hi + 0.006,
            "{label} {v} vs /proc/loadavg {lo}..{hi}"
        );
    }
}

#[test]
fn check_swap_reports_bytes() {
    let mut p = probe(&json!({
        "command": format!("{} -w 1% -c 0%", plugin("check_swap")),
        "check": "swap",
    }));
    let out = testing::collect(p.as_mut(), 0.0);
    // OK, or CRITICAL on a host without swap: a verdict either way.
    assert!(testing::int(&out, "node", "ps:tools:blipp:nagios:swap:status") <= 2);
    let free = testing::int(&out, "node", "ps:tools:blipp:nagios:swap:swap");
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let swap_free_kb: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("SwapFree:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    // check_swap prints free swap in whole MiB, as bytes.
    let kernel = swap_free_kb * 1024;
    assert!(
        free.abs_diff(kernel) <= 1024 * 1024 + kernel / 100,
        "check_swap {free} B vs SwapFree {kernel} B"
    );
}

#[test]
fn no_status_without_a_plugin_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let script = |name: &str, body: &str| {
        use std::os::unix::fs::PermissionsExt as _;
        let path = dir.path().join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let cases = [
        (
            script("five.sh", "echo 'OK | x=1'; exit 5"),
            "not a plugin status",
        ),
        (
            script("signal.sh", "echo 'OK | x=1'; kill -KILL $$"),
            "not a plugin status",
        ),
        (
            script("slow.sh", "echo 'OK | x=1'; sleep 917.25"),
            "timeout",
        ),
        (format!("{PLUGINS}/check_no_such_plugin"), "cannot start"),
    ];
    for (command, why) in cases {
        let mut p = probe(&json!({"command": command, "command_timeout": 0.5, "check": "t"}));
        let mut out = Vec::new();
        let started = Instant::now();
        let e = p.collect(Timestamp(1), &mut out).unwrap_err().to_string();
        assert!(e.contains(why), "{command}: {e}");
        assert!(out.is_empty(), "{command}: {out:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}

#[test]
fn perfdata_samples_from_a_script_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("check_fake");
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::write(
            &path,
            "#!/bin/sh\necho \"FAKE WARNING - a | 'rtt avg'=12.5ms;10;20;0; sent=4c lost=U;;\"\necho 'more | bytes=2KB used:pct=50%'\nexit 1\n",
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let mut p = probe(&json!({"command": path.to_str().unwrap(), "check": "fake"}));
    let out = testing::collect(p.as_mut(), 0.0);
    let et = |l: &str| format!("ps:tools:blipp:nagios:fake:{l}");
    assert_eq!(testing::int(&out, "node", &et("status")), 1);
    assert_eq!(text(&out, &et("state")), "WARNING");
    assert_eq!(testing::float(&out, "node", &et("rtt_avg")), 0.0125);
    assert_eq!(testing::int(&out, "node", &et("sent")), 4);
    assert_eq!(testing::int(&out, "node", &et("bytes")), 2048);
    assert_eq!(testing::int(&out, "node", &et("used_pct")), 50);
    assert!(
        testing::find(&out, "node", &et("lost")).is_none(),
        "U is unknown"
    );
    assert_eq!(out.len(), 6);
}

#[test]
fn check_name_must_fit_an_event_type() {
    let e = testing::try_build(
        "nagios",
        &json!({"command": "true", "check": "a:b"}),
        Path::new("/proc"),
    );
    assert!(e.is_err(), "the schema's pattern refuses it");
    assert_eq!(label_segment("rtt avg:x"), "rtt_avg_x");
}
