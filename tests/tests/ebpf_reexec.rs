//! blippd re-executes itself once its eBPF programs are attached: the same
//! process (the PID the test started) goes on in a fresh image that
//! inherited the programs, maps and attachments, without the memory that
//! loading took. Its peak resident memory is far below the loading
//! image's (which it logs before the exec), eBPF samples flow, the
//! capabilities only loading needed are gone, and nothing of the handover
//! is left (environment variable, memfd, descriptors children would
//! inherit). `--no-reexec` keeps the loading image, and so do a failed
//! exec (injected with strace) and a start through the dynamic loader
//! (where /proc/self/exe is the loader); an image that is handed a bad
//! manifest refuses to start.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]
#![allow(clippy::print_stderr, reason = "the figures are printed for the log")]

use std::process::{Child, Command, Stdio};

use blipp_tests::daemon::wait_for;
use blipp_tests::{agent_bin, cap_set, json_lines, require_root, require_tool, status_field};
use serde_json::{Value, json};

const REEXEC: &str = "re-executing to leave the loading memory behind";
const INHERITED: &str = "inherited from the image that loaded them";
const CAP_SYS_ADMIN: u32 = 21;
const CAP_BPF: u32 = 39;

/// blippd with the disk, net and procevents probes in `auto` mode, every
/// second, for `secs`; stdout and stderr go to files in `dir`.
fn start(dir: &tempfile::TempDir, secs: u32, extra: &[&str]) -> Child {
    let config = dir.path().join("blipp.json");
    let doc = json!({"properties": {"configurations": {
        "probe_defaults": {"schedule_params": {"every": 1}, "mode": "auto"},
        "probes": {
            "disk": {"probe_module": "disk"},
            "net": {"probe_module": "net"},
            "procevents": {"probe_module": "procevents"},
        }
    }}});
    std::fs::write(&config, doc.to_string()).unwrap();
    let out = std::fs::File::create(dir.path().join("stdout")).unwrap();
    let err = std::fs::File::create(dir.path().join("stderr")).unwrap();
    Command::new(agent_bin("blippd"))
        .arg("-c")
        .arg(&config)
        .args(["--control-socket", "none", "--duration", &secs.to_string()])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap()
}

/// Waits until blippd's log (`stderr` in `dir`) says that `probes`
/// probes started: start-up, the re-execution and the capability drop
/// come before.
fn wait_started(dir: &tempfile::TempDir, probes: usize) {
    let log = || std::fs::read_to_string(dir.path().join("stderr")).unwrap_or_default();
    wait_for(30, "the probes to start", log, || {
        log().matches("probe started").count() >= probes
    });
}

/// What the test saw of a running blippd.
struct Seen {
    status: String,
    environ: Vec<u8>,
    comm: String,
    /// Where each descriptor points, with its open flags.
    fds: Vec<(String, u32)>,
}

impl Seen {
    /// The memfd that carried the manifest is no longer open.
    fn assert_handover_closed(&self) {
        assert!(
            self.fds.iter().all(|(t, _)| !t.contains("blipp-handover")),
            "the manifest's memfd is closed: {:?}",
            self.fds
        );
    }
}

fn look_at(pid: u32) -> Seen {
    let proc = format!("/proc/{pid}");
    let mut fds = Vec::new();
    for entry in std::fs::read_dir(format!("{proc}/fd")).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        let Ok(info) = std::fs::read_to_string(format!("{proc}/fdinfo/{name}")) else {
            continue;
        };
        let flags = u32::from_str_radix(status_field(&info, "flags"), 8).unwrap();
        fds.push((target.display().to_string(), flags));
    }
    Seen {
        status: std::fs::read_to_string(format!("{proc}/status")).unwrap(),
        environ: std::fs::read(format!("{proc}/environ")).unwrap(),
        comm: std::fs::read_to_string(format!("{proc}/comm")).unwrap(),
        fds,
    }
}

fn finish(mut child: Child, dir: &tempfile::TempDir) -> (String, Vec<Value>) {
    let status = child.wait().unwrap();
    let stderr = std::fs::read_to_string(dir.path().join("stderr")).unwrap();
    assert!(status.success(), "{status}: {stderr}");
    let samples = json_lines(&std::fs::read_to_string(dir.path().join("stdout")).unwrap());
    (stderr, samples)
}

/// The `peak_rss_kb=N` of the re-execution line.
fn logged_peak_kb(stderr: &str) -> u64 {
    let line = stderr.lines().find(|l| l.contains(REEXEC)).unwrap();
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("peak_rss_kb="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no peak_rss_kb in {line}"))
}

fn ebpf_samples(samples: &[Value], event_part: &str) -> usize {
    samples
        .iter()
        .filter(|s| s["source"] == "ebpf")
        .filter(|s| s["eventType"].as_str().unwrap().contains(event_part))
        .count()
}

#[test]
fn reexecutes_in_the_same_process_and_leaves_the_loading_peak_behind() {
    if !require_root("blippd's eBPF probes") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let child = start(&dir, 6, &[]);
    let pid = child.id();
    wait_started(&dir, 3);
    // The process the test started, by its PID: still there, in the new
    // image.
    let seen = look_at(pid);
    let (stderr, samples) = finish(child, &dir);

    assert_eq!(
        stderr.matches(REEXEC).count(),
        1,
        "one re-execution: {stderr}"
    );
    let inherited = stderr.lines().find(|l| l.contains(INHERITED));
    let inherited = inherited.unwrap_or_else(|| panic!("no inherited line: {stderr}"));
    assert_eq!(stderr.matches(INHERITED).count(), 1, "{stderr}");
    assert!(
        inherited.contains("block_rq_complete") && inherited.contains("net_dev_xmit"),
        "{inherited}"
    );
    // The forwarder of the programs' log records (the process programs
    // write some) is found again in the new image.
    assert!(inherited.contains("kernel_log=true"), "{inherited}");
    // Each probe starts once, in the new image.
    assert_eq!(
        stderr.matches("probe started probe=disk").count(),
        1,
        "{stderr}"
    );

    let peak = logged_peak_kb(&stderr);
    let hwm: u64 = status_field(&seen.status, "VmHWM").parse().unwrap();
    eprintln!("peak before the exec {peak} kB, VmHWM after {hwm} kB");
    // Loading holds the kernel's BTF (5 MB here, mapped or read),
    // blippd's index of its types and the BTF aya attaches with, an entry
    // per type id: some 8 MB on a 6.18 kernel, which the new image never
    // holds.
    assert!(
        peak > hwm + 4_000,
        "the new image's peak {hwm} kB is not well below the loading image's {peak} kB"
    );
    assert_eq!(seen.comm.trim_end(), "blippd", "the process keeps its name");
    for set in ["CapEff", "CapPrm", "CapBnd"] {
        let caps = cap_set(&seen.status, set);
        for bit in [CAP_SYS_ADMIN, CAP_BPF] {
            assert_eq!(caps & (1 << bit), 0, "{set} still has capability {bit}");
        }
    }
    // Only what the test's own environment holds (cargo xtask test sets
    // BLIPP_ variables of its own), nothing the handover added.
    let ours: Vec<Vec<u8>> = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k.into_encoded_bytes();
            kv.push(b'=');
            kv.extend(v.into_encoded_bytes());
            kv
        })
        .collect();
    let added: Vec<String> = seen
        .environ
        .split(|&b| b == 0)
        .filter(|v| v.starts_with(b"BLIPP_") && !ours.iter().any(|o| o == v))
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect();
    assert!(
        added.is_empty(),
        "the handover leaves no variable in the environment: {added:?}"
    );
    seen.assert_handover_closed();
    let bpf: Vec<&(String, u32)> = seen
        .fds
        .iter()
        .filter(|(t, _)| t.starts_with("anon_inode:bpf") || t == "anon_inode:[perf_event]")
        .collect();
    assert!(bpf.len() > 10, "programs, maps and links: {bpf:?}");
    assert!(
        bpf.iter()
            .all(|(_, flags)| flags & libc::O_CLOEXEC as u32 != 0),
        "children of the new image inherit no BPF descriptor: {bpf:?}"
    );

    let disk = ebpf_samples(&samples, ":disk:");
    let net = ebpf_samples(&samples, ":network:");
    eprintln!("eBPF samples: disk {disk}, network {net}");
    assert!(disk > 0 && net > 0, "eBPF samples flow after the exec");
}

#[test]
fn no_reexec_keeps_the_loading_image() {
    if !require_root("blippd's eBPF probes") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let child = start(&dir, 4, &["--no-reexec"]);
    let pid = child.id();
    wait_started(&dir, 3);
    let seen = look_at(pid);
    let (stderr, samples) = finish(child, &dir);
    assert!(!stderr.contains(REEXEC), "{stderr}");
    assert!(!stderr.contains(INHERITED), "{stderr}");
    assert!(
        stderr.contains("capabilities only loading needed are dropped"),
        "{stderr}"
    );
    let caps = cap_set(&seen.status, "CapBnd");
    assert_eq!(caps & (1 << CAP_BPF), 0, "CAP_BPF dropped in process");
    // The loading stays in this image's peak: the kernel's BTF, parsed.
    let hwm: u64 = status_field(&seen.status, "VmHWM").parse().unwrap();
    eprintln!("VmHWM without re-execution {hwm} kB");
    assert!(hwm > 25_000, "VmHWM {hwm} kB");
    assert!(
        ebpf_samples(&samples, ":disk:") > 0,
        "eBPF samples in process"
    );
}

/// The PID of the only child of `parent`.
fn only_child(parent: u32) -> u32 {
    let children =
        std::fs::read_to_string(format!("/proc/{parent}/task/{parent}/children")).unwrap();
    let children: Vec<u32> = children
        .split_whitespace()
        .map(|c| c.parse().unwrap())
        .collect();
    assert_eq!(children.len(), 1, "{children:?}");
    children[0]
}

#[test]
fn a_failed_exec_carries_on_in_process() {
    if !require_root("blippd's eBPF probes") {
        return;
    }
    if !require_tool("strace", "a failed exec injected into blippd") {
        return;
    }
    // strace makes blippd's first execve after its start, the re-execution,
    // fail with EACCES.
    let dir = tempfile::tempdir().unwrap();
    let config = disk_only_config(&dir);
    let out = std::fs::File::create(dir.path().join("stdout")).unwrap();
    let err = std::fs::File::create(dir.path().join("stderr")).unwrap();
    let strace = Command::new("strace")
        .args(["-f", "-o", "/dev/null", "-e", "trace=execve"])
        .args(["-e", "inject=execve:error=EACCES:when=1"])
        .arg(agent_bin("blippd"))
        .arg("-c")
        .arg(&config)
        .args(["--control-socket", "none", "--duration", "5"])
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap();
    wait_started(&dir, 1);
    let seen = look_at(only_child(strace.id()));
    let (stderr, samples) = finish(strace, &dir);
    assert_eq!(stderr.matches(REEXEC).count(), 1, "{stderr}");
    assert!(
        stderr.contains("could not re-execute") && stderr.contains("Permission denied"),
        "{stderr}"
    );
    assert!(!stderr.contains(INHERITED), "{stderr}");
    assert!(
        stderr.contains("capabilities only loading needed are dropped"),
        "{stderr}"
    );
    seen.assert_handover_closed();
    let bpf: Vec<&(String, u32)> = seen
        .fds
        .iter()
        .filter(|(t, _)| t.starts_with("anon_inode:bpf"))
        .collect();
    assert!(
        !bpf.is_empty()
            && bpf
                .iter()
                .all(|(_, flags)| flags & libc::O_CLOEXEC as u32 != 0),
        "the descriptors kept open for the exec are close-on-exec again: {bpf:?}"
    );
    assert!(
        ebpf_samples(&samples, ":disk:") > 0,
        "eBPF samples in process"
    );
}

/// The dynamic loader this test runs under, as /proc/self/maps names it.
/// A configuration of the disk probe alone, every second, in `dir`.
fn disk_only_config(dir: &tempfile::TempDir) -> std::path::PathBuf {
    let config = dir.path().join("blipp.json");
    let doc = json!({"properties": {"configurations": {
        "probe_defaults": {"schedule_params": {"every": 1}},
        "probes": {"disk": {"probe_module": "disk"}}
    }}});
    std::fs::write(&config, doc.to_string()).unwrap();
    config
}

fn dynamic_loader() -> Option<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|path| {
            path.rsplit('/')
                .next()
                .is_some_and(|name| name.starts_with("ld-linux") || name.starts_with("ld-musl"))
        })
        .map(str::to_owned)
}

#[test]
fn started_through_the_dynamic_loader_it_does_not_reexecute() {
    if !require_root("blippd's eBPF probes") {
        return;
    }
    let Some(loader) = dynamic_loader() else {
        blipp_tests::skip::skip(
            "starting blippd through the dynamic loader",
            "a dynamically linked test process",
        );
        return;
    };
    // /proc/self/exe is the loader then: executing it would start the
    // loader with blippd's arguments.
    let dir = tempfile::tempdir().unwrap();
    let config = disk_only_config(&dir);
    let out = Command::new(&loader)
        .arg(agent_bin("blippd"))
        .arg("-c")
        .arg(&config)
        .args(["--control-socket", "none", "--duration", "2"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains(REEXEC), "{stderr}");
    assert!(
        stderr.contains("could not re-execute") && stderr.contains("not this blippd"),
        "{stderr}"
    );
    let samples = json_lines(&String::from_utf8(out.stdout).unwrap());
    assert!(
        ebpf_samples(&samples, ":disk:") > 0,
        "eBPF samples in process"
    );
}

#[test]
fn proc_mode_does_not_reexecute() {
    let out = Command::new(agent_bin("blippd"))
        .args(["--once", "--mode", "proc", "--control-socket", "none"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains(REEXEC), "{stderr}");
    assert!(!stderr.contains(INHERITED), "{stderr}");
}

/// Starts blippd in `--mode proc --once` as a re-executed image: with a
/// memfd named like the handover's holding `manifest` (sealed or not), and
/// /dev/null open as descriptor 50. Returns its exit code and stderr.
fn handed(manifest: &str, sealed: bool) -> (Option<i32>, String) {
    use std::os::unix::process::CommandExt as _;
    let name = c"blipp-handover";
    let bytes = manifest.as_bytes().to_vec();
    let null = std::fs::File::open("/dev/null").unwrap();
    let mut cmd = Command::new(agent_bin("blippd"));
    cmd.args(["--once", "--mode", "proc", "--control-socket", "none"]);
    // SAFETY: between fork and exec, only system calls on buffers made
    // before the fork.
    unsafe {
        cmd.pre_exec(move || {
            use std::os::fd::AsRawFd as _;
            if libc::dup2(null.as_raw_fd(), 50) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let fd = libc::memfd_create(name.as_ptr(), libc::MFD_ALLOW_SEALING);
            if fd < 0 || libc::write(fd, bytes.as_ptr().cast(), bytes.len()) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if sealed && libc::fcntl(fd, libc::F_ADD_SEALS, libc::F_SEAL_WRITE) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success() || out.stdout.is_empty(),
        "nothing measured by a refused image"
    );
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_bad_handover_is_refused() {
    let good = json!({"format": 1, "comm": "blippd", "programs": [], "maps": [],
        "stats": null, "links": [], "config_file": null});
    let mut wrong = good.clone();
    wrong["maps"] = json!([{"name": "NET_INTERFACES", "fd": 50}]);
    for (manifest, sealed, says) in [
        (good.to_string(), false, "not sealed against writes"),
        ("{\"format\": 1".to_owned(), true, "does not parse"),
        (
            wrong.to_string(),
            true,
            "descriptor 50 should be BPF map \"NET_INTERFACES\" but is /dev/null",
        ),
    ] {
        let (code, stderr) = handed(&manifest, sealed);
        assert_eq!(code, Some(1), "{manifest}: {stderr}");
        assert!(
            stderr.contains("the eBPF handover of a re-executed blippd") && stderr.contains(says),
            "{manifest}: {stderr}"
        );
    }
    // A right manifest (of nothing): the image starts with it.
    let (code, stderr) = handed(&good.to_string(), true);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains(INHERITED), "{stderr}");
}

/// Issue 16, item 9: a configuration over 1 MiB passed `--check` and ran
/// in `proc` mode, but the handover of an `auto` start could not carry it.
/// A file of exactly the size limit, of newlines (which escaping in the
/// manifest doubles), is handed over and runs in the new image.
#[test]
fn a_configuration_at_the_size_limit_is_handed_over() {
    if !require_root("blippd's eBPF probes") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = disk_only_config(&dir);
    let mut text = std::fs::read_to_string(&config).unwrap();
    let limit = usize::try_from(blipp::limits::CONFIG_FILE_MAX).unwrap();
    text.push_str(&"\n".repeat(limit - text.len()));
    std::fs::write(&config, &text).unwrap();
    let child = Command::new(agent_bin("blippd"))
        .arg("-c")
        .arg(&config)
        .args(["--control-socket", "none", "--duration", "3"])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.path().join("stdout")).unwrap())
        .stderr(std::fs::File::create(dir.path().join("stderr")).unwrap())
        .spawn()
        .unwrap();
    let (stderr, samples) = finish(child, &dir);
    assert!(stderr.contains(REEXEC), "{stderr}");
    assert!(stderr.contains(INHERITED), "{stderr}");
    assert!(ebpf_samples(&samples, ":disk:") > 0, "{stderr}");

    // One byte more is refused up front, in every mode.
    text.push('\n');
    std::fs::write(&config, &text).unwrap();
    let out = Command::new(agent_bin("blippd"))
        .arg("-c")
        .arg(&config)
        .args(["--control-socket", "none", "--once"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("longer than the limit of 4 MiB"),
        "{out:?}"
    );
}
