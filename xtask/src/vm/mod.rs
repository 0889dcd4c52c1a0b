//! `cargo xtask vm-test`: boots each kernel of `vm-tests/kernels.txt` under
//! QEMU with an initramfs holding the static `blippd` and the guest test
//! program (`vm-tests/guest`) as init, and tabulates what each guest
//! reported. Kernels and QEMU are fetched from Debian and cached under
//! `target/vm-cache/`.

mod debian;
mod initramfs;
mod kernel;
mod matrix;
mod qemu;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use crate::arch::Arch;
use crate::{setup, sh};
use kernel::Bootable;
use matrix::Report;

/// A guest that has not powered off by then is killed and fails. On a
/// 2-CPU machine, two guests side by side, an x86_64 guest runs for about
/// 20 s under TCG and an arm64 one (every instruction translated across
/// architectures) for about 45 s; a busy host slows both several times.
fn boot_timeout(arch: Arch) -> Duration {
    match arch {
        Arch::X86_64 => Duration::from_secs(120),
        Arch::Arm64 => Duration::from_secs(300),
    }
}

/// Guests booted at once: the machines this runs on have two cores.
const PARALLEL: usize = 2;
/// The virtio disk the guest writes to (sparse on the host).
const DISK_BYTES: u64 = 64 << 20;

/// The feature that builds the test-only verifier-rejected program into
/// the guest's blippd (see the guest's `faulty` run).
const GUEST_FEATURES: &str = "blipp-agent/fault-injection";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_owned)
}

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
}

/// Builds the static guest binaries for `arch`: `blippd` and the test
/// init.
fn build_guest(target: &Path, arch: Arch) -> Result<(PathBuf, PathBuf)> {
    let mut cargo = sh::cargo();
    cargo.args([
        "build",
        "--profile",
        "vm-guest",
        "--target",
        arch.musl_target(),
        "-p",
        "blipp-agent",
        "--bin",
        "blippd",
        "-p",
        "blipp-vm-guest",
        "--bin",
        "blipp-vm-guest",
        "--features",
        GUEST_FEATURES,
    ]);
    sh::run(arch.cross_env(&mut cargo))?;
    let dir = target.join(arch.musl_target()).join("vm-guest");
    Ok((dir.join("blippd"), dir.join("blipp-vm-guest")))
}

/// Writes the initramfs of one kernel.
fn write_initramfs(path: &Path, init: &[u8], blippd: &[u8], k: &Bootable) -> Result<u64> {
    let file = std::fs::File::create(path)?;
    let mut c = initramfs::Cpio::new(std::io::BufWriter::new(file));
    for dir in ["dev", "proc", "sys", "tmp", "bin", "modules", "mnt"] {
        c.dir(dir)?;
    }
    c.char_device("dev/console", 5, 1)?;
    c.file("init", 0o755, init)?;
    c.file("bin/blippd", 0o755, blippd)?;
    let mut order = String::new();
    for m in &k.modules {
        let name = m
            .file_name()
            .and_then(|n| n.to_str())
            .context("module file name")?;
        c.file(&format!("modules/{name}"), 0o644, &std::fs::read(m)?)?;
        order.push_str(name);
        order.push('\n');
    }
    c.file("modules/load-order", 0o644, order.as_bytes())?;
    c.finish()?;
    Ok(std::fs::metadata(path)?.len())
}

/// One kernel's result row.
struct Row {
    id: String,
    release: String,
    version: String,
    outcome: Option<qemu::Outcome>,
    report: Report,
    log: PathBuf,
    error: Option<String>,
}

impl Row {
    fn passed(&self) -> bool {
        self.error.is_none()
            && self.outcome.as_ref().is_some_and(|o| !o.timed_out)
            && self.report.passed()
    }
}

/// Runs the matrix for each of `arches` in turn, or only the kernel whose
/// id (first column of kernels.txt) is `only`; fails if any kernel failed.
pub fn run(arches: &[Arch], only: Option<&str>) -> Result<()> {
    let mut failed = Vec::new();
    for &arch in arches {
        if let Err(e) = run_arch(arch, only) {
            narrate(&format!("{e:#}"));
            failed.push(arch.to_string());
        }
    }
    if !failed.is_empty() {
        bail!("vm-test failed for {}", failed.join(", "));
    }
    Ok(())
}

/// Runs the matrix of one architecture.
fn run_arch(arch: Arch, only: Option<&str>) -> Result<()> {
    setup::vm_tools(arch)?;
    let root = workspace_root();
    let target = target_dir(&root);
    let cache = target.join("vm-cache");
    let logs = target.join("vm-test");
    std::fs::create_dir_all(&logs)?;
    let rows = matrix::parse(
        &std::fs::read_to_string(root.join("vm-tests/kernels.txt"))
            .context("reading vm-tests/kernels.txt")?,
    )?;
    let rows: Vec<_> = rows
        .into_iter()
        .filter(|r| only.is_none_or(|k| r.id == k))
        .filter_map(|r| r.for_arch(arch))
        .collect();
    if rows.is_empty() {
        bail!(
            "no kernel {} for {arch} in vm-tests/kernels.txt",
            only.unwrap_or("")
        );
    }

    let mut suites: Vec<&str> = rows.iter().map(|r| r.suite.as_str()).collect();
    suites.sort_unstable();
    suites.dedup();
    let apt = debian::AptRoot::open(&cache.join(format!("apt-{}", arch.debian())), arch, &suites)?;
    let mut bootables = Vec::new();
    for r in &rows {
        let k = apt
            .resolve(&r.package, &r.suite)
            .with_context(|| format!("kernel {}: resolving {} in {}", r.id, r.package, r.suite))?;
        bootables.push((r.id.clone(), kernel::prepare(&apt, k, &cache)?));
    }
    let (blippd, init) = build_guest(&target, arch)?;
    let blippd = std::fs::read(&blippd).with_context(|| format!("reading {}", blippd.display()))?;
    let init = std::fs::read(&init).with_context(|| format!("reading {}", init.display()))?;

    let started = Instant::now();
    // Guests run side by side, each QEMU on one vCPU.
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..PARALLEL.min(bootables.len()) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((id, k)) = bootables.get(i) else {
                        break;
                    };
                    let row = boot_one(arch, id, k, &cache, &logs, &init, &blippd);
                    if let Ok(mut r) = results.lock() {
                        r.push((i, row));
                    }
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_default();
    results.sort_by_key(|(i, _)| *i);
    let results: Vec<Row> = results.into_iter().map(|(_, r)| r).collect();
    let failed = print_table(arch, &results, started.elapsed());
    if failed > 0 {
        bail!(
            "vm-test {arch}: {failed} of {} kernels failed",
            results.len()
        );
    }
    Ok(())
}

/// Boots one kernel and reads its report.
fn boot_one(
    arch: Arch,
    id: &str,
    k: &Bootable,
    cache: &Path,
    logs: &Path,
    init: &[u8],
    blippd: &[u8],
) -> Row {
    let log = logs.join(format!("{arch}-{id}.log"));
    let initrd = cache.join(format!("initramfs-{arch}-{id}.cpio"));
    let disk = cache.join(format!("disk-{arch}-{id}.img"));
    let mut row = Row {
        id: id.to_owned(),
        release: k.kernel.release.clone(),
        version: k.kernel.version.clone(),
        outcome: None,
        report: Report::default(),
        log: log.clone(),
        error: None,
    };
    let attempt = (|| -> Result<qemu::Outcome> {
        let size = write_initramfs(&initrd, init, blippd, k)?;
        narrate(&format!(
            "booting {id} ({}), initramfs {} kB",
            k.kernel.release,
            size / 1024
        ));
        qemu::disk_image(&disk, DISK_BYTES)?;
        qemu::boot(&qemu::Boot {
            arch,
            vmlinuz: &k.vmlinuz,
            initramfs: &initrd,
            disk: &disk,
            log: &log,
            timeout: boot_timeout(arch),
        })
    })();
    match attempt {
        Ok(o) => {
            row.report = Report::parse(&o.lines);
            row.outcome = Some(o);
        }
        Err(e) => row.error = Some(format!("{e:#}")),
    }
    let _ = std::fs::remove_file(&disk);
    row
}

#[expect(clippy::print_stderr, reason = "xtask narrates what it runs")]
fn narrate(what: &str) {
    eprintln!("xtask: {what}");
}

/// Prints the result table and the failures; returns how many kernels
/// failed.
#[expect(clippy::print_stdout, reason = "the table is the command's output")]
fn print_table(arch: Arch, rows: &[Row], wall: Duration) -> usize {
    let secs =
        |d: Option<Duration>| d.map_or("-".to_owned(), |d| format!("{:.1}", d.as_secs_f64()));
    println!();
    println!(
        "{:<7} {:<30} {:<20} {:>8} {:>6} {:>6} {:>7} {:>9}  modes per probe (per run)",
        "kernel", "release", "Debian version", "kernel s", "boot s", "run s", "RSS MiB", "checks"
    );
    let mib = |kb: u64| kb as f64 / 1024.0;
    let mut failed = 0;
    for r in rows {
        let passed = r.report.checks.iter().filter(|(ok, _)| *ok).count();
        let modes: Vec<String> = r
            .report
            .modes
            .iter()
            .map(|(run, probes)| {
                let p: Vec<String> = probes.iter().map(|(p, s)| format!("{p}={s}")).collect();
                format!("{run}: {}", p.join(" "))
            })
            .collect();
        println!(
            "{:<7} {:<30} {:<20} {:>8} {:>6} {:>6} {:>7} {:>3}/{:<3} {} {}",
            r.id,
            r.release,
            r.version,
            r.report
                .kernel_boot
                .map_or("-".to_owned(), |s| format!("{s:.1}")),
            secs(r.outcome.as_ref().and_then(|o| o.boot)),
            secs(r.outcome.as_ref().map(|o| o.total)),
            r.report.rss_kb.map_or("-".to_owned(), |(rss, hwm)| format!(
                "{:.1}/{:.1}",
                mib(rss),
                mib(hwm)
            )),
            passed,
            r.report.checks.len(),
            if r.passed() { "PASS" } else { "FAIL" },
            modes.join(" | ")
        );
    }
    for r in rows.iter().filter(|r| !r.passed()) {
        failed += 1;
        println!();
        println!("kernel {} ({}) FAILED:", r.id, r.release);
        if let Some(e) = &r.error {
            println!("  error: {e}");
        }
        if r.outcome.as_ref().is_some_and(|o| o.timed_out) {
            println!("  QEMU timed out after {:?}", boot_timeout(arch));
        }
        if r.report.done.is_none() {
            println!("  the guest never reported DONE");
        }
        for (_, text) in r.report.checks.iter().filter(|(ok, _)| !ok) {
            println!("  FAIL {text}");
        }
        println!("  serial log: {}", r.log.display());
    }
    println!();
    println!(
        "kernel s: guest uptime when init started; boot s: from starting QEMU to init's first line; run s: the whole VM"
    );
    println!(
        "RSS MiB: blippd's VmRSS/VmHWM with the built-in configuration (default probes, as root, 1 s interval) after 3 collections"
    );
    println!(
        "vm-test {arch}: {} of {} kernels passed in {:.1} s",
        rows.len() - failed,
        rows.len(),
        wall.as_secs_f64()
    );
    failed
}
