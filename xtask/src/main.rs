//! `cargo xtask`: the project's own commands. `run` and `test` are the two
//! README commands; both install what they need first (`setup`).

mod install;
mod setup;
mod sh;

use anyhow::Result;
use clap::{Parser, Subcommand};

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
    /// Run the whole test suite: unit, integration, eBPF-on-host (as root).
    Test,
    /// Install blippd as a systemd service (the eBPF unit where this kernel
    /// loads blipp's programs, the /proc-only unit elsewhere).
    Install(install::Install),
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Setup => setup::all(),
        Command::Install(args) => {
            setup::build_chain()?;
            install::run(&args)
        }
        Command::Run { args } => {
            setup::build_chain()?;
            let mut cmd = sh::cargo();
            cmd.args([
                "run",
                "--release",
                "--quiet",
                "-p",
                "blipp-agent",
                "--bin",
                "blippd",
                "--",
            ]);
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
                    .env("BLIPP_REQUIRE_ROOT", "1"),
            )
        }
    }
}
