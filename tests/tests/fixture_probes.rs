//! blippd --once on fixture trees: the process and numa probes print
//! exactly the values of the files under `proc_dir` and `sys_dir`.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::path::Path;

use blipp_tests::blippd_samples;
use serde_json::{Value, json};

#[test]
fn process_and_numa_from_fixture_trees() {
    let agent = Path::new(env!("CARGO_MANIFEST_DIR")).join("../blipp-agent/src/probe");
    let process = agent.join("process/fixtures");
    let numa = agent.join("numa/fixtures/sys");
    let config = json!({"properties": {"configurations": {"probes": {
        "web": {"probe_module": "process", "process_name": "nginx",
                "proc_dir": process.join("proc"), "sys_dir": process.join("sys")},
        "numa": {"probe_module": "numa", "sys_dir": numa},
    }}}});
    let samples = blippd_samples(&config, &["--once"]);
    let value = |subject: &str, event_type: &str| {
        let full = format!("ps:tools:blipp:linux:{event_type}");
        let found: Vec<&Value> = samples
            .iter()
            .filter(|s| s["subject"] == subject && s["eventType"] == full.as_str())
            .map(|s| &s["value"])
            .collect();
        assert_eq!(found.len(), 1, "{subject} {event_type}: {found:?}");
        found[0].clone()
    };
    assert_eq!(value("process:nginx", "process:pid"), json!(4242));
    assert_eq!(value("process:nginx", "process:state"), json!("S"));
    assert_eq!(value("process:nginx", "process:memory:rss"), json!(10240));
    assert_eq!(
        value("process:nginx", "process:io:bytes:read"),
        json!(8_192_000)
    );
    assert_eq!(value("process:nginx", "process:fds"), json!(4));
    assert_eq!(value("numa:0", "numa:memory:total"), json!(65_842_908));
    assert_eq!(value("numa:1", "numa:pages:miss"), json!(1_234_567));
    assert_eq!(value("numa:1", "numa:pages:hit"), json!(412_345_678));
    // process: 13 quantities without CPU (one reading); numa: 2 nodes x 13.
    assert_eq!(samples.len(), 13 + 26, "{samples:#?}");
}
