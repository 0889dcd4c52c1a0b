//! The /proc fallback as a user runs it: `blippd --once --mode proc` on
//! fixture trees prints exactly the numbers in the files (every sample is
//! checked against values computed here, independently, from the fixture
//! text), and blippd without privileges keeps reporting from /proc and
//! says why it does not use eBPF.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use blipp_tests::{agent_bin, json_lines, require_root};
use serde_json::{Value, json};

const ET: &str = "ps:tools:blipp:linux:";

/// (subject, event type without the common prefix) -> value.
type Samples = BTreeMap<(String, String), Value>;

fn tree(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join(name)
        .join("proc")
}

fn read(root: &Path, rel: &str) -> String {
    std::fs::read_to_string(root.join(rel)).unwrap()
}

fn numbers<'a>(tokens: impl Iterator<Item = &'a str>) -> Vec<u64> {
    tokens.map(|t| t.parse().unwrap()).collect()
}

/// Runs blippd, checks every line is a sample from /proc, and returns them
/// keyed by subject and event type (which must be unique).
fn run(args: &[&str], config: Option<&Path>) -> Samples {
    let mut cmd = Command::new(agent_bin("blippd"));
    cmd.args(args);
    if let Some(c) = config {
        cmd.arg("-c").arg(c);
    }
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let mut samples = Samples::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let s: Value = serde_json::from_str(line).unwrap();
        assert_eq!(s["source"], "proc", "{line}");
        assert!(
            s.get("reset").is_none(),
            "a single read has no resets: {line}"
        );
        assert!(s["ts"].as_u64().is_some(), "{line}");
        let event_type = s["eventType"].as_str().unwrap();
        let key = (
            s["subject"].as_str().unwrap().to_owned(),
            event_type.strip_prefix(ET).unwrap().to_owned(),
        );
        assert!(
            samples.insert(key, s["value"].clone()).is_none(),
            "duplicate {line}"
        );
    }
    samples
}

/// What the cpu probe's first read must print: each state's share of the
/// ticks since boot (guest is inside user, so not in the total), and the
/// load averages.
fn expect_cpu(root: &Path, percpu: bool, want: &mut Samples) {
    const STATES: [&str; 9] = [
        "user", "nice", "system", "idle", "iowait", "hwirq", "swirq", "steal", "guest",
    ];
    for line in read(root, "stat").lines() {
        let mut tokens = line.split_whitespace();
        let key = tokens.next().unwrap();
        let subject = match key.strip_prefix("cpu") {
            Some("") => "node".to_owned(),
            Some(n) if percpu => format!("cpu:{n}"),
            _ => continue,
        };
        let ticks = numbers(tokens);
        let total: u64 = ticks.iter().take(8).sum();
        for (state, t) in STATES.iter().zip(&ticks) {
            want.insert(
                (subject.clone(), format!("cpu:utilization:{state}")),
                json!(*t as f64 / total as f64),
            );
        }
    }
    let load = read(root, "loadavg");
    let load: Vec<f64> = load
        .split_whitespace()
        .take(3)
        .map(|t| t.parse().unwrap())
        .collect();
    for (name, v) in ["onemin", "fivemin", "fifteenmin"].iter().zip(load) {
        want.insert(("node".into(), format!("cpu:load:{name}")), json!(v));
    }
}

fn expect_mem(root: &Path, want: &mut Samples) {
    let meminfo = read(root, "meminfo");
    let kb = |key: &str| -> Option<u64> {
        meminfo.lines().find_map(|l| {
            let rest = l.strip_prefix(key)?.strip_prefix(':')?;
            rest.split_whitespace().next()?.parse().ok()
        })
    };
    let mut put = |q: &str, v: Option<u64>| {
        if let Some(v) = v {
            want.insert(("node".into(), format!("memory:utilization:{q}")), json!(v));
        }
    };
    let used = kb("MemTotal").unwrap() - kb("MemFree").unwrap();
    match std::fs::read_to_string(root.join("user_beancounters")) {
        Ok(bc) => {
            let held = |resource: &str| -> u64 {
                bc.lines()
                    .find_map(|l| {
                        let t: Vec<&str> = l.split_whitespace().collect();
                        let at = t.iter().position(|x| *x == resource)?;
                        t.get(at + 1)?.parse().ok()
                    })
                    .unwrap()
            };
            // SAFETY: sysconf has no preconditions.
            let page = u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap();
            put("free", kb("MemFree"));
            put("used", Some(held("physpages") * (page / 1024)));
            put("kernel", Some(held("kmemsize") / 1024));
        }
        Err(_) => {
            put("free", kb("MemFree"));
            put("used", Some(used));
            put("buffer", kb("Buffers"));
            put("cache", kb("Cached"));
            put("kernel", kb("Slab"));
            put("available", kb("MemAvailable"));
            put(
                "swap:used",
                Some(kb("SwapTotal").unwrap() - kb("SwapFree").unwrap()),
            );
            put("swap:free", kb("SwapFree"));
            put("dirty", kb("Dirty"));
        }
    }
}

fn expect_net(root: &Path, want: &mut Samples) {
    for line in read(root, "net/dev").lines().skip(2) {
        let (name, rest) = line.split_once(':').unwrap();
        let v = numbers(rest.split_whitespace());
        let subject = format!("port:{}", name.trim());
        let values = [
            ("utilization:bytes:in", v[0]),
            ("utilization:bytes:out", v[8]),
            ("ip:utilization:packets:in", v[1]),
            ("ip:utilization:packets:out", v[9]),
            ("ip:utilization:errors", v[2] + v[10]),
            ("ip:utilization:drops", v[3] + v[11]),
            ("ip:utilization:errors:in", v[2]),
            ("ip:utilization:errors:out", v[10]),
            ("ip:utilization:drops:in", v[3]),
            ("ip:utilization:drops:out", v[11]),
        ];
        for (q, v) in values {
            want.insert((subject.clone(), format!("network:{q}")), json!(v));
        }
    }
    let snmp = read(root, "net/snmp");
    let lines: Vec<&str> = snmp.lines().collect();
    let column = |proto: &str, name: &str| -> u64 {
        let i = lines
            .iter()
            .position(|l| l.starts_with(&format!("{proto}: ")))
            .unwrap();
        let at = lines[i].split_whitespace().position(|c| c == name).unwrap();
        lines[i + 1]
            .split_whitespace()
            .nth(at)
            .unwrap()
            .parse()
            .unwrap()
    };
    for (q, proto, name) in [
        ("tcp:utilization:segments:in", "Tcp", "InSegs"),
        ("tcp:utilization:segments:out", "Tcp", "OutSegs"),
        ("tcp:utilization:retrans", "Tcp", "RetransSegs"),
        ("udp:utilization:datagrams:in", "Udp", "InDatagrams"),
        ("udp:utilization:datagrams:out", "Udp", "OutDatagrams"),
    ] {
        want.insert(
            ("node".into(), format!("network:{q}")),
            json!(column(proto, name)),
        );
    }
}

fn expect_disk(root: &Path, want: &mut Samples) {
    const FULL: [&str; 17] = [
        "requests:read",
        "merged:read",
        "sectors:read",
        "time:read",
        "requests:write",
        "merged:write",
        "sectors:write",
        "time:write",
        "inprogress",
        "time:io",
        "time:weighted",
        "requests:discard",
        "merged:discard",
        "sectors:discard",
        "time:discard",
        "requests:flush",
        "time:flush",
    ];
    const OLD_PARTITION: [&str; 4] = [
        "requests:read",
        "sectors:read",
        "requests:write",
        "sectors:write",
    ];
    for line in read(root, "diskstats").lines() {
        let tokens: Vec<&str> = line.split_whitespace().collect();
        let v = numbers(tokens[3..].iter().copied());
        let names: &[&str] = match tokens.len() {
            7 => &OLD_PARTITION,
            14 => &FULL[..11],
            18 => &FULL[..15],
            20 => &FULL,
            n => panic!("{n} tokens"),
        };
        let named: BTreeMap<&str, u64> = names.iter().copied().zip(v).collect();
        let used = [
            "requests:read",
            "requests:write",
            "requests:discard",
            "requests:flush",
        ]
        .iter()
        .any(|q| named.get(q).is_some_and(|v| *v > 0));
        if !used {
            continue;
        }
        for (q, v) in named {
            want.insert(
                (format!("disk:{}", tokens[2]), format!("disk:{q}")),
                json!(v),
            );
        }
    }
}

fn expect_all(root: &Path, percpu: bool) -> Samples {
    let mut want = Samples::new();
    expect_cpu(root, percpu, &mut want);
    expect_mem(root, &mut want);
    expect_net(root, &mut want);
    expect_disk(root, &mut want);
    want
}

#[test]
fn once_on_a_fixture_tree_prints_exactly_the_files_values() {
    let root = tree("host");
    // Nothing of these four probes comes from /sys: an empty one will do.
    let sys = tempfile::tempdir().unwrap();
    let got = run(
        &[
            "--once",
            "--mode",
            "proc",
            "--proc-dir",
            root.to_str().unwrap(),
            "--sys-dir",
            sys.path().to_str().unwrap(),
        ],
        None,
    );
    let want = expect_all(&root, false);
    assert_eq!(got, want);
    // The fixture exercises what it should: 10-column CPU line, every
    // meminfo quantity, three interfaces, and 20-token disks with unused
    // ones left out.
    assert_eq!(got.len(), 9 + 3 + 9 + 3 * 10 + 5 + 4 * 17);
}

#[test]
fn openvz_host_of_linux_2_6_18_from_configuration_keys() {
    let root = tree("openvz");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("blipp.json");
    let doc = json!({"properties": {"configurations": {
        "probe_defaults": {"mode": "proc", "proc_dir": root},
        "probes": {
            "cpu": {"probe_module": "cpu", "percpu": true},
            "mem": {"probe_module": "mem"},
            "net": {"probe_module": "net"},
            "disk": {"probe_module": "disk"},
        }
    }}});
    std::fs::write(&config, doc.to_string()).unwrap();
    let got = run(&["--once"], Some(&config));
    let want = expect_all(&root, true);
    assert_eq!(got, want);
    // 8 CPU columns on 3 subjects, the original's three OpenVZ memory
    // figures, a 14-token disk and two 7-token partitions.
    assert_eq!(got.len(), 3 * 8 + 3 + 3 + 2 * 10 + 5 + 11 + 2 * 4);
}

/// A copy of blippd that an unprivileged user can execute, in a directory
/// it can read, with a configuration collecting every second.
fn unprivileged_setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = dir.path().join("blippd");
    blipp_tests::copy_program(&agent_bin("blippd"), &bin);
    let config = dir.path().join("blipp.json");
    let doc = json!({"properties": {"configurations": {
        "probe_defaults": {"schedule_params": {"every": 1}},
        "probes": {
            "cpu": {"probe_module": "cpu"},
            "mem": {"probe_module": "mem"},
            "net": {"probe_module": "net"},
            "disk": {"probe_module": "disk"},
        }
    }}});
    std::fs::write(&config, doc.to_string()).unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    (dir, bin, config)
}

#[test]
fn unprivileged_blippd_keeps_reporting_from_proc_and_says_why() {
    if !require_root("switching to an unprivileged user") {
        return;
    }
    let (_dir, bin, config) = unprivileged_setup();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(&bin)
        .args(["-d", "info", "--duration", "4.5", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // Why eBPF is not used, once for each probe that wanted it.
    let fallback: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("eBPF unavailable, falling back to /proc"))
        .collect();
    assert_eq!(fallback.len(), 2, "{stderr}");
    for probe in ["disk", "net"] {
        let line = fallback
            .iter()
            .find(|l| l.contains(&format!("probe={probe} ")))
            .unwrap_or_else(|| panic!("no fallback line for {probe}: {stderr}"));
        assert!(line.contains("reason="), "{line}");
        assert!(
            !line.contains("mode is ebpf"),
            "mode auto: the reason is the kernel's, not a mode error: {line}"
        );
        assert!(
            stderr.contains(&format!(r#"probe={probe} module={probe} source="proc""#)),
            "{stderr}"
        );
    }
    let samples = json_lines(&String::from_utf8(out.stdout).unwrap());
    assert!(samples.iter().all(|s| s["source"] == "proc"));
    // Every probe, every second of the run: at 0, 1, 2, 3 and 4 s.
    for et in [
        "cpu:load:onemin",
        "memory:utilization:free",
        "network:utilization:bytes:in",
        "disk:requests:read",
    ] {
        let full = format!("{ET}{et}");
        let times: std::collections::BTreeSet<u64> = samples
            .iter()
            .filter(|s| s["eventType"] == full.as_str())
            .map(|s| s["ts"].as_u64().unwrap())
            .collect();
        assert!(times.len() >= 4, "{et}: {} collections", times.len());
    }
    // From the second collection on, the disk probe reports rates.
    assert!(
        samples
            .iter()
            .any(|s| s["eventType"] == format!("{ET}disk:utilization:busy").as_str()),
        "no disk rates"
    );
}
