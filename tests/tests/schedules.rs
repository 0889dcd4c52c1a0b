//! blippd collecting on the random and slotted schedules: the instants
//! the samples carry follow the configured law.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use blipp_tests::{agent_bin, blippd_samples};
use serde_json::{Value, json};

/// Runs blippd for `seconds` with one `echo` probe on `schedule`; returns
/// the sample times, µs.
fn collection_times(schedule: &str, params: &Value, seconds: &str) -> Vec<u64> {
    command_times("echo 1", schedule, params, seconds)
}

/// [`collection_times`] of a probe running `command`.
fn command_times(command: &str, schedule: &str, params: &Value, seconds: &str) -> Vec<u64> {
    let doc = json!({"properties": {"configurations": {"probes": {"tick": {
        "probe_module": "cmd", "command": command,
        "regex": "(?P<x>\\d+)", "eventTypes": {"x": "ps:tools:blipp:test:tick"},
        "collection_schedule": schedule, "schedule_params": params
    }}}}});
    blippd_samples(&doc, &["--duration", seconds])
        .iter()
        .map(|s| s["ts"].as_u64().unwrap())
        .collect()
}

fn rfc3339(unix_us: u64) -> String {
    // Whole seconds, UTC, as `date -u` would print them.
    let out = Command::new("date")
        .args([
            "-u",
            "-d",
            &format!("@{}", unix_us / 1_000_000),
            "+%Y-%m-%dT%H:%M:%SZ",
        ])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn random_gaps_stay_between_low_and_high() {
    let times = collection_times(
        "builtins.random",
        &json!({"low": 0.2, "high": 0.5, "distribution": "poisson"}),
        "3",
    );
    assert!(
        times.len() >= 6 && times.len() <= 16,
        "{} collections in 3 s",
        times.len()
    );
    for w in times.windows(2) {
        let gap = w[1] - w[0];
        // A collection's time is taken when it starts, a moment after its
        // instant: allow 150 ms of scheduling jitter on a loaded host.
        assert!((50_000..=650_000).contains(&gap), "gap {gap} µs");
    }
}

#[test]
fn scheduled_collects_only_inside_its_slot() {
    // agent_bin may build blippd first: the clock is read after that.
    agent_bin("blippd");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    // A slot from the next whole second + 2 s, 2 s long.
    let start = (now / 1_000_000 + 3) * 1_000_000;
    let end = start + 2_000_000;
    let times = collection_times(
        "builtins.scheduled",
        &json!({"every": 0.5, "scheduled_times": [{"start": rfc3339(start), "end": rfc3339(end)}]}),
        "6",
    );
    assert!(
        times.len() >= 3 && times.len() <= 4,
        "{} collections: {times:?}",
        times.len()
    );
    for t in &times {
        assert!(
            *t >= start && *t < end + 200_000,
            "{t} outside {start}..{end}"
        );
    }
}

#[test]
fn backoff_slows_down_while_values_stay() {
    let params = json!({"every": 0.1, "max": 0.8});
    // The same value every time: 0, 0.1, 0.3, 0.7, 1.5, 2.3 s.
    let constant = collection_times("adaptive.backoff", &params, "3");
    // A new value every time (nanoseconds of the clock): every 0.1 s.
    let changing = command_times("date +%N", "adaptive.backoff", &params, "3");
    assert!(
        (4..=9).contains(&constant.len()),
        "constant: {} collections",
        constant.len()
    );
    assert!(
        changing.len() >= 15,
        "changing: {} collections",
        changing.len()
    );
    let gaps: Vec<u64> = constant.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps.windows(2).take(3).all(|g| g[1] > g[0]),
        "growing gaps: {gaps:?}"
    );
}
