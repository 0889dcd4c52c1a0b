//! blippcmd: the operator's client. Shows and steers a running blippd
//! through its control socket (status, configuration, probes, log level,
//! latest samples, an interactive shell), edits blipp's service in UNIS
//! (`--unis URL service ...`), and offline checks configurations, lists the
//! probes this build has and shows what blipp knows about the host.

use std::io::{IsTerminal as _, Read as _, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use blipp::config::edit::{self, Edit};
use blipp::config::{self, Tls};
use blipp::control::client::{Client, ClientError};
use blipp::control::protocol::{Changes, ProbeAction, Request};
use blipp::control::{server, shell, show, top};
use blipp::host::HostInfo;
use blipp::probe::{Fallback, REGISTRY};
use blipp::sample::Timestamp;
use blipp::status::StatusReport;
use blipp::unis::service::{self, Which};
use blipp::unis::{self, Endpoint};
use clap::{Parser, Subcommand};
use serde_json::Value;

#[derive(Parser)]
#[command(name = "blippcmd", version, about)]
struct Cli {
    /// blippd's control socket [default: $RUNTIME_DIRECTORY/blippd.sock,
    /// else /run/blipp/blippd.sock].
    #[arg(long, global = true, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Print blippd's answers as JSON.
    #[arg(long, global = true)]
    json: bool,
    /// UNIS-client mode: the UNIS that holds blipp's service (for `service`).
    #[arg(long, value_name = "URL")]
    unis: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// blippd's state: every probe's source, schedule, collections, errors.
    Status,
    /// The running configuration; `config set` and `config del` change it.
    Config {
        #[command(subcommand)]
        action: Option<ConfigAction>,
    },
    /// Set one key of a probe (`schedule_params.every` names a nested
    /// key); VALUE is JSON, else text.
    Set {
        /// The probe.
        probe: String,
        /// Its key.
        key: String,
        /// The new value.
        value: String,
    },
    /// Stop, start or restart a probe.
    Probe {
        /// What to do.
        #[arg(value_enum)]
        action: Action,
        /// The probe.
        name: String,
    },
    /// Read the configuration file again and apply what changed (drops
    /// edits made through the control socket).
    Reload,
    /// Change blippd's log filter: TRACE, DEBUG, INFO, WARN, ERROR, or
    /// directives such as blipp::arbiter=debug,info.
    LogLevel {
        /// The level or directives.
        level: String,
    },
    /// A probe's latest samples (JSON lines, oldest first).
    Tail {
        /// The probe.
        probe: String,
        /// How many [default: 10, at most 128].
        count: Option<usize>,
    },
    /// A live view: every probe's state and source, and the main
    /// quantities with their last minute, refreshed in place (plain
    /// frames when standard output is not a terminal). Ctrl-C ends it.
    Top {
        /// Refreshes before it ends [default: until interrupted].
        #[arg(short = 'n', long, value_name = "N")]
        iterations: Option<u64>,
        /// Seconds between refreshes.
        #[arg(short = 'd', long, value_name = "SECONDS", default_value_t = 1.0)]
        delay: f64,
    },
    /// Navigate and edit the running configuration interactively.
    Shell,
    /// UNIS-client mode (with --unis URL): blipp's service in UNIS.
    Service {
        #[command(flatten)]
        which: ServiceArgs,
        #[command(subcommand)]
        action: ServiceAction,
    },
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

#[derive(Subcommand)]
enum ConfigAction {
    /// Print it (the default).
    Show,
    /// Set the value at a JSON pointer; VALUE is JSON, else text.
    Set {
        /// e.g. /properties/configurations/probes/cpu/schedule_params/every
        pointer: String,
        /// The new value.
        value: String,
    },
    /// Remove the key at a JSON pointer.
    Del {
        /// e.g. /properties/configurations/probes/cpu/percpu
        pointer: String,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Action {
    Stop,
    Start,
    Restart,
}

#[derive(clap::Args)]
struct ServiceArgs {
    /// The service's id [default: the service named --name on this host's node].
    #[arg(long, value_name = "ID")]
    service_id: Option<String>,
    /// The service's name.
    #[arg(long, default_value = "blipp")]
    name: String,
    /// This host's node URN [default: derived from the host, as blippd does].
    #[arg(long)]
    urn: Option<String>,
    /// CA bundle to verify UNIS with (PEM).
    #[arg(long, value_name = "FILE")]
    ssl_cafile: Option<PathBuf>,
    /// Client certificate (PEM).
    #[arg(long, value_name = "FILE")]
    ssl_cert: Option<PathBuf>,
    /// Client key (PEM).
    #[arg(long, value_name = "FILE")]
    ssl_key: Option<PathBuf>,
}

#[derive(Subcommand)]
enum ServiceAction {
    /// Print the service (the newest version).
    Get,
    /// Write a service object (e.g. `get`'s output, edited), checked first.
    Put {
        /// The JSON file; `-` reads standard input.
        file: PathBuf,
    },
    /// Set the value at a JSON pointer of the service, checked, written.
    Set {
        /// e.g. /properties/configurations/probes/cpu/schedule_params/every
        pointer: String,
        /// The new value (JSON, else text).
        value: String,
    },
    /// Remove the key at a JSON pointer of the service.
    Del {
        /// The pointer.
        pointer: String,
    },
    /// Make the local blippd read its service from UNIS now.
    Reload,
}

/// A failure: its lines, each printed as `blippcmd: ...`, and the exit
/// status.
struct Failed(Vec<String>, u8);

impl Failed {
    fn new(message: String, code: u8) -> Self {
        Failed(vec![message], code)
    }
}

impl<E: std::error::Error> From<E> for Failed {
    fn from(e: E) -> Self {
        Failed::new(e.to_string(), 1)
    }
}

#[expect(
    clippy::print_stdout,
    reason = "a command-line client prints its results"
)]
fn print(text: &str) {
    print!("{text}");
    let _ = std::io::stdout().flush();
}

fn pretty(v: &Value) -> String {
    let mut text = serde_json::to_string_pretty(v).unwrap_or_default();
    text.push('\n');
    text
}

fn ask(cli: &Cli, request: &Request) -> Result<Value, ClientError> {
    let path = cli.socket.clone().unwrap_or_else(server::default_path);
    Client::connect(&path)?.request(request)
}

/// Sends a request that changes the configuration and prints what moved.
/// A change blippd refuses exits with status 2, as a bad file does at
/// start-up (`blippd`, `--check`, `blippcmd check`); a probe action it
/// refuses (no such probe) with 1.
fn change(cli: &Cli, request: &Request) -> Result<(), Failed> {
    let v = ask(cli, request).map_err(|e| match (e, request) {
        (
            e @ ClientError::Refused(_),
            Request::Set { .. } | Request::Delete { .. } | Request::Reload {},
        ) => Failed::new(e.to_string(), 2),
        (e, _) => Failed::from(e),
    })?;
    if cli.json {
        print(&pretty(&v));
    } else {
        let c: Changes = serde_json::from_value(v)?;
        print(&show::changes(&c));
    }
    Ok(())
}

fn status(cli: &Cli) -> Result<(), Failed> {
    let v = ask(cli, &Request::Status {})?;
    if cli.json {
        print(&pretty(&v));
    } else {
        let r: StatusReport = serde_json::from_value(v)?;
        print(&show::status(&r, Timestamp::now().0));
    }
    Ok(())
}

fn tail(cli: &Cli, probe: &str, count: Option<usize>) -> Result<(), Failed> {
    let v = ask(
        cli,
        &Request::Tail {
            probe: probe.to_owned(),
            count,
        },
    )?;
    let mut text = String::new();
    for s in v.as_array().into_iter().flatten() {
        text.push_str(&show::sample_line(s));
        text.push('\n');
    }
    print(&text);
    Ok(())
}

fn service_cmd(cli: &Cli, which: &ServiceArgs, action: &ServiceAction) -> Result<(), Failed> {
    if let ServiceAction::Reload = action {
        ask(cli, &Request::UnisPoll {})?;
        print("blippd is reading its service from UNIS\n");
        return Ok(());
    }
    let Some(url) = &cli.unis else {
        return Err(Failed::new(
            "service: --unis URL names the UNIS that holds the service".into(),
            2,
        ));
    };
    let tls = Tls {
        use_ssl: which.ssl_cert.is_some(),
        ssl_cert: which.ssl_cert.clone(),
        ssl_key: which.ssl_key.clone(),
        ssl_cafile: which.ssl_cafile.clone(),
    };
    let endpoint = Endpoint::new(url, unis::tls::http_client(&tls)?)?;
    let target = match &which.service_id {
        Some(id) => Which::Id(id.clone()),
        None => Which::NameOnNode {
            name: which.name.clone(),
            urn: which.urn.clone().unwrap_or_else(|| {
                HostInfo::gather(std::path::Path::new("/proc"), std::path::Path::new("/sys")).urn()
            }),
        },
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match action {
            ServiceAction::Get => {
                print(&pretty(&service::get(&endpoint, &target).await?));
            }
            ServiceAction::Put { file } => {
                let text = if file.as_os_str() == "-" {
                    let cap = blipp::limits::CONFIG_FILE_MAX;
                    let text = std::io::read_to_string(std::io::stdin().take(cap + 1))?;
                    if text.len() as u64 > cap {
                        let e = blipp::bounded::too_large(cap);
                        return Err(Failed::new(format!("standard input: {e}"), 2));
                    }
                    text
                } else {
                    config::read_text(file).map_err(|e| Failed::new(e.to_string(), 2))?
                };
                let doc: Value = serde_json::from_str(&text)
                    .map_err(|e| Failed::new(format!("{}: not JSON: {e}", file.display()), 2))?;
                let id = service::put(&endpoint, &doc, &file.display().to_string()).await?;
                print(&format!(
                    "service {id} written; blippd follows it at its next poll (blippcmd service reload: now)\n"
                ));
            }
            ServiceAction::Set { pointer, value } => {
                let e = Edit {
                    pointer: pointer.clone(),
                    value: Some(edit::value_from_arg(value)),
                };
                service::edit(&endpoint, &target, &e).await?;
                print("service written; blippd follows it at its next poll (blippcmd service reload: now)\n");
            }
            ServiceAction::Del { pointer } => {
                let e = Edit {
                    pointer: pointer.clone(),
                    value: None,
                };
                service::edit(&endpoint, &target, &e).await?;
                print("service written; blippd follows it at its next poll (blippcmd service reload: now)\n");
            }
            ServiceAction::Reload => {}
        }
        Ok(())
    })
}

fn run(cli: &Cli) -> Result<(), Failed> {
    match &cli.command {
        Command::Status => status(cli),
        Command::Config { action } => match action {
            None | Some(ConfigAction::Show) => {
                print(&pretty(&ask(cli, &Request::Config {})?));
                Ok(())
            }
            Some(ConfigAction::Set { pointer, value }) => change(
                cli,
                &Request::Set {
                    pointer: pointer.clone(),
                    value: edit::value_from_arg(value),
                },
            ),
            Some(ConfigAction::Del { pointer }) => change(
                cli,
                &Request::Delete {
                    pointer: pointer.clone(),
                },
            ),
        },
        Command::Set { probe, key, value } => change(
            cli,
            &Request::Set {
                pointer: edit::probe_pointer(probe, key),
                value: edit::value_from_arg(value),
            },
        ),
        Command::Probe { action, name } => change(
            cli,
            &Request::Probe {
                action: match action {
                    Action::Stop => ProbeAction::Stop,
                    Action::Start => ProbeAction::Start,
                    Action::Restart => ProbeAction::Restart,
                },
                name: name.clone(),
            },
        ),
        Command::Reload => change(cli, &Request::Reload {}),
        Command::LogLevel { level } => {
            let v = ask(
                cli,
                &Request::LogLevel {
                    level: level.clone(),
                },
            )?;
            print(&format!(
                "log filter: {}\n",
                v.get("filter").and_then(Value::as_str).unwrap_or("?")
            ));
            Ok(())
        }
        Command::Tail { probe, count } => tail(cli, probe, *count),
        Command::Top { iterations, delay } => {
            let delay = std::time::Duration::try_from_secs_f64(*delay)
                .ok()
                .filter(|d| *d >= std::time::Duration::from_millis(100))
                .ok_or_else(|| {
                    Failed::new(
                        format!("--delay {delay} is invalid: expected seconds, at least 0.1"),
                        2,
                    )
                })?;
            let path = cli.socket.clone().unwrap_or_else(server::default_path);
            let options = top::terminal::Options {
                refreshes: *iterations,
                delay,
                terminal: std::io::stdout().is_terminal(),
            };
            top::terminal::run(&path, options, std::io::stdout().lock())?;
            Ok(())
        }
        Command::Shell => {
            let path = cli.socket.clone().unwrap_or_else(server::default_path);
            if std::io::stdin().is_terminal() {
                let history = shell::history::path(|v| std::env::var_os(v));
                shell::interactive(&path, history.as_deref(), std::io::stdout())?;
            } else {
                shell::run(&path, std::io::stdin().lock(), std::io::stdout())?;
            }
            Ok(())
        }
        Command::Service { which, action } => service_cmd(cli, which, action),
        Command::Check { file } => match config::load(Some(file), &config::Overrides::default()) {
            // As `blippd --check` and `blippd --strict`: every probe built,
            // none started.
            Ok(c) => {
                let refused = blipp::probe::check(&c, &config::origin(Some(file)));
                if !refused.is_empty() {
                    return Err(Failed(refused.iter().map(ToString::to_string).collect(), 2));
                }
                let mut text = String::new();
                for p in &c.probes {
                    text.push_str(&format!(
                        "{}\t{}\t{:?}\t{:?}\n",
                        p.name, p.module, p.mode, p.status
                    ));
                }
                print(&text);
                Ok(())
            }
            Err(e) => Err(Failed::new(e.to_string(), 2)),
        },
        Command::Probes => {
            let mut text = String::new();
            for s in REGISTRY {
                let fallback = match s.fallback {
                    Fallback::Only(source) => source.as_str(),
                    Fallback::Proc => "ebpf|proc",
                    Fallback::None => "ebpf",
                };
                text.push_str(&format!(
                    "{:<10} {:<10} {}\n",
                    s.module, fallback, s.summary
                ));
            }
            print(&text);
            Ok(())
        }
        Command::Schema => {
            print(config::schema::SCHEMA_TEXT);
            Ok(())
        }
        Command::Host { proc_dir, sys_dir } => {
            let host = HostInfo::gather(proc_dir, sys_dir);
            let mut json = serde_json::json!({ "urn": host.urn() });
            json["host"] = serde_json::to_value(&host)?;
            print(&pretty(&json));
            Ok(())
        }
    }
}

#[expect(
    clippy::print_stderr,
    reason = "a command-line client reports failures on stderr"
)]
fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failed(lines, code)) => {
            for line in lines {
                eprintln!("blippcmd: {}", config::escape_controls(&line));
            }
            ExitCode::from(code)
        }
    }
}
