//! Helpers shared by blipp's end-to-end tests: the agent's binaries built
//! once per test process, root checks that fail loudly in CI, loop devices,
//! network namespaces, the UNIS/MS test server and the certificates of its
//! TLS tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, OnceLock};

pub mod daemon;
pub mod loopdev;
pub mod netns;
pub mod prom_receiver;
pub mod pty;
pub mod shared;
pub mod skip;
pub mod tls;
pub mod unis_scenario;
pub mod unis_server;

/// The real server's schemas, loaded once per test process; `None` (and a
/// loud message naming `what`) when `../shared` is missing.
pub fn real_schemas(what: &str) -> Option<Arc<unis_server::Schemas>> {
    static SCHEMAS: OnceLock<Option<Arc<unis_server::Schemas>>> = OnceLock::new();
    let loaded = SCHEMAS.get_or_init(|| {
        let dir = shared::schema_dir()?;
        Some(Arc::new(
            unis_server::Schemas::load(&dir).expect("the real server's schemas load"),
        ))
    });
    if loaded.is_none() {
        skip::skip(what, shared::MISSING);
    }
    loaded.clone()
}

/// The UNIS/MS test server checking bodies with the real server's
/// schemas; `None` (and a loud message naming `what`) when `../shared` is
/// missing.
#[expect(clippy::unwrap_used, reason = "a test fails by panicking")]
pub fn schema_checked_server(what: &str) -> Option<unis_server::UnisServer> {
    let schemas = real_schemas(what)?;
    Some(
        unis_server::UnisServer::start(unis_server::Options {
            schemas: Some(schemas),
            ..unis_server::Options::default()
        })
        .unwrap(),
    )
}

/// Builds (if needed) and returns the path of one of the agent's binaries,
/// with the same profile as the tests.
pub fn agent_bin(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args([
            "build",
            "-p",
            "blipp-agent",
            "--bins",
            "--message-format=json-render-diagnostics",
        ]);
        if !cfg!(debug_assertions) {
            cmd.arg("--release");
        }
        let out = cmd.output().expect("cargo build runs");
        assert!(out.status.success(), "building the agent failed");
        let stdout = String::from_utf8_lossy(&out.stdout);
        stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|m| m["executable"].as_str().map(PathBuf::from))
            .find_map(|p| p.parent().map(Path::to_path_buf))
            .expect("cargo reported the agent's executables")
    });
    dir.join(name)
}

/// Writes `config` (the file's text, valid or not) to `dir/blipp.json`,
/// runs `blippd -c dir/blipp.json args` to its end and returns its status
/// and what it printed; `args` must make it exit (`--once`, `--duration`,
/// `--check`).
#[expect(clippy::unwrap_used, reason = "a test fails by panicking")]
pub fn run_blippd(dir: &Path, config: &str, args: &[&str]) -> Output {
    let path = dir.join("blipp.json");
    std::fs::write(&path, config).unwrap();
    Command::new(agent_bin("blippd"))
        .arg("-c")
        .arg(&path)
        .args(args)
        .output()
        .unwrap()
}

/// Runs blippd with the service-object `config` and `args` as
/// [`run_blippd`] does, in a temporary directory; panics unless it exits
/// 0, and returns the samples it printed.
#[expect(clippy::unwrap_used, reason = "a test fails by panicking")]
pub fn blippd_samples(config: &serde_json::Value, args: &[&str]) -> Vec<serde_json::Value> {
    let dir = tempfile::tempdir().unwrap();
    let out = run_blippd(dir.path(), &config.to_string(), args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    json_lines(&String::from_utf8(out.stdout).unwrap())
}

/// The samples of blippd's JSON-lines output; panics on a line that is
/// not JSON.
#[expect(clippy::unwrap_used, reason = "a test fails by panicking")]
pub fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The first word after `key:` in a `key: value` kernel file
/// (`/proc/PID/status`, fdinfo); panics when there is none.
pub fn status_field<'a>(status: &'a str, key: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .unwrap_or_else(|| panic!("no {key} in {status}"))
}

/// A capability set of `/proc/PID/status` (`CapEff`, `CapPrm`, `CapBnd`)
/// as a mask.
#[expect(clippy::unwrap_used, reason = "a test fails by panicking")]
pub fn cap_set(status: &str, key: &str) -> u64 {
    u64::from_str_radix(status_field(status, key), 16).unwrap()
}

/// Copies the program `from` to `to` (mode 0755) in a `cp` process of its
/// own. Copied in this process, the new file would be open for writing
/// while other tests' threads fork; a child that holds that descriptor
/// until its exec makes the kernel refuse to run the copy (ETXTBSY, "Text
/// file busy"), now and then.
#[expect(clippy::unwrap_used, reason = "a test fails by panicking")]
pub fn copy_program(from: &Path, to: &Path) {
    let status = Command::new("cp").arg(from).arg(to).status().unwrap();
    assert!(
        status.success(),
        "cp {} {}: {status}",
        from.display(),
        to.display()
    );
    std::fs::set_permissions(to, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}

/// True when `tool` runs (`tool -V`, else `tool --version`); otherwise
/// [`skip::skip`]s `what`.
pub fn require_tool(tool: &str, what: &str) -> bool {
    let runs = |flag: &str| {
        Command::new(tool)
            .arg(flag)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok()
    };
    runs("-V")
        || runs("--version")
        || skip::skip(what, &format!("{tool} (cargo xtask setup installs it)"))
}

/// True when running as root; otherwise [`skip::skip`]s `what`.
pub fn require_root(what: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    root || skip::skip(what, "root (run the suite as root: cargo xtask test)")
}
