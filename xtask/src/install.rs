//! `cargo xtask install`: blippd as a systemd service. The privileged unit
//! goes where a trial run shows this kernel loads blipp's eBPF programs;
//! elsewhere the /proc-only unit, which runs with no capabilities at all.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};

use crate::sh;

const EBPF_UNIT: &str = include_str!("../../packaging/systemd/blippd.service");
const PROC_UNIT: &str = include_str!("../../packaging/systemd/blippd-proc.service");
const DEFAULT_CONFIG: &str = include_str!("../../blipp-agent/src/config/default.json");

/// Which unit to install.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Flavour {
    /// Decide by a trial run of blippd with `--mode ebpf`.
    Auto,
    /// blippd.service from packaging/systemd/blippd.service.
    Ebpf,
    /// blippd.service from packaging/systemd/blippd-proc.service.
    Proc,
}

/// Options of `cargo xtask install`.
#[derive(Clone, Debug, clap::Args)]
pub struct Install {
    /// Install under this directory instead of / (packaging, tests).
    #[arg(long, default_value = "/")]
    pub root: PathBuf,
    /// Which unit.
    #[arg(long, value_enum, default_value = "auto")]
    pub flavour: Flavour,
    /// Install the debug build (tests; the service wants --release, the default).
    #[arg(long)]
    pub debug: bool,
    /// Do not enable and start the unit.
    #[arg(long)]
    pub no_start: bool,
}

/// Copies through a temporary name and renames, so that a running blippd
/// is never overwritten in place.
fn put(from: &Path, to: &Path, mode: u32) -> Result<()> {
    let dir = to.parent().context("destination has a parent")?;
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(format!(
        ".{}.new",
        to.file_name().and_then(|n| n.to_str()).unwrap_or("blipp")
    ));
    fs::copy(from, &tmp)
        .with_context(|| format!("copying {} to {}", from.display(), tmp.display()))?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))?;
    fs::rename(&tmp, to).with_context(|| format!("installing {}", to.display()))
}

fn write_new(to: &Path, text: &str, mode: u32) -> Result<()> {
    let dir = to.parent().context("destination has a parent")?;
    fs::create_dir_all(dir)?;
    let tmp = dir.join(".blipp.new");
    fs::write(&tmp, text)?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))?;
    fs::rename(&tmp, to).with_context(|| format!("installing {}", to.display()))
}

/// Runs the freshly built blippd once with only the eBPF disk probe in
/// `--mode ebpf`: success means this kernel, with this user's privileges,
/// loads and attaches blipp's programs.
#[expect(clippy::print_stderr, reason = "xtask narrates its decision")]
fn ebpf_works(blippd: &Path) -> Result<bool> {
    let dir = std::env::temp_dir().join(format!("blipp-install-{}", std::process::id()));
    fs::create_dir_all(&dir)?;
    let trial = dir.join("trial.json");
    fs::write(
        &trial,
        r#"{"properties":{"configurations":{"probes":{"disk":{"probe_module":"disk","mode":"ebpf"}}}}}"#,
    )?;
    let out = Command::new(blippd)
        .arg("--once")
        .arg("--config-file")
        .arg(&trial)
        .args(["--log-level", "ERROR"])
        .output()
        .with_context(|| format!("running {}", blippd.display()))?;
    let _ = fs::remove_dir_all(&dir);
    if !out.status.success() {
        eprintln!(
            "xtask: eBPF trial run failed, installing the /proc-only unit: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out.status.success())
}

/// The users `cargo xtask install` creates, and what each is for: blippd
/// itself (`User=` of both units; it owns the spool and reads the
/// configuration through its group), and the one it runs commands as by
/// default (see blipp-agent/src/source/command/sandbox.rs), a system user
/// of its own so that the commands' process limit counts only them and
/// they own nothing. Created in the running system only; a package built
/// with `--root` creates them in its own maintainer scripts.
const USERS: [(&str, &str); 2] = [
    (SERVICE_USER, "runs blippd"),
    ("blipp-cmd", "runs blippd's commands"),
];
const SERVICE_USER: &str = "blipp";

#[expect(clippy::print_stderr, reason = "xtask narrates what it installed")]
fn system_user(root: &Path, name: &str, purpose: &str) -> Result<()> {
    if root != Path::new("/") {
        eprintln!(
            "xtask: not creating the system user {name} under {}: the package must (useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin {name}), it {purpose}",
            root.display()
        );
        return Ok(());
    }
    let known = Command::new("getent")
        .args(["passwd", name])
        .output()?
        .status
        .success();
    if known {
        eprintln!("xtask: the system user {name} exists");
        return Ok(());
    }
    sh::run(Command::new("useradd").args([
        "--system",
        "--user-group",
        "--no-create-home",
        // What nobody has: a home that is not there, rather than
        // useradd's /home/<name> that nothing creates.
        "--home-dir",
        "/nonexistent",
        "--shell",
        "/usr/sbin/nologin",
        name,
    ]))?;
    eprintln!("xtask: created the system user {name}, which {purpose}");
    Ok(())
}

/// Gives the configuration file to root and blippd's group (0640): blippd
/// reads it, only root changes it.
fn config_group(root: &Path, config: &Path) -> Result<()> {
    if root != Path::new("/") {
        return Ok(());
    }
    sh::run(
        Command::new("chown")
            .arg(format!("root:{SERVICE_USER}"))
            .arg(config),
    )
}

/// Builds, installs binaries, configuration (kept when present), the unit
/// and the system users.
#[expect(clippy::print_stderr, reason = "xtask narrates what it installed")]
pub fn run(args: &Install) -> Result<()> {
    let mut build = sh::cargo();
    build.args(["build", "-p", "blipp-agent", "--bins"]);
    if !args.debug {
        build.arg("--release");
    }
    sh::run(&mut build)?;
    let built = sh::target_dir()?.join(if args.debug { "debug" } else { "release" });
    let bin = args.root.join("usr/local/bin");
    for name in ["blippd", "blippcmd"] {
        put(&built.join(name), &bin.join(name), 0o755)?;
    }
    let config = args.root.join("etc/blipp/blippd.json");
    if config.exists() {
        eprintln!("xtask: keeping the existing {}", config.display());
    } else {
        write_new(&config, DEFAULT_CONFIG, 0o640)?;
    }
    let flavour = match args.flavour {
        Flavour::Auto if ebpf_works(&built.join("blippd"))? => Flavour::Ebpf,
        Flavour::Auto => Flavour::Proc,
        f => f,
    };
    let unit = args.root.join("etc/systemd/system/blippd.service");
    write_new(
        &unit,
        if flavour == Flavour::Ebpf {
            EBPF_UNIT
        } else {
            PROC_UNIT
        },
        0o644,
    )?;
    eprintln!("xtask: installed {} ({flavour:?} unit)", unit.display());
    for (name, purpose) in USERS {
        system_user(&args.root, name, purpose)?;
    }
    config_group(&args.root, &config)?;

    let systemd = Path::new("/run/systemd/system").is_dir();
    if args.root != Path::new("/") || args.no_start {
        return Ok(());
    }
    if !systemd {
        bail!("installed, but systemd is not running here: start /usr/local/bin/blippd yourself");
    }
    sh::run(Command::new("systemctl").arg("daemon-reload"))?;
    sh::run(Command::new("systemctl").args(["enable", "--now", "blippd.service"]))
}
