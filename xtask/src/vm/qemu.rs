//! Booting one guest under QEMU (TCG) with a hard timeout, keeping its
//! serial console as a log.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

use crate::arch::Arch;

/// The guest's console lines that carry results start with this (see
/// `vm-tests/guest`).
pub const TAG: &str = "BLIPP-VM ";

/// What to boot.
pub struct Boot<'a> {
    /// The guest's architecture.
    pub arch: Arch,
    /// Kernel image.
    pub vmlinuz: &'a Path,
    /// Initramfs.
    pub initramfs: &'a Path,
    /// Raw disk image attached as the virtio disk.
    pub disk: &'a Path,
    /// Where the serial console is written.
    pub log: &'a Path,
    /// QEMU is killed after this long.
    pub timeout: Duration,
}

/// How a boot went.
pub struct Outcome {
    /// The guest's tagged lines (tag removed).
    pub lines: Vec<String>,
    /// From starting QEMU to the guest's first tagged line (init running).
    pub boot: Option<Duration>,
    /// From starting QEMU to its exit (or the kill).
    pub total: Duration,
    /// QEMU was killed at the timeout.
    pub timed_out: bool,
}

/// qboot starts a `-kernel` guest in a fraction of SeaBIOS's time.
const QBOOT: &str = "/usr/share/qemu/qboot.rom";

/// The machine, CPU, firmware and console of `arch`'s guests: x86_64 a
/// `pc` with qboot; arm64 the `virt` board, which boots a `-kernel` image
/// itself (no firmware) and has a PL011 serial port. The CPU is a
/// Neoverse N1 (ARMv8.2: the core of AWS Graviton 2 and Ampere Altra), not
/// `max`: QEMU's documentation warns that emulating `max`'s pointer
/// authentication (checked at function entry and return throughout a 6.x
/// kernel) is slow, and blipp needs nothing beyond ARMv8.0; unlike the
/// Cortex-A72 it also has the 16 KiB page granule the 16k kernel needs.
fn machine(arch: Arch) -> (Command, &'static str) {
    match arch {
        Arch::X86_64 => {
            let mut cmd = Command::new("qemu-system-x86_64");
            cmd.args(["-machine", "pc,accel=tcg", "-cpu", "max"]);
            if Path::new(QBOOT).exists() {
                cmd.args(["-bios", QBOOT]);
            }
            (cmd, "console=ttyS0 tsc=reliable")
        }
        Arch::Arm64 => {
            let mut cmd = Command::new("qemu-system-aarch64");
            cmd.args(["-machine", "virt,accel=tcg", "-cpu", "neoverse-n1"]);
            (cmd, "console=ttyAMA0")
        }
    }
}

/// Boots the guest and waits for it to power off.
pub fn boot(b: &Boot<'_>) -> Result<Outcome> {
    let (mut cmd, console) = machine(b.arch);
    let program = cmd.get_program().to_string_lossy().into_owned();
    cmd.args(["-nodefaults", "-no-user-config"])
        .args(["-smp", "1", "-m", "512"]);
    cmd.arg("-kernel")
        .arg(b.vmlinuz)
        .arg("-initrd")
        .arg(b.initramfs)
        .arg("-append")
        .arg(format!("{console} panic=-1 loglevel=4 mitigations=off"))
        .args(["-display", "none", "-monitor", "none", "-serial", "stdio"])
        .args(["-no-reboot"])
        .arg("-drive")
        .arg(format!(
            "file={},format=raw,if=none,id=disk0,cache=unsafe",
            b.disk.display()
        ))
        .args(["-device", "virtio-blk-pci,drive=disk0"])
        // `restrict=on`: the guest reaches nothing outside the VM; its
        // traffic is counted on its own interface.
        .args(["-netdev", "user,id=net0,restrict=on"])
        // A link speed, so that the port probe has a capacity to report.
        .args([
            "-device",
            "virtio-net-pci,netdev=net0,speed=1000,duplex=full",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd.spawn().with_context(|| format!("starting {program}"))?;
    let stdout = child.stdout.take().context("qemu stdout")?;
    let stderr = child.stderr.take().context("qemu stderr")?;
    let (tx, rx) = mpsc::channel();
    let err_tx = tx.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).split(b'\n').map_while(Result::ok) {
            let line = String::from_utf8_lossy(&line).trim_end().to_owned();
            if tx.send((Instant::now(), line)).is_err() {
                break;
            }
        }
    });
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if err_tx
                .send((Instant::now(), format!("qemu: {line}")))
                .is_err()
            {
                break;
            }
        }
    });
    let mut log =
        std::fs::File::create(b.log).with_context(|| format!("creating {}", b.log.display()))?;
    let deadline = start + b.timeout;
    let mut outcome = Outcome {
        lines: Vec::new(),
        boot: None,
        total: Duration::ZERO,
        timed_out: false,
    };
    let mut take = |at: Instant, line: String, log: &mut std::fs::File| -> Result<()> {
        writeln!(log, "{line}")?;
        if let Some(pos) = line.find(TAG) {
            outcome.boot.get_or_insert(at - start);
            outcome.lines.push(line[pos + TAG.len()..].to_owned());
        }
        Ok(())
    };
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok((at, line)) => take(at, line, &mut log)?,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            writeln!(log, "xtask: killed QEMU after {:?}", b.timeout)?;
            outcome.timed_out = true;
            break;
        }
    }
    child.wait().context("waiting for qemu")?;
    while let Ok((at, line)) = rx.try_recv() {
        take(at, line, &mut log)?;
    }
    outcome.total = start.elapsed();
    Ok(outcome)
}

/// A fresh zero-filled (sparse) disk image of `size` bytes.
pub fn disk_image(path: &Path, size: u64) -> Result<PathBuf> {
    let f = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    f.set_len(size)?;
    Ok(path.to_owned())
}
