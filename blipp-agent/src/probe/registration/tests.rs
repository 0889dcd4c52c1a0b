use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use super::*;
use crate::probe::testing;

fn process_fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/probe/process/fixtures/proc")
}

fn status(samples: &[Sample]) -> (Option<bool>, Option<u64>) {
    let pid = testing::find(samples, "service:registration_probe", PID).map(|s| match s.value {
        Value::Int(p) => p,
        ref other => panic!("pid {other:?}"),
    });
    (latest_status(samples), pid)
}

/// By name in a fixture tree: the live `nginx` is ON, the zombie is not
/// taken for it.
#[test]
fn fixture_by_name() {
    let opts = json!({"service_type": "http://nginx.org", "process_name": "nginx"});
    let mut p = testing::build("registration_probe", &opts, &process_fixtures());
    assert_eq!(
        status(&testing::collect(&mut *p, 0.0)),
        (Some(true), Some(4242))
    );
    let opts = json!({"service_type": "x", "process_name": "no-such-daemon"});
    let mut p = testing::build("registration_probe", &opts, &process_fixtures());
    assert_eq!(status(&testing::collect(&mut *p, 0.0)), (Some(false), None));
}

/// A real process by pidfile: ON while it lives, OFF once it has exited
/// (and been reaped), OFF when the pidfile is gone.
#[test]
fn real_process_by_pidfile() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("svc.pid");
    let mut child = Command::new("sleep").arg("300").spawn().unwrap();
    std::fs::write(&pidfile, format!("{}\n", child.id())).unwrap();
    let opts = json!({"service_type": "t", "pidfile": pidfile});
    let mut p = testing::build("registration_probe", &opts, Path::new("/proc"));
    let on = testing::collect(&mut *p, 0.0);
    assert_eq!(status(&on), (Some(true), Some(u64::from(child.id()))));
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(status(&testing::collect(&mut *p, 1.0)), (Some(false), None));
    std::fs::remove_file(&pidfile).unwrap();
    assert_eq!(status(&testing::collect(&mut *p, 2.0)), (Some(false), None));
}

/// A pidfile that holds no pid is an error of that collection, not a
/// status: the record is left as it was.
#[test]
fn garbage_pidfile_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("svc.pid");
    std::fs::write(&pidfile, "not a pid").unwrap();
    let opts = json!({"service_type": "t", "pidfile": pidfile});
    let mut p = testing::build("registration_probe", &opts, Path::new("/proc"));
    let mut out = Vec::new();
    assert!(p.collect(Timestamp(1), &mut out).is_err());
    assert!(out.is_empty());
}

#[test]
fn a_selector_is_required() {
    let Err(e) = testing::try_build(
        "registration_probe",
        &json!({"service_type": "t"}),
        &process_fixtures(),
    ) else {
        panic!("built without pidfile or process_name");
    };
    assert!(e.to_string().contains("pidfile or process_name"), "{e}");
}
