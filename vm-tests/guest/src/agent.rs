//! Running blippd inside the guest and reading what it reported: the
//! start-up log (which source each probe chose, and why it fell back) and
//! each probe's JSON-lines data file.

use std::io::{BufRead as _, BufReader};
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use blipp::probe::REGISTRY;

/// The probes every run configures: every module of the registry, so the
/// checks grow with the agent.
pub fn modules() -> Vec<&'static str> {
    REGISTRY.iter().map(|s| s.module).collect()
}

/// Where one probe's samples go in one run.
pub fn data_file(run: &str, module: &str) -> String {
    format!("/tmp/{run}-{module}.jsonl")
}

/// Writes a configuration running every probe each second in `auto` mode,
/// each into its own data file, the process and registration probes
/// following `process`, the command probes running blippd (the JSON
/// ones a blippd printing one sample, the traceroute ones a blippd
/// listing a probe named like a hop), the NetLogger probes following a log
/// written here, the counting probe counting UDP sent to `udp_port`;
/// returns its path.
pub fn write_config(run: &str, process: u32, udp_port: u16) -> std::io::Result<String> {
    let mut probes = serde_json::Map::new();
    for m in modules() {
        let mut probe = serde_json::json!({ "probe_module": m, "data_file": data_file(run, m) });
        // Probes that cannot run without a key of their own.
        match m {
            "process" => probe["pid"] = process.into(),
            // The idle process again, as a service known by its pidfile.
            "registration_probe" => {
                let pidfile = format!("/tmp/{run}-idle.pid");
                std::fs::write(&pidfile, format!("{process}\n"))?;
                probe["pidfile"] = pidfile.into();
                probe["service_type"] = "http://vmtest.example/idle".into();
            }
            // blippd is the one program in the guest: the command probes
            // run it (it prints "blippd X.Y.Z" and exits 0, a plugin's OK).
            "cmd" | "cmd_line_probe" => {
                probe["command"] = "/bin/blippd --version".into();
                probe["regex"] = r"blippd (?P<major>\d+)\.".into();
                probe["eventTypes"] =
                    serde_json::json!({ "major": "ps:tools:blipp:vmtest:blippd:major" });
            }
            "nagios" => probe["command"] = "/bin/blippd --version".into(),
            // `iptables` keeps the original's rule (TCP to port 22, in).
            "counting" => {
                probe["rules"] = serde_json::json!([{
                    "name": "vmtest-udp", "direction": "out", "protocol": "udp", "port": udp_port
                }]);
            }
            // blippd printing the one sample of a dummy probe: one JSON
            // document.
            "json_probe" | "ceph_probe" => {
                let inner = format!("/tmp/{run}-{m}-inner.json");
                std::fs::write(
                    &inner,
                    r#"{"properties":{"configurations":{"probes":{"d":{"probe_module":"dummy","mode":"proc"}}}}}"#,
                )?;
                probe["command"] =
                    format!("/bin/blippd --once --ini none --node-info none -c {inner}").into();
                probe["values"] = serde_json::json!({ "v": "/value" });
                probe["eventTypes"] =
                    serde_json::json!({ "v": "ps:tools:blipp:vmtest:json:value" });
            }
            // No traceroute in the guest: blippd --check lists a probe
            // named like one of traceroute's hop lines, which the probe
            // parses as hop 1 answering in 0.5 ms.
            "traceroute" | "traceroute_probe" => {
                let inner = format!("/tmp/{run}-{m}-inner.json");
                std::fs::write(
                    &inner,
                    r#"{"properties":{"configurations":{"probes":{" 1  10.0.2.15  0.5 ms":{"probe_module":"dummy"}}}}}"#,
                )?;
                probe["command"] =
                    format!("/bin/blippd --check --ini none --node-info none -c {inner}").into();
            }
            "netlogger" | "netlogger_probe" => {
                let log = format!("/tmp/{run}-{m}.log");
                std::fs::write(&log, "ts=2026-01-01T00:00:00Z event=vmtest VAL=1\n")?;
                probe["logfile"] = log.into();
            }
            _ => {}
        }
        probes.insert(m.to_owned(), probe);
    }
    let config = serde_json::json!({
        "status": "ON",
        "serviceType": "ps:tools:blipp",
        "name": "blipp-vm-test",
        "properties": { "configurations": {
            "probe_defaults": {
                "collection_schedule": "builtins.simple",
                "schedule_params": { "every": 1 },
                "reporting_params": 1,
                "mode": "auto"
            },
            "probes": probes
        }}
    });
    let path = format!("/tmp/{run}.json");
    std::fs::write(&path, config.to_string())?;
    Ok(path)
}

/// A running blippd.
pub struct Agent {
    child: Child,
    lines: Receiver<String>,
    log: Arc<Mutex<String>>,
}

/// Whom blippd runs as.
pub enum Who {
    Root,
    /// A plain user, without capabilities.
    User(u32),
    /// The eBPF unit's user with its capabilities.
    Unit(crate::unit::Identity),
}

/// How a probe started, from the agent's `probe started` log line.
#[derive(Clone, Debug)]
pub struct Started {
    /// Probe name.
    pub probe: String,
    /// `ebpf`, `proc`, `command` or `log`.
    pub source: String,
}

impl Agent {
    /// Starts `/bin/blippd -c config`, as `uid` when given, with `env`.
    pub fn start(config: &str, who: &Who, env: &[(&str, &str)]) -> std::io::Result<Self> {
        Self::spawn(&["-c", config], Stdio::null(), who, env)
    }

    /// Starts `/bin/blippd -c config` as root, its samples (stdout) going
    /// to `out`.
    pub fn start_printing(config: &str, out: std::fs::File) -> std::io::Result<Self> {
        Self::spawn(&["-c", config], Stdio::from(out), &Who::Root, &[])
    }

    fn spawn(
        args: &[&str],
        stdout: Stdio,
        who: &Who,
        env: &[(&str, &str)],
    ) -> std::io::Result<Self> {
        let mut cmd = Command::new("/bin/blippd");
        cmd.args(args)
            .args(["-d", "INFO"])
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::piped());
        match *who {
            Who::Root => {}
            // std drops supplementary groups too when it changes the uid.
            Who::User(uid) => {
                cmd.uid(uid).gid(uid);
            }
            Who::Unit(id) => {
                // SAFETY: `unit::enter` makes system calls only.
                unsafe {
                    cmd.pre_exec(move || crate::unit::enter(&id));
                }
            }
        }
        let mut child = cmd.spawn()?;
        let stderr = child
            .stderr
            .take()
            .ok_or_else(|| std::io::Error::other("no stderr"))?;
        let (tx, lines) = mpsc::channel();
        let log = Arc::new(Mutex::new(String::new()));
        let all = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(mut all) = all.lock() {
                    all.push_str(&line);
                    all.push('\n');
                }
                let _ = tx.send(line);
            }
        });
        Ok(Self { child, lines, log })
    }

    /// Waits until `count` probes have logged that they started.
    pub fn wait_started(
        &mut self,
        count: usize,
        timeout: Duration,
    ) -> Result<Vec<Started>, String> {
        let deadline = Instant::now() + timeout;
        let mut started = Vec::new();
        while started.len() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => started.extend(parse_started(&line)),
                Err(_) => {
                    return Err(format!(
                        "{} of {count} probes started; blippd said: {}",
                        started.len(),
                        self.log()
                    ));
                }
            }
        }
        Ok(started)
    }

    /// Everything blippd logged so far.
    pub fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// blippd's /proc/PID/status now.
    pub fn status(&self) -> String {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default()
    }

    /// Stops blippd with SIGTERM (it flushes and exits 0) and returns its
    /// status, or `None` when it had to be killed.
    pub fn stop(mut self, timeout: Duration) -> (Option<ExitStatus>, String) {
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + timeout;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(s)) => break Some(s),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break None;
                }
            }
        };
        // Let the reader thread take the last lines.
        std::thread::sleep(Duration::from_millis(100));
        (status, self.log())
    }
}

/// `... probe started probe=disk module=disk source="ebpf"` -> (disk, ebpf).
fn parse_started(line: &str) -> Option<Started> {
    let rest = &line[line.find("probe started")?..];
    let value = |key: &str| {
        let v = rest.split_whitespace().find_map(|w| w.strip_prefix(key))?;
        Some(v.trim_matches('"').to_owned())
    };
    Some(Started {
        probe: value("probe=")?,
        source: value("source=")?,
    })
}

/// One sample of a data file.
pub struct Sample {
    /// `node`, `disk:vda`, `port:eth0`...
    pub subject: String,
    /// The full event type.
    pub event_type: String,
    /// Integer value, when it is one.
    pub int: Option<u64>,
    /// `ebpf`, `proc`, `command` or `log`.
    pub source: String,
    /// When the probe read its source, µs since the epoch.
    pub ts: u64,
}

/// Reads a data file; lines that are not samples are errors.
pub fn read_samples(path: &str) -> Result<Vec<Sample>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    text.lines()
        .map(|l| {
            let v: serde_json::Value =
                serde_json::from_str(l).map_err(|e| format!("{path}: {e}: {l}"))?;
            let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_owned);
            Ok(Sample {
                subject: s("subject").ok_or_else(|| format!("{path}: no subject: {l}"))?,
                event_type: s("eventType").ok_or_else(|| format!("{path}: no eventType: {l}"))?,
                int: v.get("value").and_then(serde_json::Value::as_u64),
                source: s("source").ok_or_else(|| format!("{path}: no source: {l}"))?,
                ts: v
                    .get("ts")
                    .and_then(serde_json::Value::as_u64)
                    .ok_or_else(|| format!("{path}: no ts: {l}"))?,
            })
        })
        .collect()
}

/// The last integer value of `subject`'s event type ending in `suffix`
/// from `source`.
pub fn last(samples: &[Sample], subject: &str, suffix: &str, source: &str) -> Option<u64> {
    samples
        .iter()
        .rev()
        .find(|s| s.subject == subject && s.source == source && s.event_type.ends_with(suffix))
        .and_then(|s| s.int)
}

/// Waits until `module` has written a sample of `subject`'s event type
/// ending in `suffix` from `source`; false on timeout. The eBPF net probe
/// reports a port's counts only once it has anchored them to /proc's
/// (its second collection at the earliest), so traffic sent before that
/// would be compared with a count that is not reported yet.
pub fn wait_reported(
    run: &str,
    module: &str,
    (subject, suffix, source): (&str, &str, &str),
    timeout: Duration,
) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if read_samples(&data_file(run, module))
            .is_ok_and(|v| last(&v, subject, suffix, source).is_some())
        {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until the samples in `path` hold `count` collections of the cpu
/// probe (each probe stamps its own collections, all of a collection's
/// samples with one time); false on timeout.
pub fn wait_collections(path: &str, count: usize, timeout: Duration) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let mut times: Vec<u64> = read_samples(path)
            .map(|v| {
                v.iter()
                    .filter(|s| s.subject == "node" && s.event_type.contains(":cpu:"))
                    .map(|s| s.ts)
                    .collect()
            })
            .unwrap_or_default();
        times.sort_unstable();
        times.dedup();
        if times.len() >= count {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until every one of `probes` has written a sample read after
/// `since` (µs since the epoch) to its data file, i.e. until a collection
/// that saw everything done before `since` has been reported; false on
/// timeout. A fixed pause is not enough under TCG on a loaded host, where
/// one collection cycle can take seconds.
pub fn wait_collected_after(run: &str, probes: &[&str], since: u64, timeout: Duration) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let all = probes.iter().all(|m| {
            read_samples(&data_file(run, m)).is_ok_and(|v| v.iter().any(|s| s.ts > since))
        });
        if all {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn started_lines() {
        let s = parse_started(
            "2026-01-01T00:00:00Z  INFO blipp::arbiter: probe started probe=disk module=disk source=\"ebpf\"",
        )
        .unwrap();
        assert_eq!((s.probe.as_str(), s.source.as_str()), ("disk", "ebpf"));
        assert!(parse_started("WARN eBPF unavailable, falling back to /proc probe=disk").is_none());
    }
}
