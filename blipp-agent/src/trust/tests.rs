use std::collections::BTreeSet;

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::config::{Overrides, load_local};

/// The local configuration of `file` (merged over the built-in defaults).
fn local(file: &Value) -> Local {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blipp.json");
    std::fs::write(&path, file.to_string()).unwrap();
    load_local(Some(&path), &Overrides::default()).unwrap()
}

fn service(configurations: Value) -> Value {
    json!({"id": "s1", "serviceType": "ps:tools:blipp",
           "properties": {"configurations": configurations}})
}

fn pointers(refused: &[Refusal]) -> BTreeSet<String> {
    refused.iter().map(|r| r.pointer.clone()).collect()
}

fn screen(local: &Local, remote: &Value) -> (Value, Vec<Refusal>) {
    merge_service(local, remote, remote, "UNIS service s1", Precedence::Unis).unwrap()
}

fn cmd(command: &str) -> Value {
    json!({"probe_module": "cmd", "command": command, "regex": "(?P<x>\\d+)",
           "eventTypes": {"x": "ps:tools:blipp:test:x"}})
}

#[test]
fn a_bad_service_in_unis_is_named() {
    let l = load_local(None, &Overrides::default()).unwrap();
    let unis = json!({"properties": {"configurations": {"unis_poll_interval": "often"}}});
    let e = merge_service(&l, &unis, &unis, "UNIS service s1", Precedence::Unis)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("UNIS service s1: /properties/configurations/unis_poll_interval"),
        "{e}"
    );
}

/// The attack of issue 15 and its variants, with a legitimate schedule
/// change in the same update.
#[test]
fn what_names_programs_files_or_destinations_is_refused_and_the_rest_applies() {
    let l = local(&json!({"properties": {"configurations": {
        "unis_url": "http://unis.local:8888",
        "probes": {
            "cpu": {"probe_module": "cpu"}, "mem": {"probe_module": "mem"},
            "disk": {"probe_module": "disk"}, "net": {"probe_module": "net"}}}}}));
    let remote = service(json!({
        "unis_url": "http://evil.example:8888",
        "spool_dir": "/etc",
        "trust": {"programs": ["/bin/sh"]},
        "command_user": "root",
        "command_limits": {"processes": 100000},
        "prometheus": {"remote_write": [{"url": "http://evil.example/api/v1/write",
            "bearer_token_file": "/etc/shadow"}]},
        "probe_defaults": {"sys_dir": "/root", "schedule_params": {"every": 3}},
        "probes": {
            "pwn": cmd("touch /tmp/PWNED"),
            "check": {"probe_module": "nagios", "command": "/bin/sh -c id"},
            "mem": {"probe_module": "mem", "schedule_params": {"every": 2}},
            "cpu": {"probe_module": "cpu", "data_file": "/etc/cron.d/blipp"},
            "disk": {"probe_module": "disk", "proc_dir": "/root"},
            "net": {"probe_module": "net", "ms_url": "http://evil.example:8888"},
            "log": {"probe_module": "netlogger", "logfile": "/etc/shadow"}
        }
    }));
    let (merged, refused) = screen(&l, &remote);
    let conf = &merged["properties"]["configurations"];
    assert_eq!(
        pointers(&refused),
        [
            "/properties/configurations/command_limits",
            "/properties/configurations/command_user",
            "/properties/configurations/probe_defaults/sys_dir",
            "/properties/configurations/probes/check",
            "/properties/configurations/probes/cpu/data_file",
            "/properties/configurations/probes/disk/proc_dir",
            "/properties/configurations/probes/log/logfile",
            "/properties/configurations/probes/net/ms_url",
            "/properties/configurations/probes/pwn",
            "/properties/configurations/prometheus",
            "/properties/configurations/spool_dir",
            "/properties/configurations/trust",
            "/properties/configurations/unis_url",
        ]
        .map(str::to_owned)
        .into_iter()
        .collect::<BTreeSet<_>>()
    );
    assert!(conf["probes"].get("pwn").is_none());
    assert!(conf["probes"].get("check").is_none());
    assert!(
        conf["probes"].get("log").is_none(),
        "a new probe without its file is left out"
    );
    assert_eq!(conf["probes"]["mem"]["schedule_params"]["every"], 2);
    assert_eq!(conf["probe_defaults"]["schedule_params"]["every"], 3);
    assert!(conf["probes"]["cpu"].get("data_file").is_none());
    assert!(conf["probes"]["disk"].get("proc_dir").is_none());
    assert!(conf["probes"]["net"].get("ms_url").is_none());
    assert_eq!(conf["unis_url"], "http://unis.local:8888");
    assert!(conf.get("trust").is_none() && conf.get("command_user").is_none());
    assert!(conf.get("command_limits").is_none());
    assert!(conf.get("prometheus").is_none());
    let pwn = refused
        .iter()
        .find(|r| r.pointer.ends_with("/pwn"))
        .unwrap();
    assert!(pwn.value.contains("/usr/bin/touch"), "{pwn}");
    assert!(pwn.rule.contains("trust.programs"), "{pwn}");
}

/// UNIS can neither open a scrape endpoint nor move or unlock the local
/// one, whatever the policy allows for paths.
#[test]
fn the_prometheus_section_is_the_local_files_only() {
    let conf = |scrape: Value| {
        json!({"properties": {"configurations": {
            "trust": {"paths": ["/"]},
            "prometheus": {"scrape": scrape}}}})
    };
    let l = local(&conf(json!({"port": 9787})));
    for remote in [
        json!({"scrape": {"listen": "0.0.0.0", "port": 9787}}),
        json!({"scrape": {"port": 9787, "bearer_token_file": "/tmp/token"}}),
        json!({}),
    ] {
        let (merged, refused) = screen(&l, &service(json!({"prometheus": remote})));
        assert_eq!(
            pointers(&refused),
            BTreeSet::from(["/properties/configurations/prometheus".to_owned()]),
            "{remote}"
        );
        assert_eq!(
            merged["properties"]["configurations"]["prometheus"],
            json!({"scrape": {"port": 9787}})
        );
    }
    let none = local(&json!({}));
    let (merged, refused) = screen(&none, &service(json!({"prometheus": {"scrape": {}}})));
    assert_eq!(refused.len(), 1);
    assert!(
        merged["properties"]["configurations"]
            .get("prometheus")
            .is_none()
    );
}

#[test]
fn the_policy_of_the_local_file_lets_named_programs_files_and_urls_through() {
    let l = local(&json!({"properties": {"configurations": {
        "trust": {"programs": [{"path": "/usr/bin/echo", "args": ["[0-9]+"]}],
                  "paths": ["/var/lib/blipp/data"],
                  "urls": ["http://ms.example.org:8888/"]},
        "probes": {"mem": {"probe_module": "mem"}}}}}));
    let remote = service(json!({"probes": {
        "answer": cmd("echo 42"),
        "bad": cmd("echo 42 43"),
        "mem": {"probe_module": "mem", "data_file": "/var/lib/blipp/data/mem.json",
                "ms_url": "http://ms.example.org:8888/"}}}));
    let (merged, refused) = screen(&l, &remote);
    let probes = &merged["properties"]["configurations"]["probes"];
    assert_eq!(probes["answer"]["command"], "echo 42");
    assert_eq!(probes["mem"]["data_file"], "/var/lib/blipp/data/mem.json");
    assert_eq!(probes["mem"]["ms_url"], "http://ms.example.org:8888/");
    assert_eq!(
        pointers(&refused),
        BTreeSet::from(["/properties/configurations/probes/bad".to_owned()])
    );
}

#[test]
fn what_the_local_file_says_already_passes_as_blippd_wrote_it_back() {
    let file = json!({"properties": {"configurations": {
        "unis_url": "http://unis.local:8888",
        "probes": {
            "answer": {"probe_module": "cmd", "command": "echo $n", "n": 7,
                       "regex": "(?P<x>\\d+)", "eventTypes": {"x": "ps:tools:blipp:test:x"},
                       "data_file": "/tmp/answer.json"}}}}});
    let l = local(&file);
    let mut remote = l.doc.clone();
    remote["id"] = json!("s1");
    remote["properties"]["configurations"]["probes"]["answer"]["schedule_params"] =
        json!({"every": 9});
    let (merged, refused) = screen(&l, &remote);
    assert!(refused.is_empty(), "{refused:?}");
    assert_eq!(
        merged["properties"]["configurations"]["probes"]["answer"]["schedule_params"]["every"],
        9
    );
}

/// Any way of changing what a local program probe runs is caught on the
/// result: its command, a `$key` value, its environment, or a default it
/// reads as a `$key` word.
#[test]
fn every_way_into_a_programs_arguments_is_checked() {
    let l = local(&json!({"properties": {"configurations": {
        "probes": {"answer": {"probe_module": "cmd", "command": "echo $n $collection_ttl", "n": 7,
                   "regex": "(?P<x>\\d+)", "eventTypes": {"x": "ps:tools:blipp:test:x"}}}}}}));
    let answer = |edit: &dyn Fn(&mut Value)| {
        let mut p = l.doc["properties"]["configurations"]["probes"]["answer"].clone();
        edit(&mut p);
        json!({"probes": {"answer": p}})
    };
    let cases = [
        (
            "command",
            answer(&|p| p["command"] = json!("id")),
            "/properties/configurations/probes/answer",
        ),
        (
            "a $key value",
            answer(&|p| p["n"] = json!("--help")),
            "/properties/configurations/probes/answer",
        ),
        (
            "environment",
            answer(&|p| p["environment"] = json!({"LD_PRELOAD": "/tmp/x.so"})),
            "/properties/configurations/probes/answer",
        ),
        (
            "a default read as $key",
            json!({"probe_defaults": {"collection_ttl": 5}}),
            "/properties/configurations/probe_defaults",
        ),
    ];
    for (what, remote, pointer) in cases {
        let (merged, refused) = screen(&l, &service(remote));
        assert_eq!(
            pointers(&refused),
            BTreeSet::from([pointer.to_owned()]),
            "{what}: {refused:?}"
        );
        let probe = &merged["properties"]["configurations"]["probes"]["answer"];
        assert_eq!(probe["command"], "echo $n $collection_ttl", "{what}");
        assert_eq!(probe["n"], 7, "{what}");
        assert!(probe.get("environment").is_none(), "{what}");
    }
    // A schedule of the same probe is not a change of what it runs.
    let (_, refused) = screen(
        &l,
        &service(answer(&|p| p["schedule_params"] = json!({"every": 30}))),
    );
    assert!(refused.is_empty(), "{refused:?}");
}

#[test]
fn a_built_in_probe_turned_into_a_program_probe_is_refused() {
    let l = local(&json!({"properties": {"configurations": {
        "probes": {"mem": {"probe_module": "mem"}}}}}));
    let (merged, refused) = screen(&l, &service(json!({"probes": {"mem": cmd("id")}})));
    assert_eq!(
        pointers(&refused),
        BTreeSet::from(["/properties/configurations/probes/mem".to_owned()])
    );
    assert_eq!(
        merged["properties"]["configurations"]["probes"]["mem"]["probe_module"],
        "mem"
    );
}

#[test]
fn adopted_measurements_are_screened_whole() {
    let l = local(&json!({"properties": {"configurations": {
        "trust": {"programs": ["/usr/bin/uptime"]}}}}));
    let origin = "UNIS measurement m1";
    let r = screen_measurement(&l, &l.doc, "x", &cmd("touch /tmp/x"), origin);
    assert_eq!(pointers(&r), BTreeSet::from(["/configuration".to_owned()]));
    let r = screen_measurement(&l, &l.doc, "x", &cmd("uptime"), origin);
    assert!(r.is_empty(), "{r:?}");
    let r = screen_measurement(
        &l,
        &l.doc,
        "x",
        &json!({"probe_module": "mem", "data_file": "/etc/x"}),
        origin,
    );
    assert_eq!(
        pointers(&r),
        BTreeSet::from(["/configuration/data_file".to_owned()])
    );
    assert_eq!(r[0].origin, origin);
}

/// The pointers below `v` (a schema) whose values the schema types as a
/// path or a URL, through `properties` and `items`.
fn nested_paths_and_urls(
    v: &Value,
    typed: &dyn Fn(&Value, &str) -> bool,
    at: &str,
    out: &mut Vec<String>,
) {
    for (key, sub) in v["properties"].as_object().into_iter().flatten() {
        let here = format!("{at}/{key}");
        if typed(sub, "path") || typed(sub, "url") {
            out.push(here.clone());
        }
        nested_paths_and_urls(sub, typed, &here, out);
    }
    if v.get("items").is_some() {
        nested_paths_and_urls(&v["items"], typed, &format!("{at}/*"), out);
    }
}

/// Every key the schema types as a path or a URL is classified as one:
/// a key added to the schema without a classification fails here.
#[test]
fn every_path_and_url_key_of_the_schema_is_screened() {
    let schema: Value = serde_json::from_str(config::schema::SCHEMA_TEXT).unwrap();
    let defs = &schema["$defs"];
    let typed = |v: &Value, def: &str| {
        let r = format!("#/$defs/{def}");
        v.get("$ref").and_then(Value::as_str) == Some(r.as_str())
            || v.get("anyOf").and_then(Value::as_array).is_some_and(|a| {
                a.iter()
                    .any(|x| x.get("$ref").and_then(Value::as_str) == Some(r.as_str()))
            })
    };
    let mut checked = 0;
    // Service-wide settings.
    for (key, v) in defs["configurations"]["properties"].as_object().unwrap() {
        if typed(v, "path") || key.starts_with("ssl_") {
            assert_eq!(setting_reach(key), KeyReach::Path, "{key}");
            checked += 1;
        }
        if typed(v, "url") {
            assert_eq!(setting_reach(key), KeyReach::Url, "{key}");
            checked += 1;
        }
        // A setting that holds paths or URLs deeper down (an object, an
        // array of objects) is screened as a whole: only the local file
        // sets it.
        let mut nested = Vec::new();
        nested_paths_and_urls(v, &typed, key, &mut nested);
        if !nested.is_empty() && !typed(v, "path") && !typed(v, "url") {
            assert_eq!(setting_reach(key), KeyReach::LocalOnly, "{nested:?}");
            checked += nested.len();
        }
    }
    // Sections whose nested keys name files or addresses (`prometheus`)
    // are the local file's only.
    fn names_a_path_or_url(v: &Value, defs: &Value, depth: usize) -> bool {
        if depth > 8 {
            return false;
        }
        match v {
            Value::Object(m) => m.iter().any(|(k, x)| {
                (k == "$ref"
                    && x.as_str().is_some_and(|r| {
                        let def = r.trim_start_matches("#/$defs/");
                        def == "path"
                            || def == "url"
                            || names_a_path_or_url(&defs[def], defs, depth + 1)
                    }))
                    || names_a_path_or_url(x, defs, depth + 1)
            }),
            Value::Array(a) => a.iter().any(|x| names_a_path_or_url(x, defs, depth + 1)),
            _ => false,
        }
    }
    for (key, v) in defs["configurations"]["properties"].as_object().unwrap() {
        if key == "probes" || key == "probe_defaults" {
            // Screened key by key, below.
            continue;
        }
        let nested = v.get("properties").is_some()
            || v.get("$ref")
                .is_some_and(|r| r != "#/$defs/path" && r != "#/$defs/url");
        if nested && names_a_path_or_url(v, defs, 0) {
            assert_eq!(setting_reach(key), KeyReach::LocalOnly, "{key}");
            assert!(
                crate::config::policy::LOCAL_ONLY.contains(&key.as_str()),
                "{key}"
            );
            checked += 1;
        }
    }
    // Keys of every probe, and each module's own (and their kwargs).
    let mut visit = |module: Option<&str>, props: &Value| {
        let reach = reach_of(module);
        for (key, v) in props.as_object().into_iter().flatten() {
            let expected = if typed(v, "path") {
                KeyReach::Path
            } else if typed(v, "url") {
                KeyReach::Url
            } else {
                continue;
            };
            if matches!(reach, Some(Reach::Program)) {
                continue;
            }
            assert_eq!(probe_key_reach(reach, key), expected, "{module:?}: {key}");
            checked += 1;
        }
    };
    visit(None, &defs["probe_common"]["properties"]);
    for spec in probe::REGISTRY {
        let name = match spec.module {
            "cmd_line_probe" => "cmd",
            "netlogger_probe" => "netlogger",
            m => m,
        };
        let options = &defs[format!("options_{name}")];
        visit(Some(spec.module), &options["properties"]);
        visit(
            Some(spec.module),
            &options["properties"]["kwargs"]["properties"],
        );
        if let Some(r) = options["properties"]["kwargs"]["$ref"].as_str() {
            let def = r.trim_start_matches("#/$defs/");
            visit(Some(spec.module), &defs[def]["properties"]);
        }
    }
    assert!(
        checked >= 12,
        "only {checked} keys found: did the schema's layout change?"
    );
}

// What random service records from UNIS can reach: for any of them, the
// configuration that results runs only programs the local file runs or
// allows, and names only files and destinations the local file names or
// allows.

const ALLOWED_DIR: &str = "/var/lib/blipp/allowed";
const ALLOWED_URL: &str = "http://ms.allowed:8888/";

fn local_for_property() -> Local {
    local(&json!({"properties": {"configurations": {
        "unis_url": "http://unis.local:8888",
        "trust": {"programs": ["/usr/bin/echo"], "paths": [ALLOWED_DIR], "urls": [ALLOWED_URL]},
        "probes": {
            "answer": {"probe_module": "cmd", "command": "uptime $x", "x": "-p",
                       "regex": "(?P<x>\\d+)", "eventTypes": {"x": "ps:tools:blipp:test:x"},
                       "data_file": "/tmp/answer.json"},
            "mem": {"probe_module": "mem"},
            "log": {"probe_module": "netlogger", "logfile": "/var/log/app.log"}}}}}))
}

fn any_path() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!("/etc/shadow")),
        Just(json!("/root")),
        Just(json!("/tmp/answer.json")),
        Just(json!("/var/log/app.log")),
        Just(json!(format!("{ALLOWED_DIR}/x.json"))),
        Just(json!(format!("{ALLOWED_DIR}/../../../../etc/x"))),
        Just(json!("relative/x")),
    ]
}

fn any_url() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!("http://evil.example:8888")),
        Just(json!("http://unis.local:8888")),
        Just(json!(ALLOWED_URL)),
        Just(json!("http://ms.allowed:88889/")),
    ]
}

fn any_command() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!("touch /tmp/PWNED")),
        Just(json!("echo $x")),
        Just(json!("/usr/bin/echo hi")),
        Just(json!("uptime $x")),
        Just(json!("sh -c id")),
        Just(json!("/usr/lib/nagios/plugins/../../../bin/sh")),
        Just(json!("$x")),
    ]
}

fn any_probe() -> impl Strategy<Value = Value> {
    let module = prop_oneof![
        Just("cmd"),
        Just("nagios"),
        Just("mem"),
        Just("netlogger"),
        Just("process"),
        Just("net"),
    ];
    (
        module,
        any_command(),
        prop_oneof![Just(json!("-p")), Just(json!("/bin/sh")), Just(json!(3))],
        proptest::option::of(any_path()),
        proptest::option::of(any_path()),
        proptest::option::of(any_url()),
        proptest::option::of(any_path()),
        proptest::bool::ANY,
    )
        .prop_map(
            |(module, command, x, data_file, proc_dir, ms_url, file, env)| {
                let mut p = json!({"probe_module": module, "schedule_params": {"every": 7}});
                match module {
                    "cmd" | "nagios" => {
                        p["command"] = command;
                        p["x"] = x;
                        if module == "cmd" {
                            p["regex"] = json!("(?P<x>\\d+)");
                            p["eventTypes"] = json!({"x": "ps:tools:blipp:test:x"});
                        }
                        if env {
                            p["environment"] = json!({"PATH": "/tmp"});
                        }
                    }
                    "netlogger" => p["logfile"] = file.unwrap_or_else(|| json!("/var/log/app.log")),
                    "process" => p["pidfile"] = file.unwrap_or_else(|| json!("/run/x.pid")),
                    "net" => {
                        p["kwargs"] =
                            json!({"proc_dir": proc_dir.clone().unwrap_or(json!("/proc"))})
                    }
                    _ => {}
                }
                for (k, v) in [
                    ("data_file", data_file),
                    ("proc_dir", proc_dir),
                    ("ms_url", ms_url),
                ] {
                    if let Some(v) = v {
                        p[k] = v;
                    }
                }
                p
            },
        )
}

fn any_service() -> impl Strategy<Value = Value> {
    (
        proptest::collection::btree_map(
            prop_oneof![
                Just("answer"),
                Just("mem"),
                Just("log"),
                Just("new1"),
                Just("new2")
            ],
            any_probe(),
            0..4,
        ),
        proptest::option::of(any_path()),
        proptest::option::of(any_url()),
        proptest::option::of(prop_oneof![
            Just(json!({"x": "--help"})),
            Just(json!({"data_file": "/etc/x"})),
            Just(json!({"proc_dir": "/root"}))
        ]),
    )
        .prop_map(|(probes, spool, unis, defaults)| {
            let mut c = json!({"probes": probes});
            if let Some(s) = spool {
                c["spool_dir"] = s;
            }
            if let Some(u) = unis {
                c["unis_url"] = u;
            }
            if let Some(d) = defaults {
                c["probe_defaults"] = d;
            }
            service(c)
        })
}

/// The files and destinations a resolved probe names, by key.
fn named(p: &crate::config::ProbeConfig) -> Vec<(String, Value)> {
    let mut out = vec![
        (
            "proc_dir".to_owned(),
            json!(p.proc_dir.display().to_string()),
        ),
        ("sys_dir".to_owned(), json!(p.sys_dir.display().to_string())),
    ];
    if let Some(f) = &p.data_file {
        out.push(("data_file".to_owned(), json!(f.display().to_string())));
    }
    if let Some(u) = &p.ms_url {
        out.push(("ms_url".to_owned(), json!(u)));
    }
    for key in ["logfile", "pidfile", "unis_url"] {
        if let Some(v) = p.options.get(key) {
            out.push((key.to_owned(), v.clone()));
        }
    }
    if let Some(Value::Object(kw)) = p.raw.get("kwargs") {
        for (k, v) in kw {
            out.push((k.clone(), v.clone()));
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn no_remote_tree_reaches_a_program_file_or_destination_the_local_file_does_not(remote in any_service()) {
        let l = local_for_property();
        let Ok((merged, _)) = merge_service(&l, &remote, &remote, "UNIS service s1", Precedence::Unis) else {
            return Ok(());
        };
        let Ok(c) = config::resolve(merged) else { return Ok(()) };
        let ours = config::resolve(l.doc.clone()).unwrap();
        let local_of = |name: &str| ours.probes.iter().find(|p| p.name == name);
        let allowed_path = |v: &Value| v.as_str().is_some_and(|s| {
            s.starts_with(&format!("{ALLOWED_DIR}/")) && !s.contains("..")
        });
        let allowed_url = |v: &Value| v.as_str().is_some_and(|s| {
            s.starts_with(ALLOWED_URL) || s == "http://unis.local:8888"
        });
        for p in &c.probes {
            let local = local_of(&p.name);
            if matches!(probe::spec(&p.module).map(|s| s.reach), Some(Reach::Program)) {
                let stages = probe::command::invocations(p).unwrap();
                let same = local
                    // Running the same program under the other program
                    // module (cmd or nagios) only changes how its output
                    // is read.
                    .filter(|q| matches!(probe::spec(&q.module).map(|s| s.reach), Some(Reach::Program)))
                    .and_then(|q| probe::command::invocations(q).ok())
                    .is_some_and(|q| q == stages);
                prop_assert!(same || stages.iter().all(|inv| inv.argv[0] == "/usr/bin/echo" && inv.env.is_empty()),
                    "{} runs {:?}", p.name, stages);
            }
            let local_named = local.map(named).unwrap_or_default();
            for (key, value) in named(p) {
                let default = matches!((key.as_str(), value.as_str()), ("proc_dir", Some("/proc")) | ("sys_dir", Some("/sys")));
                let own = local_named.iter().any(|(k, v)| *k == key && *v == value);
                let ok = default || own || if key.ends_with("url") { allowed_url(&value) } else { allowed_path(&value) };
                prop_assert!(ok, "{}: {} = {}", p.name, key, value);
            }
        }
        let spool = c.settings.spool_dir.display().to_string();
        prop_assert!(spool == crate::config::DEFAULT_SPOOL_DIR || allowed_path(&json!(spool)), "spool_dir {}", spool);
        let unis = c.settings.unis_url.clone().unwrap_or_default();
        prop_assert!(allowed_url(&json!(unis)), "unis_url {}", unis);
    }
}

/// Issue 19: a service record as the original BLiPP wrote it into UNIS
/// (numbers and booleans as strings, `ms_url` beside the settings) is read
/// as it meant instead of refused whole; the moved `ms_url` still passes
/// the trust policy like any remote destination.
#[test]
fn a_record_the_original_wrote_is_read_as_it_meant() {
    let l = local(&json!({"properties": {"configurations": {
        "unis_url": "http://unis.example:8888",
        "probes": {"cpu": {"probe_module": "cpu"}}}}}));
    let unis = service(json!({"unis_poll_interval": "30", "use_ssl": "",
        "ms_url": "http://elsewhere.example:8888",
        "probe_defaults": {"schedule_params": {"every": "2"}}}));
    let (merged, refused) = screen(&l, &unis);
    let c = &merged["properties"]["configurations"];
    assert_eq!(c["unis_poll_interval"], 30.0);
    assert_eq!(c["probe_defaults"]["schedule_params"]["every"], 2.0);
    assert!(c.get("ms_url").is_none(), "{c}");
    // An MS the local file did not allow, and use_ssl, never taken from
    // UNIS.
    assert_eq!(
        pointers(&refused),
        BTreeSet::from([
            "/properties/configurations/probe_defaults/ms_url".to_owned(),
            "/properties/configurations/use_ssl".to_owned()
        ]),
    );
}

/// A `$schema` probe from UNIS runs the program of its preset: screened as
/// any `cmd` probe, refused until the local file allows that program.
#[test]
fn a_preset_probe_from_unis_is_screened_as_the_program_it_runs() {
    let remote = service(json!({"probes": {"p": {
        "$schema": "http://unis.crest.iu.edu/schema/blippmeasurements/20130429/ping#",
        "address": "127.0.0.1"}}}));
    let closed = local(&json!({"properties": {"configurations": {
        "probes": {"cpu": {"probe_module": "cpu"}}}}}));
    let (merged, refused) = screen(&closed, &remote);
    assert_eq!(
        pointers(&refused),
        ["/properties/configurations/probes/p".to_owned()].into()
    );
    assert!(merged["properties"]["configurations"]["probes"]["p"].is_null());

    let open = local(&json!({"properties": {"configurations": {
        "trust": {"programs": ["/usr/bin/ping"]},
        "probes": {"cpu": {"probe_module": "cpu"}}}}}));
    let (merged, refused) = screen(&open, &remote);
    assert!(refused.is_empty(), "{refused:?}");
    let p = &merged["properties"]["configurations"]["probes"]["p"];
    assert_eq!(p["probe_module"], "cmd_line_probe");
    assert_eq!(p["address"], "127.0.0.1");
}

/// A pipeline is as many programs as it has stages: a remote one runs
/// only when the local policy allows every stage, and the new program
/// probes (json_probe, traceroute, ceph_probe's default command) are
/// screened as the programs they run.
#[test]
fn every_stage_of_a_remote_pipeline_and_every_default_command_is_screened() {
    let l = local(&json!({"properties": {"configurations": {
        "trust": {"programs": ["/usr/bin/echo", {"path": "/usr/bin/grep", "args": ["[0-9]+"]},
                               {"path": "/usr/sbin/traceroute", "args": ["-n", "-w", "2", "10\\.0\\.0\\.2"]}]}}}}));
    let piped = |stages: Value| {
        json!({"probe_module": "cmd", "pipeline": stages, "regex": "(?P<x>\\d+)",
               "eventTypes": {"x": "ps:tools:blipp:test:x"}})
    };
    let remote = service(json!({"probes": {
        "ok": piped(json!(["echo 42", "grep 42"])),
        "second": piped(json!(["echo 42", "sh -c id"])),
        "args": piped(json!(["echo 42", "grep -r x /etc"])),
        "trace": {"probe_module": "traceroute_probe", "address": "10.0.0.2"},
        "trace_elsewhere": {"probe_module": "traceroute", "address": "10.0.0.3"},
        "ceph": {"probe_module": "ceph_probe"},
        "json": {"probe_module": "json_probe", "command": "iperf3 -J -c x"}}}));
    let (merged, refused) = screen(&l, &remote);
    assert_eq!(
        pointers(&refused),
        ["second", "args", "trace_elsewhere", "ceph", "json"]
            .iter()
            .map(|n| format!("/properties/configurations/probes/{n}"))
            .collect::<BTreeSet<_>>()
    );
    let probes = &merged["properties"]["configurations"]["probes"];
    assert_eq!(probes["ok"]["pipeline"], json!(["echo 42", "grep 42"]));
    assert_eq!(probes["trace"]["address"], "10.0.0.2");
    let second = refused
        .iter()
        .find(|r| r.pointer.ends_with("/second"))
        .unwrap();
    assert!(second.to_string().contains("/usr/bin/sh"), "{second}");
}
