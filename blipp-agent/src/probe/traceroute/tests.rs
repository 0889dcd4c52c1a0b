use std::path::Path;

use serde_json::json;

use super::*;
use crate::probe::testing;

fn fixture(name: &str) -> String {
    format!(
        "{}/src/source/fixtures/traceroute/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn text(samples: &[Sample], subject: &str, event_type: &str) -> String {
    match &testing::find(samples, subject, event_type)
        .unwrap_or_else(|| panic!("no {subject} {event_type} in {samples:?}"))
        .value
    {
        Value::Text(t) => t.to_string(),
        v => panic!("{v:?} is not text"),
    }
}

#[test]
fn hops_that_did_not_answer_give_no_sample() {
    // The recorded output of a path through two routers, the second of
    // which did not answer, with the original's event type names.
    let mut p = testing::build(
        "traceroute_probe",
        &json!({"command": format!("cat {}", fixture("multipath-silent-hop")),
                "regex": "^\\s*(?P<hop>\\d+)?.*?(?P<hopip>\\(\\S+\\))",
                "eventTypes": {"hopip": "ps:tools:blipp:linux:net:traceroute:hopip"}}),
        Path::new("/proc"),
    );
    let out = testing::collect(p.as_mut(), 0.0);
    let hopip = "ps:tools:blipp:linux:net:traceroute:hopip";
    assert_eq!(text(&out, "hop:1", hopip), "10.1.0.2,10.2.0.2");
    assert!(testing::find(&out, "hop:2", hopip).is_none());
    assert!(testing::find(&out, "hop:2", "ps:tools:blipp:linux:net:traceroute:rtt").is_none());
    assert_eq!(text(&out, "hop:3", hopip), "10.9.0.1");
    assert_eq!(
        testing::float(&out, "hop:3", "ps:tools:blipp:linux:net:traceroute:rtt"),
        0.008
    );
    assert_eq!(
        testing::int(&out, "node", "ps:tools:blipp:linux:net:traceroute:hops"),
        3
    );
    // Unreached: no hop count.
    let mut p = testing::build(
        "traceroute",
        &json!({"command": format!("cat {}", fixture("unreachable")),
                "eventTypes": {"rtt": "e:rtt"}}),
        Path::new("/proc"),
    );
    let out = testing::collect(p.as_mut(), 0.0);
    assert_eq!(testing::float(&out, "hop:1", "e:rtt"), 0.005);
    assert_eq!(out.len(), 2, "{out:?}");
}

#[test]
fn output_without_hops_is_an_error() {
    let mut p = testing::build(
        "traceroute",
        &json!({"command": "echo traceroute: unknown host"}),
        Path::new("/proc"),
    );
    let e = p.collect(Timestamp(1), &mut Vec::new()).unwrap_err();
    assert!(
        matches!(e, ProbeError::Traceroute(TracerouteError::NoHop { .. })),
        "{e}"
    );
}

#[test]
fn bad_configurations_are_refused_with_the_field() {
    for (options, field) in [
        (json!({}), "/address"),
        (
            json!({"address": "h", "eventTypes": {"hop": "e"}}),
            "/eventTypes/hop",
        ),
        (json!({"address": ["h"]}), "/address"),
        (
            json!({"address": "h", "command_timeout": 0}),
            "/command_timeout",
        ),
    ] {
        let e = testing::try_build("traceroute", &options, Path::new("/proc"))
            .err()
            .expect("refused")
            .to_string();
        assert!(
            e.contains(&format!("/probes/traceroute{field}:")),
            "{options}: {e}"
        );
    }
}
