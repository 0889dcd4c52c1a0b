//! Process events under a storm: how much of a fork/exec workload's
//! throughput a process-event tracer takes, whether it keeps up, and what
//! it costs per event. Three loads, each at its highest rate on this
//! machine (one worker per CPU unless told):
//!
//! - `stress-ng --fork N`: fork and exit, no exec;
//! - `stress-ng --exec N`: fork, exec and exit (run as `nobody`, since
//!   stress-ng refuses to run this stressor as root);
//! - a bash loop running `/bin/true`, N at once, as a shell script would.
//!
//! Three sides take turns, the order rotating every round: no tracer;
//! blippd with only the `procevents` probe (eBPF, every second, its
//! defaults: each event read from the ring buffer, at most 1000 reported
//! per collection, the rest counted as dropped); and the classic design,
//! bpftrace printing each fork, exec and exit through its perf buffer
//! (`snoop.bt`, as execsnoop and exitsnoop do).
//!
//! Printed per load: the workload's ops/s and its loss against no tracer
//! (paired by round); the processes the kernel created in the window
//! (`processes` of /proc/stat, which counts threads too) next to the forks
//! and execs each tracer saw; the events it lost (blippd: ring buffer full;
//! bpftrace: "Lost N events") and blippd's dropped (read but not reported);
//! and each tracer's CPU time per event it handled.

use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead as _, BufReader, Seek as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use super::classic;
use super::daemon::Daemon;
use super::measure;
use super::paired::{self, Run};
use super::stats::Summary;

/// Options of `cargo xtask bench procevents`.
#[derive(Clone, clap::Parser)]
pub struct Args {
    /// Rounds (each runs every side once per load).
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Seconds per workload run.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Workers per load (default: one per CPU).
    #[arg(long)]
    workers: Option<usize>,
}

/// Debian packages of the loads and the classic design.
pub const PACKAGES: &[&str] = &["stress-ng", "bpftrace", "util-linux"];

/// The classic design's script.
const SCRIPT: &str = include_str!("snoop.bt");

/// blippd with only the procevents probe, eBPF, every second.
const CONFIG: &str = r#"{"properties":{"configurations":{
    "probe_defaults":{"schedule_params":{"every":1}},
    "probes":{"procevents":{"probe_module":"procevents","mode":"ebpf"}}}}}"#;

const EVENT_PREFIX: &str = "ps:tools:blipp:linux:process:events:";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Load {
    Fork,
    Exec,
    Shell,
}

const LOADS: [Load; 3] = [Load::Fork, Load::Exec, Load::Shell];

impl Load {
    fn label(self) -> &'static str {
        match self {
            Load::Fork => "stress-ng --fork",
            Load::Exec => "stress-ng --exec",
            Load::Shell => "bash loop of /bin/true",
        }
    }

    /// Runs the load with `workers` workers for `seconds`; its ops/s.
    fn run(self, workers: usize, seconds: u64, dir: &Path) -> Result<f64> {
        match self {
            Load::Fork | Load::Exec => stress_ng(self, workers, seconds, dir),
            Load::Shell => shell_loop(workers, seconds),
        }
    }
}

fn stress_ng(load: Load, workers: usize, seconds: u64, dir: &Path) -> Result<f64> {
    fs::create_dir_all(dir)?;
    let yaml = dir.join(format!("{load:?}.yaml"));
    let _ = fs::remove_file(&yaml);
    let stressor = if load == Load::Fork {
        "--fork"
    } else {
        "--exec"
    };
    let mut cmd = if load == Load::Exec {
        // stress-ng refuses its exec stressor as root; its report goes to a
        // directory nobody may write to.
        use std::os::unix::fs::PermissionsExt as _;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o1777))?;
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "stress-ng",
        ]);
        c
    } else {
        Command::new("stress-ng")
    };
    let out = cmd
        .arg(stressor)
        .arg(workers.to_string())
        .args(["--timeout", &format!("{seconds}s"), "--metrics-brief"])
        .arg("--yaml")
        .arg(&yaml)
        .current_dir(dir)
        .output()
        .context("running stress-ng")?;
    if !out.status.success() {
        bail!("stress-ng: {}", String::from_utf8_lossy(&out.stderr));
    }
    let text = fs::read_to_string(&yaml).with_context(|| format!("reading {}", yaml.display()))?;
    parse_stress_ng_rate(&text).with_context(|| format!("no bogo-ops rate in {text}"))
}

/// `bogo-ops-per-second-real-time` of stress-ng's YAML report.
pub fn parse_stress_ng_rate(yaml: &str) -> Option<f64> {
    yaml.lines().find_map(|l| {
        l.trim()
            .strip_prefix("bogo-ops-per-second-real-time:")?
            .trim()
            .parse()
            .ok()
            .filter(|v: &f64| *v > 0.0)
    })
}

/// `workers` bash loops of `/bin/true` for about `seconds`; the execs per
/// second over the wall time they took together.
fn shell_loop(workers: usize, seconds: u64) -> Result<f64> {
    let script = format!(
        "n=0; end=$((SECONDS + {seconds})); while ((SECONDS < end)); do /bin/true; ((n++)); done; echo $n"
    );
    let start = Instant::now();
    let children = (0..workers)
        .map(|_| {
            Command::new("bash")
                .args(["-c", &script])
                .stdout(Stdio::piped())
                .spawn()
                .context("starting bash")
        })
        .collect::<Result<Vec<_>>>()?;
    let mut total = 0u64;
    for child in children {
        let out = child.wait_with_output()?;
        total += String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse::<u64>()
            .context("the loop's count")?;
    }
    #[expect(clippy::cast_precision_loss, reason = "a count for a rate")]
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

/// `processes` of /proc/stat: tasks (threads included) created since boot.
fn processes_created() -> Result<u64> {
    let stat = fs::read_to_string("/proc/stat")?;
    parse_processes(&stat).context("no processes line in /proc/stat")
}

/// The `processes` line of /proc/stat.
pub fn parse_processes(stat: &str) -> Option<u64> {
    stat.lines()
        .find_map(|l| l.strip_prefix("processes ")?.trim().parse().ok())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Without,
    Blippd,
    Classic,
}

const SIDES: [Side; 3] = [Side::Without, Side::Blippd, Side::Classic];

impl Side {
    fn label(self) -> &'static str {
        match self {
            Side::Without => "no tracer",
            Side::Blippd => "blippd, procevents probe",
            Side::Classic => "bpftrace, classic design",
        }
    }
}

/// What a tracer saw over one workload run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Seen {
    /// Process creations (forks of processes, not threads; bpftrace's
    /// classic script counts threads too).
    forks: u64,
    execs: u64,
    exits: u64,
    /// Events the kernel side could not hand over (ring or perf buffer
    /// full).
    lost: u64,
    /// Events read but not reported (blippd's `max_events`).
    dropped: u64,
}

impl Seen {
    fn events(&self) -> u64 {
        self.forks + self.execs + self.exits
    }
}

/// blippd's cumulative host-wide counts, as of one collection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// The collection's timestamp (µs).
    pub ts: u64,
    /// `events:fork`, `:exec`, `:exit`, `:lost`, `:dropped`.
    pub seen: [u64; 5],
}

const COUNT_NAMES: [&str; 5] = ["fork", "exec", "exit", "lost", "dropped"];

/// Follows blippd's standard output (JSON lines) as it grows, keeping the
/// last complete set of host-wide counts.
struct Tail {
    reader: BufReader<fs::File>,
    line: String,
    building: Counts,
    latest: Option<Counts>,
}

impl Tail {
    fn new(path: &Path) -> Result<Self> {
        Ok(Self {
            reader: BufReader::new(fs::File::open(path)?),
            line: String::new(),
            building: Counts::default(),
            latest: None,
        })
    }

    /// Reads what was appended; the newest complete counts.
    fn poll(&mut self) -> Result<Option<Counts>> {
        loop {
            self.line.clear();
            let pos = self.reader.stream_position()?;
            let n = self.reader.read_line(&mut self.line)?;
            if n == 0 {
                break;
            }
            if !self.line.ends_with('\n') {
                // A line still being written: read it again next time.
                self.reader.seek(std::io::SeekFrom::Start(pos))?;
                break;
            }
            if let Some((ts, which, value)) = parse_count_line(&self.line) {
                if ts != self.building.ts {
                    self.building = Counts {
                        ts,
                        seen: [u64::MAX; 5],
                    };
                }
                self.building.seen[which] = value;
                if self.building.seen.iter().all(|v| *v != u64::MAX) {
                    self.latest = Some(self.building);
                }
            }
        }
        Ok(self.latest)
    }

    /// Waits for counts of a collection after `after_ts` (µs).
    fn next_after(&mut self, after_ts: u64, daemon: &mut Daemon) -> Result<Counts> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(c) = self.poll()?
                && c.ts > after_ts
            {
                return Ok(c);
            }
            daemon.check_running()?;
            if Instant::now() > deadline {
                bail!("blippd reported no process-event counts within 30 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A host-wide count of blippd's output: (ts, which of [`COUNT_NAMES`],
/// value).
pub fn parse_count_line(line: &str) -> Option<(u64, usize, u64)> {
    if !line.contains("\"subject\":\"node\"") || !line.contains(EVENT_PREFIX) {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let et = v["eventType"].as_str()?.strip_prefix(EVENT_PREFIX)?;
    let which = COUNT_NAMES.iter().position(|n| *n == et)?;
    Some((v["ts"].as_u64()?, which, v["value"].as_u64()?))
}

/// The classic design's output: its forks, execs, exits, and the events
/// bpftrace reported lost.
pub fn parse_classic(text: &str) -> (u64, u64, u64, u64) {
    let (mut forks, mut execs, mut exits, mut lost) = (0, 0, 0, 0);
    for l in text.lines() {
        if l.starts_with("fork ") {
            forks += 1;
        } else if l.starts_with("exec ") {
            execs += 1;
        } else if l.starts_with("exit ") {
            exits += 1;
        } else if let Some(n) = l
            .trim()
            .strip_prefix("Lost ")
            .and_then(|r| r.strip_suffix(" events"))
        {
            lost += n.trim().parse::<u64>().unwrap_or(0);
        }
    }
    (forks, execs, exits, lost)
}

/// One workload run with one side.
struct Outcome {
    ops: f64,
    /// Tasks the kernel created in the tracer's window.
    created: u64,
    seen: Option<Seen>,
    /// The tracer's CPU seconds over its window.
    cpu: Option<f64>,
}

fn one_run(side: Side, load: Load, blippd: &Path, dir: &Path, args: &Args) -> Result<Outcome> {
    fs::create_dir_all(dir)?;
    let workers = args.workers.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
    });
    match side {
        Side::Without => {
            let before = processes_created()?;
            let ops = load.run(workers, args.seconds, dir)?;
            Ok(Outcome {
                ops,
                created: processes_created()? - before,
                seen: None,
                cpu: None,
            })
        }
        Side::Blippd => {
            let file = dir.join("blippd.json");
            fs::write(&file, CONFIG)?;
            let samples = dir.join("samples.jsonl");
            let mut cmd = Command::new(blippd);
            cmd.arg("-c")
                .arg(&file)
                .stdout(fs::File::create(&samples)?)
                .stderr(fs::File::create(dir.join("blippd.log"))?);
            let mut daemon = Daemon::spawn("blippd", &mut cmd)?;
            let mut tail = Tail::new(&samples)?;
            // The first counts mean the programs are attached; the window
            // starts at a collection, as the kernel count is read.
            let first = tail.next_after(0, &mut daemon)?;
            let start = tail.next_after(first.ts, &mut daemon)?;
            let created0 = processes_created()?;
            let cpu0 = measure::cpu_snapshot(daemon.pid())?;
            let ops = load.run(workers, args.seconds, dir)?;
            let end_after = wall_us();
            let end = tail.next_after(end_after, &mut daemon)?;
            let created = processes_created()? - created0;
            let cpu = measure::cpu_used(&cpu0, &measure::cpu_snapshot(daemon.pid())?).seconds;
            daemon.stop()?;
            let d = |i: usize| end.seen[i] - start.seen[i];
            Ok(Outcome {
                ops,
                created,
                seen: Some(Seen {
                    forks: d(0),
                    execs: d(1),
                    exits: d(2),
                    lost: d(3),
                    dropped: d(4),
                }),
                cpu: Some(cpu),
            })
        }
        Side::Classic => {
            let (daemon, output) = classic::run_script(dir, "snoop.bt", SCRIPT, 3)?;
            let before = parse_classic(&fs::read_to_string(&output)?);
            let created0 = processes_created()?;
            let cpu0 = measure::cpu_snapshot(daemon.pid())?;
            let ops = load.run(workers, args.seconds, dir)?;
            let created = processes_created()? - created0;
            let cpu = measure::cpu_used(&cpu0, &measure::cpu_snapshot(daemon.pid())?).seconds;
            daemon.stop()?;
            // What it printed after the load ended is still the load's.
            let after = parse_classic(&fs::read_to_string(&output)?);
            Ok(Outcome {
                ops,
                created,
                seen: Some(Seen {
                    forks: after.0 - before.0,
                    execs: after.1 - before.1,
                    exits: after.2 - before.2,
                    lost: after.3 - before.3,
                    dropped: 0,
                }),
                cpu: Some(cpu),
            })
        }
    }
}

fn wall_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// Runs the part and prints its figures.
#[expect(clippy::print_stdout, reason = "a benchmark prints its figures")]
pub fn run(args: &Args, blippd: &Path) -> Result<()> {
    let work = super::scratch_dir("procevents")?;
    println!(
        "\n## Process events under a storm: {} s per run, {} rounds, {} workers",
        args.seconds,
        args.rounds,
        args.workers
            .map_or_else(|| "one per CPU".to_owned(), |w| w.to_string())
    );
    let mut out = String::new();
    for load in LOADS {
        let mut runs = Vec::new();
        let mut outcomes: Vec<(Side, Outcome)> = Vec::new();
        for round in 0..args.rounds {
            for i in paired::order(SIDES.len(), round) {
                let side = SIDES[i];
                let dir: PathBuf = work.join(format!("{load:?}-{side:?}-{round}"));
                let o = one_run(side, load, blippd, &dir, args)
                    .with_context(|| format!("{} with {}", load.label(), side.label()))?;
                println!(
                    "  {:<24} round {:2}  {:<26} {:>9.0} ops/s",
                    load.label(),
                    round + 1,
                    side.label(),
                    o.ops
                );
                runs.push(Run {
                    round,
                    side: i,
                    value: o.ops,
                });
                let _ = fs::remove_dir_all(&dir);
                outcomes.push((side, o));
            }
        }
        out.push_str(&table(load, &runs, &outcomes));
    }
    print!("{out}");
    Ok(())
}

#[expect(clippy::cast_precision_loss, reason = "counts for display")]
fn table(load: Load, runs: &[Run], outcomes: &[(Side, Outcome)]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "\n### {}\n", load.label());
    let _ = writeln!(
        out,
        "| side | ops/s | loss, paired by round | tasks created (kernel) | forks / execs / exits seen | lost | dropped | tracer CPU, µs per event |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
    for (i, side) in SIDES.iter().enumerate() {
        let mine: Vec<&Outcome> = outcomes
            .iter()
            .filter(|(s, _)| s == side)
            .map(|(_, o)| o)
            .collect();
        let Some(ops) = paired::throughput(runs, i) else {
            continue;
        };
        let loss = match paired::loss(runs, i) {
            Some(l) if i > 0 => format!("{} %", l.show(1)),
            _ => "—".to_owned(),
        };
        let created = Summary::of(&mine.iter().map(|o| o.created as f64).collect::<Vec<_>>())
            .map_or("—".to_owned(), |s| s.show(0).to_string());
        let seen: Vec<Seen> = mine.iter().filter_map(|o| o.seen).collect();
        let sum = |f: fn(&Seen) -> u64| seen.iter().map(f).sum::<u64>();
        let (counts, lost, dropped) = if seen.is_empty() {
            ("—".to_owned(), "—".to_owned(), "—".to_owned())
        } else {
            let median = |f: fn(&Seen) -> u64| {
                Summary::of(&seen.iter().map(|s| f(s) as f64).collect::<Vec<_>>())
                    .map_or(0.0, |s| s.median)
            };
            (
                format!(
                    "{:.0} / {:.0} / {:.0}",
                    median(|s| s.forks),
                    median(|s| s.execs),
                    median(|s| s.exits)
                ),
                format!("{} in all runs", sum(|s| s.lost)),
                format!("{} in all runs", sum(|s| s.dropped)),
            )
        };
        let per_event: Vec<f64> = mine
            .iter()
            .filter_map(|o| Some(o.cpu? * 1e6 / o.seen?.events().max(1) as f64))
            .collect();
        let cpu = Summary::of(&per_event).map_or("—".to_owned(), |s| s.show(2).to_string());
        let _ = writeln!(
            out,
            "| {} | {} | {loss} | {created} | {counts} | {lost} | {dropped} | {cpu} |",
            side.label(),
            ops.show(0)
        );
    }
    let _ = writeln!(
        out,
        "\nThe baseline runs differ by up to {:.1} % among themselves.",
        paired::noise(runs)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stress_ng_rate_from_its_report() {
        let yaml = "metrics:\n    - stressor: fork\n      bogo-ops: 3938\n      bogo-ops-per-second-usr-sys-time: 2053.755405\n      bogo-ops-per-second-real-time: 1968.858003\n";
        assert_eq!(parse_stress_ng_rate(yaml), Some(1968.858003));
        assert_eq!(
            parse_stress_ng_rate("bogo-ops-per-second-real-time: 0.0\n"),
            None
        );
        assert_eq!(parse_stress_ng_rate("metrics:\n"), None);
    }

    #[test]
    fn processes_from_proc_stat() {
        let stat = "cpu  1 2 3 4\nctxt 99\nbtime 5\nprocesses 1234567\nprocs_running 3\n";
        assert_eq!(parse_processes(stat), Some(1_234_567));
        assert_eq!(parse_processes("cpu 1\n"), None);
    }

    #[test]
    fn count_lines_of_blippd() {
        let l = r#"{"ts":1796679954999144,"subject":"node","eventType":"ps:tools:blipp:linux:process:events:exit","value":4,"source":"ebpf"}"#;
        assert_eq!(parse_count_line(l), Some((1_796_679_954_999_144, 2, 4)));
        let event = r#"{"ts":1,"subject":"process:true:12","eventType":"ps:tools:blipp:linux:process:exec:parent","value":4,"source":"ebpf"}"#;
        assert_eq!(parse_count_line(event), None);
    }

    #[test]
    fn the_tail_keeps_the_last_complete_set() {
        let dir = std::env::temp_dir().join(format!("blipp-tail-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.jsonl");
        let line = |ts: u64, which: &str, v: u64| {
            format!(
                "{{\"ts\":{ts},\"subject\":\"node\",\"eventType\":\"{EVENT_PREFIX}{which}\",\"value\":{v},\"source\":\"ebpf\"}}\n"
            )
        };
        let mut text = String::new();
        for (i, n) in COUNT_NAMES.iter().enumerate() {
            text.push_str(&line(10, n, i as u64));
        }
        // The next collection, incomplete, with its last line half written.
        text.push_str(&line(20, "fork", 7));
        let partial = line(20, "exec", 8);
        text.push_str(&partial[..10]);
        fs::write(&path, &text).unwrap();
        let mut tail = Tail::new(&path).unwrap();
        assert_eq!(
            tail.poll().unwrap(),
            Some(Counts {
                ts: 10,
                seen: [0, 1, 2, 3, 4]
            })
        );
        text.push_str(&partial[10..]);
        for n in &COUNT_NAMES[2..] {
            text.push_str(&line(20, n, 9));
        }
        fs::write(&path, &text).unwrap();
        assert_eq!(
            tail.poll().unwrap(),
            Some(Counts {
                ts: 20,
                seen: [7, 8, 9, 9, 9]
            })
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn classic_output_counted() {
        let text = "Attaching 3 probes...\nfork 1 2\nexec 2 1 true\nexit 2 0 true\nfork 1 3\nLost 17 events\n";
        assert_eq!(parse_classic(text), (2, 1, 1, 17));
    }
}
