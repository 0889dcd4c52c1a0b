//! `cargo xtask`: the project's own commands. `run` and `test` are the two
//! README commands; both install what they need first (`setup`).

mod arch;
mod bench;
mod build;
mod install;
mod setup;
mod sh;
mod vm;

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};

use arch::Arch;

#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install what building and testing blipp needs (nightly rust-src,
    /// bpf-linker, system packages), skipping what is already there.
    Setup,
    /// Build blippd in release mode and run it; arguments after `--` go to
    /// blippd (default: the built-in configuration, samples on stdout).
    Run {
        /// Arguments for blippd.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Build static release blippd and blippcmd (musl) for an
    /// architecture, cross-compiling for arm64, and print their sizes.
    Build {
        /// The architecture to build for.
        #[arg(long, value_enum, default_value_t = Arch::X86_64)]
        arch: Arch,
    },
    /// Run the whole test suite: unit, integration, eBPF-on-host (as
    /// root), then the kernel matrix under QEMU (vm-test) for x86_64 and
    /// arm64.
    Test,
    /// Install blippd as a systemd service (the eBPF unit where this kernel
    /// loads blipp's programs, the /proc-only unit elsewhere).
    Install(install::Install),
    /// Benchmarks: blipp's cost next to what users would run instead,
    /// figures printed, never asserted; every part when none is named.
    Bench(bench::Args),
    /// The benchmark's floor: read these files once a second, forever.
    #[command(hide = true)]
    ProcFloor {
        /// Keep the files open and read them again from offset 0.
        #[arg(long)]
        keep_open: bool,
        /// Files to read.
        files: Vec<std::path::PathBuf>,
    },
    /// Clippy on the kernel programs (blipp-ebpf), for the BPF target with
    /// the nightly that builds them; warnings are errors.
    ClippyEbpf,
    /// Boot each kernel of vm-tests/kernels.txt under QEMU and check blippd
    /// there, in eBPF and /proc modes.
    VmTest {
        /// Only this kernel (its id in vm-tests/kernels.txt, e.g. 6.1).
        #[arg(long)]
        kernel: Option<String>,
        /// The guests' architecture (arm64 is emulated: several times
        /// slower).
        #[arg(long, value_enum, default_value_t = Arch::X86_64)]
        arch: Arch,
    },
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Setup => setup::all(),
        Command::Install(args) => {
            setup::build_chain()?;
            install::run(&args)
        }
        Command::Run { args } => {
            sh::phase(
                1,
                2,
                "checking the build chain (nightly, rust-src, bpf-linker)",
                setup::build_chain,
            )?;
            // cargo's own progress (each crate compiled, the progress bar)
            // shows: the first release build takes minutes.
            sh::phase(
                2,
                2,
                "building blippd (release, with its eBPF programs)",
                || {
                    sh::run(sh::cargo().args([
                        "build",
                        "--release",
                        "-p",
                        "blipp-agent",
                        "--bin",
                        "blippd",
                    ]))
                },
            )?;
            let blippd = sh::target_dir()?.join("release/blippd");
            let mut cmd = std::process::Command::new(blippd);
            cmd.args(args);
            sh::exec(cmd)
        }
        Command::Test => {
            setup::all()?;
            // The default members: every crate but blipp-ebpf, which only
            // builds for the BPF target (the agent's build script does that).
            sh::run(sh::cargo().args(["build", "--all-targets"]))?;
            sh::run(
                sh::cargo()
                    .args(["test", "--no-fail-fast"])
                    .env("BLIPP_NO_SKIP", "1"),
            )?;
            vm::run(&Arch::ALL, None)
        }
        Command::Build { arch } => build::run(arch),
        Command::ClippyEbpf => {
            setup::build_chain()?;
            let toolchain =
                setup::ebpf_toolchain().context("no nightly toolchain for the kernel programs")?;
            // Its own target directory: build-std artefacts for the BPF
            // target would otherwise invalidate the host build's.
            let target = sh::target_dir()?.join("ebpf-clippy");
            sh::run(
                std::process::Command::new("cargo")
                    .arg(format!("+{toolchain}"))
                    .args([
                        "clippy",
                        "-p",
                        "blipp-ebpf",
                        "--target",
                        "bpfel-unknown-none",
                    ])
                    .args(["-Z", "build-std=core", "--target-dir"])
                    .arg(target)
                    .args(["--", "-D", "warnings"]),
            )
        }
        Command::VmTest { kernel, arch } => vm::run(&[arch], kernel.as_deref()),
        Command::Bench(args) => bench::run(&args),
        Command::ProcFloor { files, keep_open } => {
            bench::floor::read_forever(&files, std::time::Duration::from_secs(1), keep_open)
        }
    }
}
