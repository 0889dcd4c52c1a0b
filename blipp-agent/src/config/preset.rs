//! The original BLiPP's measurement schemas (`$schema` probes): a probe
//! given only by such an id gets the keys blipp ships for it in
//! `presets.json`, since the server the original fetched the schemas'
//! defaults from no longer exists. A preset is the lowest layer of a
//! probe: `probe_defaults` and the probe's own keys override it. It is
//! applied where a document enters blippd (the file, UNIS, an adopted
//! measurement), so that `--check`, start-up, the trust policy and the
//! record written back all see the same probe.

use std::sync::LazyLock;

use serde::Deserialize;
use serde_json::{Map, Value};

#[derive(Deserialize)]
struct Presets {
    presets: Map<String, Value>,
}

#[derive(Deserialize)]
struct Preset {
    ids: Vec<String>,
    keys: Map<String, Value>,
}

static PRESETS: LazyLock<Vec<(String, Preset)>> = LazyLock::new(|| {
    let all: Presets = serde_json::from_str(include_str!("presets.json"))
        .expect("presets.json is valid (checked by a test)");
    all.presets
        .into_iter()
        .map(|(name, v)| {
            let preset = serde_json::from_value(v).expect("each preset has ids and keys");
            (name, preset)
        })
        .collect()
});

/// The name of the preset `schema` (a `$schema` value) names, if blipp
/// ships one.
pub fn name_of(schema: &str) -> Option<&'static str> {
    find(schema).map(|(name, _)| name)
}

fn find(schema: &str) -> Option<(&'static str, &'static Preset)> {
    let id = schema.strip_suffix('#').unwrap_or(schema);
    PRESETS
        .iter()
        .find(|(_, p)| p.ids.iter().any(|i| i == id))
        .map(|(name, p)| (name.as_str(), p))
}

/// Adds to probe `entry` the keys of the preset its `$schema` names that
/// neither it nor `defaults` (the `probe_defaults`) sets. An entry
/// without `$schema`, or with one blipp has no preset for, is left alone.
pub fn apply(entry: &mut Map<String, Value>, defaults: Option<&Map<String, Value>>) {
    let Some((_, preset)) = entry.get("$schema").and_then(Value::as_str).and_then(find) else {
        return;
    };
    for (key, value) in &preset.keys {
        if !entry.contains_key(key) && !defaults.is_some_and(|d| d.contains_key(key)) {
            entry.insert(key.clone(), value.clone());
        }
    }
}

/// [`apply`] to every probe of the service document `doc`.
pub fn expand(doc: &mut Value) {
    let Some(Value::Object(conf)) = doc.pointer_mut("/properties/configurations") else {
        return;
    };
    let defaults = conf
        .get("probe_defaults")
        .and_then(Value::as_object)
        .cloned();
    if let Some(Value::Object(probes)) = conf.get_mut("probes") {
        for entry in probes.values_mut() {
            if let Value::Object(entry) = entry {
                apply(entry, defaults.as_ref());
            }
        }
    }
}

/// A probe of `doc` that has neither a `probe_module` nor a `$schema`
/// blipp has a preset for, but does have a `$schema`: its pointer, its
/// `$schema` and what was expected. Without this, the schema would
/// reject the probe's first option key (`address`) as unknown, which
/// hides the cause.
pub fn unknown_schema(doc: &Value) -> Option<(String, Value, String)> {
    let probes = doc
        .pointer("/properties/configurations/probes")?
        .as_object()?;
    probes.iter().find_map(|(name, entry)| {
        let schema = entry.get("$schema")?;
        if entry.get("probe_module").is_some() || schema.as_str().and_then(name_of).is_some() {
            return None;
        }
        let mut known: Vec<&str> = PRESETS.iter().map(|(n, _)| n.as_str()).collect();
        known.sort_unstable();
        Some((
            format!(
                "/properties/configurations/probes/{}/$schema",
                name.replace('~', "~0").replace('/', "~1")
            ),
            schema.clone(),
            format!(
                "a measurement schema blipp has a preset for ({}), or a probe_module beside it",
                known.join(", ")
            ),
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_preset_parses_and_ids_match_with_or_without_hash() {
        assert_eq!(PRESETS.len(), 3);
        for (name, host) in [("ping", "crest"), ("iperf", "incntre"), ("owping", "crest")] {
            let id = format!("http://unis.{host}.iu.edu/schema/blippmeasurements/20130429/{name}");
            assert_eq!(name_of(&id), Some(name));
            assert_eq!(name_of(&format!("{id}#")), Some(name));
        }
        assert_eq!(
            name_of("http://unis.crest.iu.edu/schema/20160630/node#"),
            None
        );
    }

    /// Output of the shape each program prints (values made up for the
    /// test), and what the preset's regex must take from it.
    /// (preset, output, (group, value) pairs).
    type Output = (
        &'static str,
        &'static str,
        &'static [(&'static str, &'static str)],
    );

    const OUTPUTS: [Output; 3] = [
        (
            "ping",
            "PING 10.1.2.3 (10.1.2.3) 56(84) bytes of data.\n\
             64 bytes from 10.1.2.3: icmp_seq=1 ttl=57 time=12.7 ms\n\n\
             --- 10.1.2.3 ping statistics ---\n",
            &[("ttl", "57"), ("rtt", "12.7")],
        ),
        (
            "iperf",
            r#"{"end": {"sum_sent": {"seconds": 3, "bits_per_second": 941235120.5},
                "sum_received": {"start": 0, "seconds": 3.01, "bytes": 352812544,
                                 "bits_per_second": 937709220.25, "sender": true}}}"#,
            &[("bandwidth", "937709220.25")],
        ),
        (
            "owping",
            "--- owping statistics from [a]:9001 to [b]:9002 ---\n\
             50 sent, 0 lost (0.000%), 0 duplicates\n\
             one-way delay min/median/max = 0.21/0.4/1.75 ms, (err=2.2 ms)\n\
             one-way jitter = 0.1 ms (P95-P50)\n\
             --- owping statistics from [b]:9003 to [a]:9004 ---\n\
             50 sent, 1 lost (2.000%), 0 duplicates\n\
             one-way delay min/median/max = 0.3/0.5/2.5 ms, (err=2.2 ms)\n\
             one-way jitter = 0.2 ms (P95-P50)\n",
            &[
                ("fmedian", "0.4"),
                ("ferr", "2.2"),
                ("fjitter", "0.1"),
                ("rmax", "2.5"),
                ("rjitter", "0.2"),
            ],
        ),
    ];

    #[test]
    fn each_presets_regex_reads_its_programs_output_into_its_event_types() {
        for (name, output, expected) in OUTPUTS {
            let (_, preset) = PRESETS.iter().find(|(n, _)| n == name).unwrap();
            // Compiled as the cmd probe compiles it.
            let regex = regex::RegexBuilder::new(preset.keys["regex"].as_str().unwrap())
                .multi_line(true)
                .dot_matches_new_line(true)
                .build()
                .unwrap();
            let caps = regex
                .captures(output)
                .unwrap_or_else(|| panic!("{name}: no match"));
            for group in preset.keys["eventTypes"].as_object().unwrap().keys() {
                assert!(
                    caps.name(group).is_some(),
                    "{name}: group {group} captured nothing"
                );
            }
            for (group, value) in expected {
                assert_eq!(&caps[*group], *value, "{name}: {group}");
            }
        }
    }

    #[test]
    fn the_probe_and_probe_defaults_override_the_preset() {
        let mut doc = json!({"properties": {"configurations": {
        "probe_defaults": {"-W": 5},
        "probes": {
            "p": {"$schema": "http://unis.crest.iu.edu/schema/blippmeasurements/20130429/ping#",
                  "address": "127.0.0.1", "-s": 16},
            "cpu": {"probe_module": "cpu"}
        }}}});
        expand(&mut doc);
        let p = &doc["properties"]["configurations"]["probes"]["p"];
        assert_eq!(p["probe_module"], "cmd_line_probe");
        assert_eq!(p["-s"], 16);
        assert!(
            p.get("-W").is_none(),
            "probe_defaults' -W applies, not the preset's"
        );
        assert_eq!(p["eventTypes"]["rtt"], "ps:tools:blipp:linux:net:ping:rtt");
        assert_eq!(
            doc["properties"]["configurations"]["probes"]["cpu"],
            json!({"probe_module": "cpu"})
        );
    }
}
