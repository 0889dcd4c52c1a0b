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
/// systemd-analyze for checking the service units (systemd), real
/// commands and Nagios plugins for the cmd and nagios probes (iputils-ping,
/// monitoring-plugins-basic, traceroute, iputils-tracepath), iperf3 for the
/// original's iperf preset and json_probe
/// (owping's, owamp-client, is not in Debian).
const TEST_PACKAGES: &[&str] = &[
    "iproute2",
    // ebpf_reexec injects a failed exec with it.
    "strace",
    "util-linux",
    "ethtool",
    "systemd",
    "iputils-ping",
    "monitoring-plugins-basic",
    // original_presets runs the iperf preset against `iperf3 -s`.
    "iperf3",
    // traceroute_probe runs both, unprivileged (UDP probes).
    "traceroute",
    "iputils-tracepath",
    // command_sandbox checks that a command cannot use it to become root.
    "sudo",
    // counting compares its counts with nftables counters.
    "nftables",
    // prometheus_scrape checks blippd's exposition with promtool and has a
    // real Prometheus scrape it.
    "prometheus",
];

/// Debian packages `cargo xtask vm-test` uses on the host besides QEMU:
/// depmod (kmod) to order the guest's modules, musl-gcc (musl-tools) for C
/// code in the static guest binaries.
const VM_PACKAGES: &[&str] = &["kmod", "musl-tools"];

/// QEMU comes from this suite: the base image's qemu-utils is already its
/// backport, which the main suite's qemu-system-x86 cannot sit beside.
const QEMU_SUITE: &str = "bookworm-backports";
const QEMU_PACKAGES: &[&str] = &["qemu-system-x86"];

/// The target of the guest's static binaries.
pub const MUSL_TARGET: &str = "x86_64-unknown-linux-musl";

/// Everything: the build chain, the test tools and the VM test's tools.
pub fn all() -> Result<()> {
    build_chain()?;
    apt(TEST_PACKAGES)?;
    vm_tools()
}

/// What `cargo xtask vm-test` needs: QEMU from backports, kmod, musl.
pub fn vm_tools() -> Result<()> {
    apt(VM_PACKAGES)?;
    if !missing(QEMU_PACKAGES).is_empty() {
        add_suite(QEMU_SUITE)?;
        apt_from(Some(QEMU_SUITE), QEMU_PACKAGES)?;
    }
    let targets = sh::output(Command::new("rustup").args(["target", "list", "--installed"]))
        .unwrap_or_default();
    if !targets.lines().any(|t| t.trim() == MUSL_TARGET) {
        sh::run(Command::new("rustup").args(["target", "add", MUSL_TARGET]))?;
    }
    Ok(())
}

/// The toolchain name the agent's build script will use, as it decides:
/// the pinned nightly when installed, else `nightly`.
pub fn ebpf_toolchain() -> Option<&'static str> {
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

/// Debian's hook that tells maintainer scripts whether they may start
/// services; exit status 101 means "no".
const POLICY_RC_D: &str = "/usr/sbin/policy-rc.d";

/// Removes the policy-rc.d this process wrote, when dropped.
struct NoStartPolicy(bool);

impl Drop for NoStartPolicy {
    fn drop(&mut self) {
        if self.0 {
            let _ = std::fs::remove_file(POLICY_RC_D);
        }
    }
}

/// Installs the Debian packages that are missing without letting their
/// maintainer scripts start (or restart) the services they ship: daemons
/// the benchmark compares with must run only while it measures them.
/// An existing policy-rc.d is left as it is.
pub fn apt_without_starting(packages: &[&str]) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let path = std::path::Path::new(POLICY_RC_D);
    let ours = NoStartPolicy(!path.exists() && is_root() && !missing(packages).is_empty());
    if ours.0 {
        std::fs::write(
            path,
            "#!/bin/sh\n# written by cargo xtask bench\nexit 101\n",
        )
        .with_context(|| format!("writing {POLICY_RC_D}"))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    }
    apt(packages)
}

/// The packages of `packages` that are not installed.
fn missing<'a>(packages: &[&'a str]) -> Vec<&'a str> {
    packages
        .iter()
        .copied()
        .filter(|p| {
            !sh::output(Command::new("dpkg-query").args(["-W", "-f", "${Status}", p]))
                .is_some_and(|s| s.contains("install ok installed"))
        })
        .collect()
}

/// Installs the Debian packages that are missing.
pub fn apt(packages: &[&str]) -> Result<()> {
    apt_from(None, packages)
}

/// Installs the missing packages of `packages`, from `suite` when given.
fn apt_from(suite: Option<&str>, packages: &[&str]) -> Result<()> {
    let missing = missing(packages);
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
    if let Some(suite) = suite {
        install.args(["-t", suite]);
    }
    install.args(&missing);
    sh::run(&mut install)
}

const SOURCES_DIR: &str = "/etc/apt/sources.list.d";

/// The host's apt source lines and stanzas, as text.
fn apt_sources() -> String {
    let mut text = std::fs::read_to_string("/etc/apt/sources.list").unwrap_or_default();
    if let Ok(dir) = std::fs::read_dir(SOURCES_DIR) {
        for entry in dir.flatten() {
            let path = entry.path();
            if path
                .extension()
                .is_some_and(|e| e == "sources" || e == "list")
            {
                text.push('\n');
                text.push_str(&std::fs::read_to_string(&path).unwrap_or_default());
                text.push('\n');
            }
        }
    }
    text
}

/// The URIs of the host's apt sources, from both one-line (`deb URI suite`)
/// and deb822 (`URIs: URI`) files, in order.
fn source_uris(text: &str) -> Vec<String> {
    let mut uris = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("URIs:") {
            uris.extend(rest.split_whitespace().map(str::to_owned));
        } else if let Some(rest) = line.strip_prefix("deb ") {
            // `deb [options] URI suite components`
            let rest = match rest.trim_start().strip_prefix('[') {
                Some(r) => r.split_once(']').map_or("", |(_, r)| r),
                None => rest,
            };
            uris.extend(rest.split_whitespace().next().map(str::to_owned));
        }
    }
    uris
}

/// The Debian mirror the host already uses (its main archive, not the
/// security one), so that other suites come from the same place.
pub fn debian_mirror() -> Result<String> {
    source_uris(&apt_sources())
        .into_iter()
        .map(|u| u.trim_end_matches('/').to_owned())
        .find(|u| u.ends_with("/debian"))
        .context("no Debian archive among the host's apt sources")
}

/// Adds `suite` of the host's Debian mirror to apt's sources unless some
/// source already names it.
fn add_suite(suite: &str) -> Result<()> {
    let text = apt_sources();
    let named = text.lines().any(|l| {
        let l = l.trim();
        !l.starts_with('#') && l.split_whitespace().any(|w| w == suite)
    });
    if named {
        return Ok(());
    }
    if !is_root() {
        bail!("apt has no {suite} source, and adding one needs root");
    }
    let mirror = debian_mirror()?;
    let path = format!("{SOURCES_DIR}/{suite}.sources");
    let stanza = format!(
        "Types: deb\nURIs: {mirror}\nSuites: {suite}\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
    );
    eprintln_xtask(&format!("adding apt source {path}"));
    std::fs::write(&path, stanza).with_context(|| format!("writing {path}"))
}

#[expect(clippy::print_stderr, reason = "xtask narrates what it changes")]
fn eprintln_xtask(what: &str) {
    eprintln!("xtask: {what}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_mirror_in_both_formats() {
        let text = "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm\n\n\
                    Types: deb\nURIs: http://mirror.example/debian-security\n\n\
                    deb [signed-by=/k.gpg] http://other.example/debian/ trixie main\n";
        assert_eq!(
            source_uris(text),
            [
                "http://mirror.example/debian",
                "http://mirror.example/debian-security",
                "http://other.example/debian/"
            ]
        );
    }
}
