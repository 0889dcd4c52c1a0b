//! What kind of UNIS record a configuration file is. blippd's file is a
//! service record (its `properties.configurations`), but the original
//! could also be given one measurement record (`ping_measurement.json` in
//! its samples: a `configuration` with a `probe_module`), which it ran as
//! that one probe. A file that is some other record used to fall through
//! to the built-in probes without a word; now it is run as the original
//! did, or refused saying what it is.

use serde_json::{Map, Value, json};

use super::ConfigError;

/// The UNIS schema a record names by `$schema`, e.g. `measurement` for
/// `http://unis.crest.iu.edu/schema/20140214/measurement#`.
fn schema_kind(doc: &Value) -> Option<&str> {
    let id = doc.get("$schema")?.as_str()?;
    if !id.contains("/schema/") {
        return None;
    }
    id.trim_end_matches('#').rsplit('/').next()
}

/// `doc` as a service record: unchanged when it is one, the measurement's
/// configuration as the only probe when it is a measurement record, an
/// error naming what it is otherwise. Also returns the probe's name when
/// the file was a measurement, for the log.
pub fn as_service(origin: &str, doc: Value) -> Result<(Value, Option<String>), ConfigError> {
    let is_service = doc.get("properties").is_some() || schema_kind(&doc) == Some("service");
    if is_service {
        return Ok((doc, None));
    }
    match doc.get("configuration") {
        Some(Value::Object(conf)) if conf.contains_key("probe_module") => {
            let name = conf
                .get("name")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .unwrap_or("measurement")
                .to_owned();
            let mut probe = conf.clone();
            // The original's own record: its data file is read by what
            // read the original's, so it is written in the original's
            // line format unless the record says otherwise.
            if probe.contains_key("data_file") {
                probe
                    .entry("data_file_format")
                    .or_insert_with(|| json!("original"));
            }
            let mut probes = Map::new();
            probes.insert(name.clone(), Value::Object(probe));
            let service = json!({"properties": {"configurations": {"probes": probes}}});
            Ok((service, Some(name)))
        }
        Some(other) => Err(ConfigError::invalid(
            origin,
            "/configuration",
            other,
            "a measurement record's configuration with a probe_module, to run it as that probe",
        )),
        None => match schema_kind(&doc) {
            Some(kind) => Err(ConfigError::invalid(
                origin,
                "/$schema",
                &doc["$schema"],
                format!(
                    "a service record (or a measurement record with a configuration), not a {kind} record"
                ),
            )),
            None => Ok((doc, None)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_record_is_itself() {
        let doc = json!({"properties": {"configurations": {"unis_url": "http://u"}}});
        assert_eq!(as_service("f", doc.clone()).unwrap(), (doc, None));
        let bare = json!({"$schema": "http://unis.crest.iu.edu/schema/20151104/service#"});
        assert_eq!(as_service("f", bare.clone()).unwrap(), (bare, None));
        let empty = json!({});
        assert_eq!(as_service("f", empty.clone()).unwrap(), (empty, None));
    }

    #[test]
    fn a_measurement_record_is_its_one_probe() {
        let doc = json!({
            "$schema": "http://unis.crest.iu.edu/schema/20140214/measurement#",
            "service": "http://u/services/1",
            "eventTypes": ["ps:x"],
            "configuration": {"name": "lo_ping", "probe_module": "cmd_line_probe",
                              "command": "ping -c 1 127.0.0.1", "schedule_params": {"every": 5}}
        });
        let (service, name) = as_service("f", doc).unwrap();
        assert_eq!(name.as_deref(), Some("lo_ping"));
        let probe = &service["properties"]["configurations"]["probes"]["lo_ping"];
        assert_eq!(probe["command"], "ping -c 1 127.0.0.1");
        assert_eq!(probe["schedule_params"]["every"], 5);
        assert!(probe.get("data_file_format").is_none(), "no data file");
        let with_file =
            json!({"configuration": {"probe_module": "mem", "data_file": "/tmp/m.log"}});
        let (service, _) = as_service("f", with_file).unwrap();
        assert_eq!(
            service["properties"]["configurations"]["probes"]["measurement"]["data_file_format"],
            "original"
        );
        let unnamed = json!({"configuration": {"probe_module": "mem"}});
        let (service, name) = as_service("f", unnamed).unwrap();
        assert_eq!(name.as_deref(), Some("measurement"));
        assert!(service["properties"]["configurations"]["probes"]["measurement"].is_object());
    }

    #[test]
    fn other_records_are_refused_saying_what_they_are() {
        let node =
            json!({"$schema": "http://unis.crest.iu.edu/schema/20151104/node#", "name": "h"});
        assert_eq!(
            as_service("f.json", node).unwrap_err().to_string(),
            "f.json: /$schema: \"http://unis.crest.iu.edu/schema/20151104/node#\" is invalid: a service record (or a measurement record with a configuration), not a node record"
        );
        let bad = json!({"configuration": "ping"});
        assert_eq!(
            as_service("f.json", bad).unwrap_err().to_string(),
            "f.json: /configuration: \"ping\" is invalid: a measurement record's configuration with a probe_module, to run it as that probe"
        );
    }
}
