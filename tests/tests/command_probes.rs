//! blippd running the cmd and nagios probes: the commands really run, their
//! samples come out, and commands that take long do not hold up other
//! probes (the arbiter waits for them off the runtime's thread).

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use blipp_tests::{blippd_samples, require_tool};
use serde_json::{Value, json};

fn run_blippd(probes: &Value, args: &[&str]) -> Vec<Value> {
    blippd_samples(
        &json!({"properties": {"configurations": {"probes": probes}}}),
        args,
    )
}

fn of<'a>(samples: &'a [Value], event_type: &str) -> Vec<&'a Value> {
    samples
        .iter()
        .filter(|s| s["eventType"] == event_type)
        .collect()
}

#[test]
fn once_runs_cmd_and_nagios_probes() {
    let samples = run_blippd(
        &json!({
            "echo": {"probe_module": "cmd", "command": "echo answer $n", "n": 42,
                     "regex": "answer (?P<n>\\d+)", "eventTypes": {"n": "ps:tools:blipp:test:answer"}},
            "dummy": {"probe_module": "nagios",
                      "command": "/usr/lib/nagios/plugins/check_dummy 1 'from blipp'"}
        }),
        &["--once"],
    );
    let answer = of(&samples, "ps:tools:blipp:test:answer");
    assert_eq!(answer.len(), 1, "{samples:?}");
    assert_eq!(answer[0]["value"], 42);
    assert_eq!(answer[0]["source"], "command");
    assert_eq!(answer[0]["subject"], "node");
    let status = of(&samples, "ps:tools:blipp:nagios:dummy:status");
    assert_eq!(status.len(), 1, "{samples:?}");
    assert_eq!(status[0]["value"], 1);
    assert_eq!(
        of(&samples, "ps:tools:blipp:nagios:dummy:state")[0]["value"],
        "WARNING"
    );
}

#[test]
fn slow_commands_do_not_hold_up_other_probes() {
    // Four probes whose command takes 2.8 s, more than blippd's two
    // runtime workers, and one fast probe every 0.2 s. Were the slow
    // collections run on the workers, the fast probe would stall for
    // 2.8 s (it then collects about twice); run off them, it collects
    // about 15 times in 3 s.
    let slow = |i: u32| {
        json!({"probe_module": "cmd", "command": format!("sleep 2.8{i}"), "command_timeout": 5,
               "regex": "(?P<x>\\d+)", "eventTypes": {"x": "ps:tools:blipp:test:slow"},
               "schedule_params": {"every": 10}})
    };
    let samples = run_blippd(
        &json!({
            "slow1": slow(1), "slow2": slow(2), "slow3": slow(3), "slow4": slow(4),
            "fast": {"probe_module": "cmd", "command": "echo 1",
                     "regex": "(?P<x>\\d+)", "eventTypes": {"x": "ps:tools:blipp:test:fast"},
                     "schedule_params": {"every": 0.2}}
        }),
        &["--duration", "3"],
    );
    let fast = of(&samples, "ps:tools:blipp:test:fast").len();
    assert!(fast >= 10, "the fast probe collected {fast} times in 3 s");
}

#[test]
fn a_pipeline_through_the_launcher_reports_every_match() {
    if !require_tool("ps", "the cmd pipeline test") {
        return;
    }
    // Two sandboxed programs, the second reading the first's output; every
    // line a match of its own, named by its `subject` group.
    let samples = run_blippd(
        &json!({"procs": {"probe_module": "cmd",
            "pipeline": ["ps -e -o pid=,comm=", "grep -w -e blippd -e ps"],
            "matches": "all",
            "regex": "^\\s*(?P<pid>\\d+) (?P<subject>\\S+)$",
            "eventTypes": {"pid": {"eventType": "ps:tools:blipp:test:pid", "scale": 1}}}}),
        &["--once"],
    );
    let pids = of(&samples, "ps:tools:blipp:test:pid");
    let subjects: Vec<&str> = pids
        .iter()
        .map(|s| s["subject"].as_str().unwrap())
        .collect();
    // blippd, its launcher and the run's supervisor all match: one
    // sample for the series; ps saw itself.
    assert_eq!(subjects, ["procs:blippd", "procs:ps"], "{samples:?}");
    assert!(
        pids.iter().all(|s| s["value"].as_u64().unwrap() > 1),
        "{pids:?}"
    );
}
