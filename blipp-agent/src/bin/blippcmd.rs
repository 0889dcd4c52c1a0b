//! blippcmd: the operator's client. Checks configurations offline, lists
//! the probes this build has, and shows what blipp knows about the host.

use std::path::PathBuf;
use std::process::ExitCode;

use blipp::config;
use blipp::host::HostInfo;
use blipp::probe::{Fallback, REGISTRY};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "blippcmd", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a configuration file against the schema and print its probes.
    Check {
        /// The configuration file.
        file: PathBuf,
    },
    /// List the probe modules this build has.
    Probes,
    /// Print the configuration's JSON Schema.
    Schema,
    /// Print the host information blipp registers as its UNIS node (JSON),
    /// with the node URN.
    Host {
        /// Root of /proc.
        #[arg(long, default_value = "/proc")]
        proc_dir: PathBuf,
        /// Root of /sys.
        #[arg(long, default_value = "/sys")]
        sys_dir: PathBuf,
    },
}

#[expect(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line client"
)]
fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { file } => match config::load(Some(&file), &config::Overrides::default()) {
            Ok(c) => {
                for p in &c.probes {
                    println!("{}\t{}\t{:?}\t{:?}", p.name, p.module, p.mode, p.status);
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("blippcmd: {e}");
                ExitCode::from(2)
            }
        },
        Command::Probes => {
            for s in REGISTRY {
                let fallback = match s.fallback {
                    Fallback::ProcOnly => "proc",
                    Fallback::Proc => "ebpf|proc",
                };
                println!("{:<10} {:<10} {}", s.module, fallback, s.summary);
            }
            ExitCode::SUCCESS
        }
        Command::Schema => {
            print!("{}", config::schema::SCHEMA_TEXT);
            ExitCode::SUCCESS
        }
        Command::Host { proc_dir, sys_dir } => {
            let host = HostInfo::gather(&proc_dir, &sys_dir);
            let mut json = serde_json::json!({ "urn": host.urn() });
            json["host"] = serde_json::to_value(&host).expect("host information serializes");
            println!(
                "{}",
                serde_json::to_string_pretty(&json).expect("a JSON value serializes")
            );
            ExitCode::SUCCESS
        }
    }
}
