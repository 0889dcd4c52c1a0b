//! What BPF programs cost in the kernel: the kernel counts, per program,
//! how often it ran and for how many nanoseconds in total
//! (`kernel.bpf_stats_enabled`, 5.1+). The programs of one process are
//! found through its file descriptors (`/proc/PID/fdinfo` of each
//! `bpf-prog` descriptor holds the program's id and both counters); their
//! names come from `bpftool`.

use std::collections::HashMap;
use std::fs;
use std::process::Command;

use anyhow::{Context as _, Result};

use crate::sh;

const STATS_SYSCTL: &str = "/proc/sys/kernel/bpf_stats_enabled";

/// Debian package of `bpftool`, which names the programs.
pub const PACKAGES: &[&str] = &["bpftool"];

/// Keeps the kernel's BPF run-time statistics on while alive, then puts
/// back the previous setting (counting costs a clock read per program run,
/// which is why it is off by default).
pub struct StatsOn {
    previous: String,
}

impl StatsOn {
    /// Turns the statistics on.
    pub fn new() -> Result<Self> {
        let previous = fs::read_to_string(STATS_SYSCTL)
            .with_context(|| format!("reading {STATS_SYSCTL}"))?
            .trim()
            .to_owned();
        fs::write(STATS_SYSCTL, "1").with_context(|| format!("writing 1 to {STATS_SYSCTL}"))?;
        Ok(Self { previous })
    }
}

impl Drop for StatsOn {
    fn drop(&mut self) {
        let _ = fs::write(STATS_SYSCTL, &self.previous);
    }
}

/// One program's counters at one instant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Program {
    /// The kernel's program id.
    pub id: u32,
    /// Its name (truncated by the kernel to 15 bytes), or `id <n>`.
    pub name: String,
    /// Runs so far.
    pub runs: u64,
    /// Nanoseconds spent in it so far.
    pub ns: u64,
}

/// `prog_id`, `run_time_ns` and `run_cnt` of a bpf-prog descriptor's fdinfo.
pub fn parse_fdinfo(text: &str) -> Option<(u32, u64, u64)> {
    let field = |key: &str| {
        text.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == key).then(|| v.trim())
        })
    };
    Some((
        field("prog_id")?.parse().ok()?,
        field("run_time_ns")?.parse().ok()?,
        field("run_cnt")?.parse().ok()?,
    ))
}

/// Program names by id, from `bpftool prog show --json`.
fn names() -> HashMap<u32, String> {
    let Some(out) = sh::output(Command::new("bpftool").args(["prog", "show", "--json"])) else {
        return HashMap::new();
    };
    let list: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap_or_default();
    list.iter()
        .filter_map(|p| {
            let id = u32::try_from(p["id"].as_u64()?).ok()?;
            Some((id, p["name"].as_str()?.to_owned()))
        })
        .collect()
}

/// The programs process `pid` holds open, with their counters now.
pub fn programs_of(pid: u32) -> Result<Vec<Program>> {
    let dir = format!("/proc/{pid}/fd");
    let mut found = Vec::new();
    for entry in fs::read_dir(&dir).with_context(|| format!("listing {dir}"))? {
        let entry = entry?;
        let is_prog =
            fs::read_link(entry.path()).is_ok_and(|l| l.to_string_lossy() == "anon_inode:bpf-prog");
        if !is_prog {
            continue;
        }
        let fdinfo = format!("/proc/{pid}/fdinfo/{}", entry.file_name().to_string_lossy());
        if let Some((id, ns, runs)) = fs::read_to_string(&fdinfo)
            .ok()
            .as_deref()
            .and_then(parse_fdinfo)
        {
            found.push((id, ns, runs));
        }
    }
    found.sort_unstable();
    found.dedup_by_key(|p| p.0);
    let names = names();
    Ok(found
        .into_iter()
        .map(|(id, ns, runs)| Program {
            id,
            name: names
                .get(&id)
                .cloned()
                .unwrap_or_else(|| format!("id {id}")),
            runs,
            ns,
        })
        .collect())
}

/// Runs and nanoseconds of each program between two readings of the same
/// process, programs that ran at all, by name.
pub fn between(before: &[Program], after: &[Program]) -> Vec<Program> {
    after
        .iter()
        .filter_map(|a| {
            let b = before.iter().find(|b| b.id == a.id);
            let runs = a.runs - b.map_or(0, |b| b.runs);
            (runs > 0).then(|| Program {
                id: a.id,
                name: a.name.clone(),
                runs,
                ns: a.ns - b.map_or(0, |b| b.ns),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fdinfo_of_a_program() {
        let text = include_str!("fixtures/fdinfo-bpf-prog");
        assert_eq!(parse_fdinfo(text), Some((949, 1_067_416, 2506)));
        assert_eq!(parse_fdinfo("pos:\t0\nflags:\t02000002\n"), None);
    }

    #[test]
    fn deltas_keep_programs_that_ran() {
        let p = |id, runs, ns| Program {
            id,
            name: format!("p{id}"),
            runs,
            ns,
        };
        let before = [p(1, 10, 1000), p(2, 5, 500)];
        let after = [p(1, 110, 21_000), p(2, 5, 500), p(3, 7, 70)];
        assert_eq!(between(&before, &after), [p(1, 100, 20_000), p(3, 7, 70)]);
    }
}
