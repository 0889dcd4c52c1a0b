//! The UNIS/MS test server as a process, for `cargo xtask bench startup`
//! (and for trying blippd against a UNIS by hand): it prints its URL on the
//! first line of stdout, then answers one line of stdin at a time:
//! `requests` prints `{"unis": N, "ms": M, "own": K}`, the requests it has
//! answered so far from clients to UNIS and to the MS, and its own `GET`s
//! of `metadata_URL` (one per `POST /events`, as the real MS does); end of
//! input stops it.
//!
//! It validates bodies with the real server's schemas when `../shared` is
//! there, and says so on stderr when it is not.

use std::io::{BufRead as _, Write as _};
use std::process::ExitCode;

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

#[expect(clippy::print_stderr, reason = "a tool's diagnostics")]
fn main() -> ExitCode {
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
                serde_json::json!({"unis": requests.len() - ms - own, "ms": ms, "own": own})
            }
            other => serde_json::json!({"error": format!("unknown command {other:?}")}),
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
