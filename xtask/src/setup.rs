//! Installing the build chain and test tools on a fresh machine. Every step
//! checks first and does nothing when the tool is already there.

use std::process::Command;

use anyhow::{Context as _, Result, bail};

use crate::sh;

/// The nightly that builds the kernel crate (DESIGN: rustc 1.97, LLVM 22,
/// the LLVM that bpf-linker 0.10.0 loads).
pub const NIGHTLY: &str = "nightly-2026-05-20";
const BPF_LINKER: &str = "0.10.0";

/// Debian packages the test suite uses: `ip netns`/veth (iproute2),
/// losetup (util-linux), ethtool for cross-checking link speeds,
/// systemd-analyze for checking the service units (systemd).
const TEST_PACKAGES: &[&str] = &["iproute2", "util-linux", "ethtool", "systemd"];

/// Everything: the build chain and the test tools.
pub fn all() -> Result<()> {
    build_chain()?;
    apt(TEST_PACKAGES)
}

/// The toolchain name the agent's build script will use, as it decides:
/// the pinned nightly when installed, else `nightly`.
fn ebpf_toolchain() -> Option<&'static str> {
    [NIGHTLY, "nightly"].into_iter().find(|t| {
        sh::output(Command::new("rustup").args(["run", t, "rustc", "--version"])).is_some()
    })
}

/// A nightly with rust-src, and bpf-linker.
pub fn build_chain() -> Result<()> {
    let toolchain = match ebpf_toolchain() {
        Some(t) => t,
        None => {
            sh::run(Command::new("rustup").args([
                "toolchain",
                "install",
                NIGHTLY,
                "--profile",
                "minimal",
                "--component",
                "rust-src",
            ]))?;
            NIGHTLY
        }
    };
    let installed = sh::output(Command::new("rustup").args([
        "component",
        "list",
        "--installed",
        "--toolchain",
        toolchain,
    ]))
    .unwrap_or_default();
    if !installed.lines().any(|l| l.starts_with("rust-src")) {
        sh::run(Command::new("rustup").args([
            "component",
            "add",
            "rust-src",
            "--toolchain",
            toolchain,
        ]))?;
    }
    let linker = sh::output(Command::new("bpf-linker").arg("--version")).unwrap_or_default();
    if !linker.contains(BPF_LINKER) {
        sh::run(sh::cargo().args(["install", "--locked", &format!("bpf-linker@{BPF_LINKER}")]))
            .or_else(|_| {
                sh::run(sh::cargo().args(["install", &format!("bpf-linker@{BPF_LINKER}")]))
            })?;
    }
    Ok(())
}

fn is_root() -> bool {
    sh::output(Command::new("id").arg("-u")).is_some_and(|s| s.trim() == "0")
}

/// Installs the Debian packages that are missing.
pub fn apt(packages: &[&str]) -> Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| {
            !sh::output(Command::new("dpkg-query").args(["-W", "-f", "${Status}", p]))
                .is_some_and(|s| s.contains("install ok installed"))
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let prefix: &[&str] = if is_root() { &[] } else { &["sudo"] };
    if !is_root() && sh::output(Command::new("sudo").args(["-n", "true"])).is_none() {
        bail!(
            "missing packages {missing:?}, and installing them needs root (or password-less sudo)"
        );
    }
    let apt_get = |args: &[&str]| {
        let mut cmd = Command::new(prefix.first().copied().unwrap_or("apt-get"));
        if !prefix.is_empty() {
            cmd.arg("apt-get");
        }
        cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        cmd
    };
    sh::run(&mut apt_get(&["update", "-q"])).context("apt-get update")?;
    let mut install = apt_get(&["install", "-y", "-q", "--no-install-recommends"]);
    install.args(&missing);
    sh::run(&mut install)
}
