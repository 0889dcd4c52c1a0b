//! Part 5, series: what many series cost blippd's delivery to an MS that,
//! like the real periscope MS, takes about 0.1 s to create a collection and
//! answers a batch lookup with 404 when one mid of it has none. Two
//! scenarios against the test server with that delay, series made by a
//! `cmd` probes whose regexes have one group per series:
//!
//! - restart: blippd runs with 1000 series until every collection exists,
//!   stops, and starts again with 10 more. Counted from its exec until all
//!   1010 collections exist: the `/events` requests (lookups and creations)
//!   and the wall time, next to what one `POST /events` per series costs,
//!   as the original BLiPP (and blipp before it bisected lookups) did.
//! - burst: with `mem` and `cpu` reporting every second, 1000 new series
//!   appear at once (100 probes of 10 series each, first collecting
//!   together). Measured: the longest gap between two deliveries of
//!   the old series' data during the burst, and the time until every new
//!   collection exists, next to creating them one at a time.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};

use super::daemon::Daemon;
use super::machine;
use super::stats::Summary;
use super::test_server::{Server, build_server};

/// Options of `cargo xtask bench series`.
#[derive(Clone, clap::Parser)]
pub struct Args {
    /// Rounds of each scenario, each on an empty server.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
}

/// The real MS's time to create one collection (`POST /events`), as
/// recorded against the periscope server.
const CREATE: Duration = Duration::from_millis(100);
const EXISTING: usize = 1000;
const NEW: usize = 10;
const BURST: usize = 1000;
/// How long any wait may take before the run is called failed.
const TIMEOUT: Duration = Duration::from_secs(180);
/// When the burst probe first collects, after blippd's start: time enough
/// for registration and the old series' first deliveries.
const BURST_AFTER: f64 = 10.0;

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Series per `cmd` probe. A regex's capture cost grows with the square
/// of its groups (one with 1000 groups takes about 13 s per match on a
/// 2-CPU machine), so the series come from many small probes.
const PER_PROBE: usize = 10;

/// `n` series (a multiple of [`PER_PROBE`]) from `cmd` probes printing
/// [`PER_PROBE`] numbers each, collecting every second, first at `start`
/// (seconds since the epoch) when given; `name` prefixes probe names and
/// event types.
fn series_probes(name: &str, n: usize, start: Option<f64>) -> serde_json::Map<String, Value> {
    let regex: Vec<String> = (0..PER_PROBE).map(|i| format!("(?P<g{i}>\\d+)")).collect();
    let mut schedule = json!({"every": 1});
    if let Some(start) = start {
        schedule["start_time"] = json!(start);
    }
    (0..n / PER_PROBE)
        .map(|p| {
            let types: serde_json::Map<String, Value> = (0..PER_PROBE)
                .map(|i| {
                    (
                        format!("g{i}"),
                        json!(format!("ps:tools:blipp:bench:{name}{p}:g{i}")),
                    )
                })
                .collect();
            let probe = json!({"probe_module": "cmd", "command": format!("seq -s ' ' {PER_PROBE}"),
                "regex": regex.join(" "), "eventTypes": types, "schedule_params": schedule});
            (format!("{name}{p}"), probe)
        })
        .collect()
}

fn write_config(dir: &Path, url: &str, probes: &Value) -> Result<PathBuf> {
    let doc = json!({"properties": {"configurations": {
        "unis_url": url,
        "spool_dir": dir.join("spool").display().to_string(),
        "probes": probes,
    }}});
    let path = dir.join("blipp.json");
    std::fs::write(&path, doc.to_string())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// blippd on `config`; its warnings go to this process's stderr.
fn start_blippd(blippd: &Path, config: &Path) -> Result<Daemon> {
    Daemon::spawn(
        "blippd",
        Command::new(blippd)
            .arg("-c")
            .arg(config)
            .args(["--control-socket", "none", "-d", "WARN"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .env("NO_COLOR", "1"),
    )
}

/// Polls the server until `done` holds of (metadata, collections).
fn wait_collections(
    server: &mut Server,
    what: &str,
    done: impl Fn(u64, u64) -> bool,
) -> Result<()> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let (m, c) = server.collections()?;
        if done(m, c) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{what}: not within {TIMEOUT:?} ({m} metadata, {c} collections)");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One restart: (`/events` requests, wall time).
fn restart(blippd: &Path, server_bin: &Path, dir: &Path) -> Result<(u64, Duration)> {
    let mut server = Server::start(server_bin, Some(CREATE))?;
    let first = write_config(
        dir,
        &server.url,
        &Value::Object(series_probes("s", EXISTING, None)),
    )?;
    let daemon = start_blippd(blippd, &first)?;
    let want = EXISTING as u64;
    wait_collections(&mut server, "the first start's collections", |m, c| {
        m == want && c == want
    })?;
    daemon.stop()?;
    let more = write_config(
        dir,
        &server.url,
        &Value::Object(series_probes("s", EXISTING + NEW, None)),
    )?;
    let before = server.events_requests()?;
    let exec = Instant::now();
    let daemon = start_blippd(blippd, &more)?;
    let want = (EXISTING + NEW) as u64;
    wait_collections(&mut server, "the restart's collections", |m, c| {
        m == want && c == want
    })?;
    let wall = exec.elapsed();
    let requests = server.events_requests()? - before;
    daemon.stop()?;
    server.stop()?;
    Ok((requests, wall))
}

/// One burst: (longest gap in the old series' deliveries, time until every
/// collection exists).
fn burst(blippd: &Path, server_bin: &Path, dir: &Path) -> Result<(Duration, Duration)> {
    let mut server = Server::start(server_bin, Some(CREATE))?;
    let start = now() + BURST_AFTER;
    let mut probes = series_probes("burst", BURST, Some(start));
    probes.insert(
        "mem".to_owned(),
        json!({"probe_module": "mem", "schedule_params": {"every": 1}}),
    );
    probes.insert(
        "cpu".to_owned(),
        json!({"probe_module": "cpu", "schedule_params": {"every": 1}}),
    );
    let config = write_config(dir, &server.url, &Value::Object(probes))?;
    let daemon = start_blippd(blippd, &config)?;
    let deadline = Instant::now() + TIMEOUT;
    while server.arrivals(":memory:")?.is_empty() {
        if Instant::now() > deadline {
            bail!("no data of the old series within {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if now() >= start {
        bail!("the old series' first delivery took longer than {BURST_AFTER} s");
    }
    let (old, _) = server.collections()?;
    let burst = BURST as u64;
    wait_collections(&mut server, "the burst's collections", |m, c| {
        m >= old + burst && c == m
    })?;
    let done = now();
    let to_us = |t: f64| (t * 1e6) as u64;
    let mut at: Vec<u64> = server
        .arrivals(":memory:")?
        .into_iter()
        .filter(|t| (to_us(start)..=to_us(done)).contains(t))
        .collect();
    at.insert(0, to_us(start));
    at.push(to_us(done));
    let gap = at.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
    daemon.stop()?;
    server.stop()?;
    Ok((
        Duration::from_micros(gap),
        Duration::from_secs_f64(done - start),
    ))
}

/// Runs part 5 and prints its table.
#[expect(clippy::print_stdout, reason = "the benchmark's figures")]
pub fn run(opts: &Args, blippd: &Path) -> Result<()> {
    let server_bin = build_server()?;
    let scratch = super::scratch_dir("series")?;
    println!(
        "\n## Many series against the UNIS/MS test server ({} ms per new collection, as the real MS): {} rounds, load average before: {}",
        CREATE.as_millis(),
        opts.rounds,
        machine::loadavg()
    );
    let (mut requests, mut walls, mut gaps, mut creations) = (vec![], vec![], vec![], vec![]);
    for round in 0..opts.rounds {
        let dir = scratch.join(format!("restart-{round}"));
        std::fs::create_dir_all(&dir)?;
        let (r, wall) = restart(blippd, &server_bin, &dir).context("restart")?;
        println!(
            "round {}/{}  restart with {EXISTING} existing + {NEW} new series: {r} /events requests, all collections after {:.2} s",
            round + 1,
            opts.rounds,
            wall.as_secs_f64()
        );
        let dir = scratch.join(format!("burst-{round}"));
        std::fs::create_dir_all(&dir)?;
        let (gap, all) = burst(blippd, &server_bin, &dir).context("burst")?;
        println!(
            "round {}/{}  burst of {BURST} new series: old data's longest gap {:.2} s, every collection after {:.2} s",
            round + 1,
            opts.rounds,
            gap.as_secs_f64(),
            all.as_secs_f64()
        );
        #[expect(clippy::cast_precision_loss, reason = "counts for display")]
        requests.push(r as f64);
        walls.push(wall.as_secs_f64());
        gaps.push(gap.as_secs_f64());
        creations.push(all.as_secs_f64());
    }
    let show = |v: &[f64], digits: usize| {
        Summary::of(v).map_or("-".to_owned(), |s| s.show(digits).to_string())
    };
    let serial = BURST as f64 * CREATE.as_secs_f64();
    println!(
        "\n| scenario | blippd | one `POST /events` per series, one at a time (computed) |\n|---|---|---|"
    );
    println!(
        "| restart, {EXISTING} existing + {NEW} new series: `/events` requests | {} | {} |",
        show(&requests, 0),
        EXISTING + NEW
    );
    println!(
        "| restart: wall time until every collection exists, s | {} | {:.1} |",
        show(&walls, 2),
        (EXISTING + NEW) as f64 * CREATE.as_secs_f64()
    );
    println!(
        "| burst of {BURST} new series: longest gap in the old series' deliveries, s | {} | {serial:.1} (a sender that creates each collection before posting sends nothing meanwhile) |",
        show(&gaps, 2)
    );
    println!(
        "| burst: time until every new collection exists, s | {} | {serial:.1} |",
        show(&creations, 2)
    );
    println!(
        "\nThe restart counts `/events` requests (batch lookups and creations) from blippd's exec until all {} collections exist; its data (`POST /data`) is not counted. The burst's gap runs from the burst's first collection to the moment every collection exists, between consecutive accepted deliveries of the `mem` probe's data (collected every second).",
        EXISTING + NEW
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_come_from_small_probes_each_with_its_own_event_types() {
        let probes = series_probes("s", 30, Some(12.5));
        assert_eq!(probes.len(), 3);
        let p = &probes["s2"];
        assert_eq!(p["command"], "seq -s ' ' 10");
        assert!(
            p["regex"]
                .as_str()
                .unwrap()
                .starts_with("(?P<g0>\\d+) (?P<g1>\\d+) ")
        );
        assert_eq!(p["eventTypes"]["g9"], "ps:tools:blipp:bench:s2:g9");
        assert_eq!(p["schedule_params"]["start_time"], 12.5);
        let later = series_probes("s", 10, None);
        assert!(later["s0"]["schedule_params"].get("start_time").is_none());
    }
}
