//! `cargo xtask install` into a scratch root: binaries, configuration and a
//! systemd unit that systemd itself accepts.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use blipp_tests::require_root;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn install(root: &Path, flavour: &str) -> std::process::Output {
    Command::new(env!("CARGO"))
        .current_dir(workspace())
        .args([
            "xtask",
            "install",
            "--no-start",
            "--debug",
            "--flavour",
            flavour,
            "--root",
        ])
        .arg(root)
        .output()
        .unwrap()
}

/// `systemd-analyze verify` of `unit` with ExecStart pointing into `root`:
/// returns its stderr (empty when systemd has nothing to say).
fn verify(root: &Path, unit: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blippd.service");
    let blippd = root.join("usr/local/bin/blippd");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/blippd", blippd.to_str().unwrap()),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "systemd-analyze verify failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn installs_binaries_config_and_a_valid_unit() {
    if !require_root("installing into a scratch root and trying eBPF") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let out = install(root.path(), "auto");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for bin in ["blippd", "blippcmd"] {
        let path = root.path().join("usr/local/bin").join(bin);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755, "{bin}");
        let v = Command::new(&path).arg("--version").output().unwrap();
        assert!(v.status.success() && String::from_utf8_lossy(&v.stdout).starts_with(bin));
    }
    let config = root.path().join("etc/blipp/blippd.json");
    let check = Command::new(root.path().join("usr/local/bin/blippcmd"))
        .arg("check")
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "installed config is valid: {}",
        String::from_utf8_lossy(&check.stderr)
    );

    // As root on this kernel, the trial eBPF run succeeds: the privileged unit.
    let unit =
        std::fs::read_to_string(root.path().join("etc/systemd/system/blippd.service")).unwrap();
    assert!(
        unit.contains("CAP_BPF") && !unit.contains("--mode proc"),
        "{unit}"
    );
    assert_eq!(
        verify(root.path(), &unit),
        "",
        "systemd warns about the unit"
    );

    // A second install keeps an operator's configuration.
    std::fs::write(&config, "{\"name\": \"edited\"}").unwrap();
    let out = install(root.path(), "proc");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(&config).unwrap(),
        "{\"name\": \"edited\"}"
    );
    let unit =
        std::fs::read_to_string(root.path().join("etc/systemd/system/blippd.service")).unwrap();
    assert!(
        unit.contains("--mode proc")
            && unit.contains("User=blipp\n")
            && unit.contains("AmbientCapabilities=\n"),
        "{unit}"
    );
    assert!(
        unit.contains("CapabilityBoundingSet=\n"),
        "no capabilities: {unit}"
    );
    assert_eq!(
        verify(root.path(), &unit),
        "",
        "systemd warns about the /proc unit"
    );
}
