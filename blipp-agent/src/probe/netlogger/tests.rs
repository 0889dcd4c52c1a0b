use std::io::Write as _;
use std::path::Path;

use serde_json::json;

use super::*;
use crate::probe::testing;
use crate::sample::Value;

fn append(path: &Path, text: &str) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

fn collect(p: &mut dyn Probe) -> Vec<Sample> {
    let mut out = Vec::new();
    p.collect(Timestamp(1), &mut out).unwrap();
    out
}

fn row(s: &Sample) -> (u64, &str, Value) {
    (s.ts.0, &*s.event_type, s.value.clone())
}

#[test]
fn follows_the_log_with_the_lines_times() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("nl.log");
    let mut p = testing::build(
        "netlogger",
        &json!({"logfile": log, "appname": "gridftp"}),
        Path::new("/proc"),
    );
    assert!(
        collect(p.as_mut()).is_empty(),
        "no file yet: nothing, no error"
    );
    append(
        &log,
        "ts=2013-04-16T20:43:29.5Z event=transfer.rate VAL=1250.5\n\
         ts=2013-04-16T20:43:30Z event=transfer.end bytes=1048576 level=Info\n\
         ts=2013-04-16T20:43:31Z event=half",
    );
    let out = collect(p.as_mut());
    let rows: Vec<_> = out.iter().map(row).collect();
    assert_eq!(
        rows,
        [
            (
                1_366_145_009_500_000,
                "ps:tools:blipp:netlogger:gridftp:transfer.rate",
                Value::Float(1250.5)
            ),
            (
                1_366_145_010_000_000,
                "ps:tools:blipp:netlogger:gridftp:transfer.end:bytes",
                Value::Int(1_048_576)
            ),
        ],
        "level=Info is not a number; the unterminated line waits"
    );
    assert!(
        out.iter()
            .all(|s| &*s.subject == "node" && s.source == Source::Log)
    );
    append(&log, " VAL=3\nts=2013-04-16T20:43:32Z event=x VAL=4\n");
    let out = collect(p.as_mut());
    let rows: Vec<_> = out.iter().map(row).collect();
    assert_eq!(
        rows,
        [
            (
                1_366_145_011_000_000,
                "ps:tools:blipp:netlogger:gridftp:half",
                Value::Int(3)
            ),
            (
                1_366_145_012_000_000,
                "ps:tools:blipp:netlogger:gridftp:x",
                Value::Int(4)
            ),
        ]
    );
    // Truncated (log cleared by its writer): read again from the start.
    std::fs::write(&log, "ts=2013-04-16T20:43:40Z event=y VAL=5\n").unwrap();
    let out = collect(p.as_mut());
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].value, Value::Int(5));
}

#[test]
fn the_original_module_name_and_no_appname() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("nl.log");
    append(&log, "ts=1366145011.5 event=e VAL=-2\n");
    let mut p = testing::build(
        "netlogger_probe",
        &json!({"logfile": log}),
        Path::new("/proc"),
    );
    let out = collect(p.as_mut());
    assert_eq!(out.len(), 1);
    assert_eq!(&*out[0].event_type, "ps:tools:blipp:netlogger:e");
    assert_eq!(out[0].value, Value::Float(-2.0));
    assert_eq!(out[0].ts, Timestamp(1_366_145_011_500_000));
}

#[test]
fn bad_options_are_refused() {
    for options in [
        json!({"logfile": "/tmp/x.log", "appname": "a:b"}),
        json!({"logfile": "/tmp/x.log", "read_limit": 0}),
        json!({"appname": "a"}),
    ] {
        assert!(
            testing::try_build("netlogger", &options, Path::new("/proc")).is_err(),
            "{options}"
        );
    }
}
