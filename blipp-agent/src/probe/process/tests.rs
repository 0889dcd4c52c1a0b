use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use super::*;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/probe/process/fixtures")
}

fn fixture_probe(selector: Selector) -> ProcessProbe {
    let dir = fixtures();
    ProcessProbe::new(selector, &dir.join("proc"), &dir.join("sys"))
}

const T0: Timestamp = Timestamp(1_716_990_000_000_000);

fn collect(p: &mut ProcessProbe, ts: Timestamp) -> Vec<Sample> {
    let mut out = Vec::new();
    p.collect(ts, &mut out).unwrap();
    out
}

fn value(samples: &[Sample], suffix: &str) -> Option<Value> {
    let event_type = format!("{PREFIX}{suffix}");
    samples
        .iter()
        .find(|s| *s.event_type == *event_type)
        .map(|s| s.value.clone())
}

fn int(samples: &[Sample], suffix: &str) -> Option<u64> {
    match value(samples, suffix)? {
        Value::Int(v) => Some(v),
        other => panic!("{suffix}: {other:?}"),
    }
}

fn float(samples: &[Sample], suffix: &str) -> Option<f64> {
    match value(samples, suffix)? {
        Value::Float(v) => Some(v),
        other => panic!("{suffix}: {other:?}"),
    }
}

/// By name: the oldest live `nginx` (the zombie 999 is older but has
/// exited), with exactly the fixture's values.
#[test]
fn fixture_by_name() {
    let mut p = fixture_probe(Selector::Name("nginx".to_owned()));
    let s = collect(&mut p, T0);
    assert!(s.iter().all(|s| &*s.subject == "process:nginx" && !s.reset));
    assert_eq!(int(&s, "pid"), Some(4242));
    assert_eq!(value(&s, "state"), Some(Value::Text(Name::from("S"))));
    // btime + starttime / USER_HZ (100 on every Linux)
    assert_eq!(int(&s, "start_time"), Some(1_716_900_010));
    assert_eq!(int(&s, "threads"), Some(1));
    assert_eq!(int(&s, "memory:virtual"), Some(102_400));
    assert_eq!(int(&s, "memory:rss"), Some(10_240));
    assert_eq!(int(&s, "memory:swap"), Some(128));
    assert_eq!(int(&s, "faults:major"), Some(12));
    assert_eq!(int(&s, "context_switches:voluntary"), Some(345));
    assert_eq!(int(&s, "context_switches:involuntary"), Some(67));
    assert_eq!(int(&s, "io:bytes:read"), Some(8_192_000));
    assert_eq!(int(&s, "io:bytes:write"), Some(4_096_000));
    assert_eq!(int(&s, "fds"), Some(4));
    // One reading: no interval, no CPU share.
    assert_eq!(float(&s, "cpu:utilization"), None);
    // Ten seconds later, the same files: no CPU used.
    let s = collect(&mut p, Timestamp(T0.0 + 10_000_000));
    assert_eq!(float(&s, "cpu:utilization"), Some(0.0));
    assert_eq!(float(&s, "cpu:utilization:user"), Some(0.0));
}

#[test]
fn fixture_by_regex_pid_and_long_name() {
    let re = Selector::Regex(regex::Regex::new("^nginx: worker").unwrap());
    let s = collect(&mut fixture_probe(re), T0);
    assert_eq!(int(&s, "pid"), Some(4243));
    assert_eq!(int(&s, "fds"), Some(12));
    assert_eq!(value(&s, "state"), Some(Value::Text(Name::from("R"))));
    assert!(s.iter().all(|s| &*s.subject == "process:^nginx: worker"));

    // comm is cut at 15 characters; argv[0]'s base name is not.
    let long = Selector::Name("a-very-long-process-name".to_owned());
    let s = collect(&mut fixture_probe(long), T0);
    assert_eq!(int(&s, "pid"), Some(777));
    assert_eq!(int(&s, "threads"), Some(8));
    let truncated = Selector::Name("a-very-long".to_owned());
    assert!(collect(&mut fixture_probe(truncated), T0).is_empty());

    assert_eq!(
        int(&collect(&mut fixture_probe(Selector::Pid(4243)), T0), "pid"),
        Some(4243)
    );
    // A zombie has exited: nothing to report.
    assert!(collect(&mut fixture_probe(Selector::Pid(999)), T0).is_empty());
    assert!(collect(&mut fixture_probe(Selector::Pid(31_000)), T0).is_empty());
}

#[test]
fn fixture_by_pidfile() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("nginx.pid");
    let mut p = fixture_probe(Selector::Pidfile(pidfile.clone()));
    // No pidfile yet: the service is not running.
    assert!(collect(&mut p, T0).is_empty());
    std::fs::write(&pidfile, "4243\n").unwrap();
    assert_eq!(int(&collect(&mut p, T0), "pid"), Some(4243));
    let mut bad = fixture_probe(Selector::Pidfile(dir.path().join("bad.pid")));
    std::fs::write(dir.path().join("bad.pid"), "nginx\n").unwrap();
    let mut out = Vec::new();
    let e = bad.collect(T0, &mut out).unwrap_err();
    assert!(e.to_string().contains("bad.pid"), "{e}");
}

fn copy_tree(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// While the followed process lives, a new, older match does not steal it
/// (no rescan); once it is gone, the selector is resolved again and the
/// new process's counters are flagged as restarted, once.
#[test]
fn fixture_follows_a_restart_without_rescanning_while_alive() {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&fixtures(), dir.path());
    let proc_dir = dir.path().join("proc");
    let mut p = ProcessProbe::new(
        Selector::Name("nginx".to_owned()),
        &proc_dir,
        &dir.path().join("sys"),
    );
    assert_eq!(int(&collect(&mut p, T0), "pid"), Some(4242));
    // An nginx that started earlier than 4242 appears as pid 100.
    let stat = std::fs::read_to_string(proc_dir.join("4242/stat")).unwrap();
    let older = stat
        .replacen("4242 (nginx) S 1 4242 4242", "100 (nginx) S 1 100 100", 1)
        .replacen(" 1000 104857600 ", " 10 104857600 ", 1);
    assert_ne!(older, stat);
    std::fs::create_dir_all(proc_dir.join("100/fd")).unwrap();
    copy_tree(&proc_dir.join("4242"), &proc_dir.join("100"));
    std::fs::write(proc_dir.join("100/stat"), older).unwrap();
    let s = collect(&mut p, T0);
    assert_eq!(int(&s, "pid"), Some(4242), "still following the live one");
    assert!(s.iter().all(|s| !s.reset));
    // 4242 exits: the oldest match now is 100.
    std::fs::remove_dir_all(proc_dir.join("4242")).unwrap();
    let s = collect(&mut p, T0);
    assert_eq!(int(&s, "pid"), Some(100));
    let flagged: Vec<&str> = s
        .iter()
        .filter(|s| s.reset)
        .map(|s| &s.event_type[PREFIX.len()..])
        .collect();
    assert_eq!(
        flagged,
        [
            "faults:major",
            "context_switches:voluntary",
            "context_switches:involuntary",
            "io:bytes:read",
            "io:bytes:write"
        ]
    );
    assert!(collect(&mut p, T0).iter().all(|s| !s.reset));
}

/// Issue 16: a fixture tree whose process files never end or never
/// answer fails the collection, naming the file, instead of reading
/// `/dev/zero` forever or blocking on a FIFO.
#[test]
fn fixture_files_that_never_end_or_block_are_refused() {
    for (file, make) in [("stat", "zero"), ("status", "fifo"), ("io", "zero")] {
        let dir = tempfile::tempdir().unwrap();
        copy_tree(&fixtures(), dir.path());
        let proc_dir = dir.path().join("proc");
        let path = proc_dir.join("4242").join(file);
        std::fs::remove_file(&path).unwrap();
        if make == "zero" {
            std::os::unix::fs::symlink("/dev/zero", &path).unwrap();
        } else {
            let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
            // SAFETY: a NUL-terminated path.
            assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        }
        let mut p = ProcessProbe::new(Selector::Pid(4242), &proc_dir, &dir.path().join("sys"));
        let e = p.collect(T0, &mut Vec::new()).unwrap_err().to_string();
        assert!(
            e.contains(&format!("reading {file}")) && e.contains("not a regular file"),
            "{file}: {e}"
        );
    }
}

/// A real child process with a command line no other process has.
fn sleeper(tag: &str) -> Child {
    Command::new("sleep").arg(tag).spawn().expect("sleep runs")
}

fn stop(mut child: Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}

fn live_probe(selector: Selector) -> ProcessProbe {
    ProcessProbe::new(selector, Path::new("/proc"), Path::new("/sys"))
}

/// A real process killed and started again is followed to its new pid, by
/// regex and by pidfile; in between there is nothing to report.
#[test]
fn real_process_restarted() {
    let tag = format!("3601.{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("sleeper.pid");
    let mut by_regex = live_probe(Selector::Regex(
        regex::Regex::new(&format!("^sleep {}$", regex::escape(&tag))).unwrap(),
    ));
    let mut by_pidfile = live_probe(Selector::Pidfile(pidfile.clone()));

    let first = sleeper(&tag);
    std::fs::write(&pidfile, format!("{}\n", first.id())).unwrap();
    // Give exec a moment so that the command line is sleep's.
    std::thread::sleep(Duration::from_millis(200));
    for p in [&mut by_regex, &mut by_pidfile] {
        let s = collect(p, Timestamp::now());
        assert_eq!(int(&s, "pid"), Some(u64::from(first.id())));
        let fds = std::fs::read_dir(format!("/proc/{}/fd", first.id()))
            .unwrap()
            .count();
        assert_eq!(int(&s, "fds"), Some(fds as u64));
        assert!(int(&s, "memory:rss").unwrap() > 0);
        assert!(s.iter().all(|s| !s.reset));
    }
    stop(first);
    for p in [&mut by_regex, &mut by_pidfile] {
        assert!(
            collect(p, Timestamp::now()).is_empty(),
            "the process is gone"
        );
    }

    let second = sleeper(&tag);
    std::fs::write(&pidfile, format!("{}\n", second.id())).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    for p in [&mut by_regex, &mut by_pidfile] {
        let s = collect(p, Timestamp::now());
        assert_eq!(int(&s, "pid"), Some(u64::from(second.id())));
        assert_eq!(
            s.iter()
                .find(|s| s.event_type.ends_with("faults:major"))
                .map(|s| s.reset),
            Some(true),
            "a restarted process's counters start again"
        );
    }
    stop(second);
}

/// A busy process uses a measurable share of the host's CPU, never more
/// than all of it; user + system = total.
#[test]
fn real_busy_process_cpu_share() {
    let script = format!("while :; do :; done # blipp {}", std::process::id());
    let mut child = Command::new("sh").args(["-c", &script]).spawn().unwrap();
    let mut p = live_probe(Selector::Pid(i32::try_from(child.id()).unwrap()));
    collect(&mut p, Timestamp::now());
    std::thread::sleep(Duration::from_millis(1500));
    let s = collect(&mut p, Timestamp::now());
    child.kill().unwrap();
    child.wait().unwrap();
    let total = float(&s, "cpu:utilization").unwrap();
    let user = float(&s, "cpu:utilization:user").unwrap();
    let system = float(&s, "cpu:utilization:system").unwrap();
    assert!(total > 0.01 && total <= 1.0, "{total}");
    assert!(
        (user + system - total).abs() < 1e-9,
        "{user} + {system} != {total}"
    );
    assert_eq!(value(&s, "state"), Some(Value::Text(Name::from("R"))));
}

/// The probe's options: exactly one selector, a valid regex.
#[test]
fn options() {
    let build = |probe: &str| {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.json");
        std::fs::write(
            &file,
            format!(r#"{{"properties":{{"configurations":{{"probes":{{"p":{probe}}}}}}}}}"#),
        )
        .unwrap();
        let config = crate::config::load(Some(&file), &crate::config::Overrides::default())
            .map_err(|e| e.to_string())?;
        let mut kernel = crate::source::ebpf::KernelAccess::Unavailable("test".to_owned());
        let mut ctx = BuildContext {
            kernel: &mut kernel,
            node: Name::from("node"),
            costs: Default::default(),
        };
        super::super::build(&config.probes[0], &mut ctx)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    build(r#"{"probe_module":"process","process_name":"sshd"}"#).unwrap();
    build(r#"{"probe_module":"process","pid":1}"#).unwrap();
    build(r#"{"probe_module":"process","pidfile":"/run/sshd.pid"}"#).unwrap();
    build(r#"{"probe_module":"process","regex":"^/usr/sbin/sshd"}"#).unwrap();
    let e = build(r#"{"probe_module":"process","pid":1,"process_name":"x"}"#).unwrap_err();
    assert!(e.contains("/probes/p"), "{e}");
    let e = build(r#"{"probe_module":"process"}"#).unwrap_err();
    assert!(e.contains("/probes/p"), "{e}");
    let e = build(r#"{"probe_module":"process","regex":"(unclosed"}"#).unwrap_err();
    assert!(e.contains("/probes/p/regex"), "{e}");
    let e = build(r#"{"probe_module":"process","pid":"one"}"#).unwrap_err();
    assert!(e.contains("/probes/p/pid"), "{e}");
    let e = build(r#"{"probe_module":"process","pid":1,"percpu":true}"#).unwrap_err();
    assert!(e.contains("percpu"), "{e}");
}
