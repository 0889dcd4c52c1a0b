//! Start-up to the first sample: `blippd --once` with its built-in probes,
//! in `proc` and in `auto` mode, alternating, timed from the spawn to the
//! first sample on stdout. In `auto` mode the time is broken down at
//! blippd's own log lines: the eBPF object loaded (kernel BTF read, the
//! loader made, the object's maps created), the programs verified and
//! attached (the line before the re-execution), the re-executed image
//! taking the programs over, then the first collection.

use std::io::{BufRead as _, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use super::stats::Summary;

/// How long one start may take before the run is called failed.
const TIMEOUT: Duration = Duration::from_secs(30);

/// The log lines that end each phase of an `auto` start, in order.
const PHASES: [(&str, &str); 3] = [
    ("eBPF object loaded", "BTF read, loader made, maps created"),
    (
        "re-executing to leave the loading memory behind",
        "programs verified and attached",
    ),
    (
        "eBPF programs and maps inherited",
        "re-execution, programs taken over",
    ),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Proc,
    Auto,
}

impl Mode {
    fn arg(self) -> &'static str {
        match self {
            Mode::Proc => "proc",
            Mode::Auto => "auto",
        }
    }
}

/// One start: the instants (since the spawn) at which each phase ended,
/// the last being the first sample.
struct Start {
    mode: Mode,
    ends: Vec<Duration>,
}

/// Lines of `pipe`, each with the instant it arrived, on a thread.
pub(super) fn lines_of(pipe: impl Read + Send + 'static) -> mpsc::Receiver<(Instant, String)> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if tx.send((Instant::now(), line)).is_err() {
                break;
            }
        }
    });
    rx
}

fn one(blippd: &Path, mode: Mode) -> Result<Start> {
    let mut cmd = Command::new(blippd);
    cmd.args(["--once", "--mode", mode.arg(), "-d", "DEBUG"])
        .args(["--ini", "none", "--node-info", "none"])
        .args(["--control-socket", "none"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("NO_COLOR", "1");
    let spawned = Instant::now();
    let mut child = cmd.spawn()?;
    let (Some(out), Some(err)) = (child.stdout.take(), child.stderr.take()) else {
        bail!("blippd without pipes");
    };
    let (out, err) = (lines_of(out), lines_of(err));
    let first = out.recv_timeout(TIMEOUT);
    let status = child.wait()?;
    let Ok((first, _)) = first else {
        bail!(
            "no sample from blippd --once --mode {} ({status})",
            mode.arg()
        );
    };
    let log: Vec<(Instant, String)> = err.try_iter().collect();
    let mut ends = Vec::new();
    if mode == Mode::Auto {
        for (line, _) in PHASES {
            let Some((at, _)) = log.iter().find(|(_, l)| l.contains(line)) else {
                let text: Vec<&str> = log.iter().map(|(_, l)| l.as_str()).collect();
                bail!(
                    "no {line:?} line from blippd in auto mode (is eBPF available?):\n{}",
                    text.join("\n")
                );
            };
            ends.push(*at - spawned);
        }
    }
    ends.push(first - spawned);
    Ok(Start { mode, ends })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Runs `rounds` alternating starts per mode and prints the table.
#[expect(clippy::print_stdout, reason = "the benchmark's figures")]
pub fn run(blippd: &Path, rounds: u32) -> Result<()> {
    println!("\n## Start-up to the first sample: blippd --once, built-in probes, {rounds} rounds");
    let mut starts = Vec::new();
    for round in 0..rounds {
        let order = if round % 2 == 0 {
            [Mode::Proc, Mode::Auto]
        } else {
            [Mode::Auto, Mode::Proc]
        };
        for mode in order {
            let s = one(blippd, mode)?;
            println!(
                "round {}/{rounds}  {:<4} first sample after {:.1} ms",
                round + 1,
                mode.arg(),
                ms(*s.ends.last().unwrap_or(&Duration::ZERO))
            );
            starts.push(s);
        }
    }
    print!("{}", table(&starts));
    Ok(())
}

fn table(starts: &[Start]) -> String {
    use std::fmt::Write as _;
    let median = |mode: Mode, i: usize, from_previous: bool| {
        let values: Vec<f64> = starts
            .iter()
            .filter(|s| s.mode == mode)
            .filter_map(|s| {
                let end = *s.ends.get(i)?;
                let start = match (from_previous, i) {
                    (true, 1..) => s.ends[i - 1],
                    _ => Duration::ZERO,
                };
                Some(ms(end - start))
            })
            .collect();
        Summary::of(&values).map_or_else(|| "—".to_owned(), |s| s.show(1).to_string())
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n| mode | phase | ms (phase) | ms since exec |\n|---|---|---|---|"
    );
    let _ = writeln!(
        out,
        "| proc | exec to first sample | {} | {} |",
        median(Mode::Proc, 0, true),
        median(Mode::Proc, 0, false)
    );
    let mut phases: Vec<&str> = PHASES.iter().map(|(_, what)| *what).collect();
    phases.push("first collection");
    for (i, what) in phases.iter().enumerate() {
        let _ = writeln!(
            out,
            "| auto | {what} | {} | {} |",
            median(Mode::Auto, i, true),
            median(Mode::Auto, i, false)
        );
    }
    out
}
