//! The UNIS/MS test server as a process, for `cargo xtask bench startup`
//! (and for trying blippd against a UNIS by hand): it prints its URL on the
//! first line of stdout, then answers one line of stdin at a time:
//! `requests` prints `{"unis": N, "ms": M, "events": E, "own": K}`, the
//! requests it has answered so far from clients to UNIS and to the MS (E
//! of them to `/events`: collection lookups and creations), and its own `GET`s
//! of `metadata_URL` (one per `POST /events`, as the real MS does);
//! `collections` prints `{"metadata": N, "collections": M}`, the metadata
//! records in UNIS and the MS collections created; `arrivals TEXT` prints
//! `{"at": [...]}`, when (µs since the epoch) each accepted `POST /data`
//! carrying a mid whose metadata's event type contains TEXT arrived; end
//! of input stops it. `--events-delay SECONDS` makes each `POST /events`
//! take that long, as the real MS's does (about 0.1 s).
//!
//! It validates bodies with the real server's schemas when `../shared` is
//! there, and says so on stderr when it is not.

use std::collections::BTreeSet;
use std::io::{BufRead as _, Write as _};
use std::process::ExitCode;
use std::time::Duration;

use blipp_tests::unis_server::{Options, Schemas, UnisServer};

/// MS paths; everything else is UNIS.
fn is_ms(target: &str) -> bool {
    let path = target.split('?').next().unwrap_or(target);
    path == "/events" || path.starts_with("/events/") || path == "/data"
}

/// The server's own fetch of a `metadata_URL`: one metadata record by id.
/// blippd reads metadata only through filtered queries of the collection.
fn is_own(method: &str, target: &str) -> bool {
    method == "GET"
        && target
            .strip_prefix("/metadata/")
            .is_some_and(|id| !id.is_empty() && !id.contains(['/', '?']))
}

/// `--events-delay SECONDS` from the command line, the only option.
fn events_delay() -> Result<Option<Duration>, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => Ok(None),
        [flag, secs] if flag == "--events-delay" => secs
            .parse::<f64>()
            .ok()
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
            .map(Some)
            .ok_or_else(|| format!("--events-delay: {secs:?} is not a number of seconds")),
        other => Err(format!(
            "unexpected arguments {other:?}: the only option is --events-delay SECONDS"
        )),
    }
}

/// When each accepted `POST /data` with a mid among `mids` arrived.
fn arrivals(server: &UnisServer, text: &str) -> Vec<u64> {
    let mids: BTreeSet<String> = server
        .records("metadata")
        .iter()
        .filter(|m| m["eventType"].as_str().is_some_and(|t| t.contains(text)))
        .filter_map(|m| m["id"].as_str().map(str::to_owned))
        .collect();
    server.data_arrivals(&mids)
}

#[expect(clippy::print_stderr, reason = "a tool's diagnostics")]
fn main() -> ExitCode {
    let events_delay = match events_delay() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("blipp-unis-server: {e}");
            return ExitCode::from(2);
        }
    };
    let schemas = match blipp_tests::shared::schema_dir() {
        Some(dir) => match Schemas::load(&dir) {
            Ok(s) => Some(std::sync::Arc::new(s)),
            Err(e) => {
                eprintln!("blipp-unis-server: schemas in {}: {e:#}", dir.display());
                return ExitCode::FAILURE;
            }
        },
        None => {
            eprintln!(
                "blipp-unis-server: ../shared/unis not found: bodies are NOT validated with the real server's schemas"
            );
            None
        }
    };
    let server = match UnisServer::start(Options {
        schemas,
        events_delay,
        ..Options::default()
    }) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("blipp-unis-server: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{}", server.url())
        .and_then(|()| out.flush())
        .is_err()
    {
        return ExitCode::FAILURE;
    }
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let answer = match line.trim() {
            "requests" => {
                let requests = server.requests();
                let ms = requests.iter().filter(|r| is_ms(&r.target)).count();
                let own = requests
                    .iter()
                    .filter(|r| is_own(&r.method, &r.target))
                    .count();
                let events = requests
                    .iter()
                    .filter(|r| is_ms(&r.target) && r.target.starts_with("/events"))
                    .count();
                serde_json::json!({"unis": requests.len() - ms - own, "ms": ms, "events": events, "own": own})
            }
            "collections" => serde_json::json!({
                "metadata": server.records("metadata").len(),
                "collections": server.events().len(),
            }),
            other => match other.strip_prefix("arrivals ") {
                Some(text) => serde_json::json!({"at": arrivals(&server, text)}),
                None => serde_json::json!({"error": format!("unknown command {other:?}")}),
            },
        };
        if writeln!(out, "{answer}")
            .and_then(|()| out.flush())
            .is_err()
        {
            break;
        }
    }
    ExitCode::SUCCESS
}
