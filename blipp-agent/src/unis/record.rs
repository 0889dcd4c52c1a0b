//! The UNIS records blipp writes, built from what it knows (host facts,
//! probe configurations) over what UNIS already holds, and compared with
//! it so that nothing unchanged is written. Pure functions: the requests
//! are made in `register.rs`.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::client::schema_uri;
use crate::config::ProbeConfig;
use crate::host::{HostInfo, Interface, LinkSpeed, clean_mac};

/// Fields the server fills in: not ours to write, not a difference.
const SERVER_FIELDS: [&str; 2] = ["ts", "selfRef"];

/// A new record id: 24 random hex digits, the form of the server's own.
/// blipp names its records itself so that one list `POST` creates many
/// and each answer is matched to its request by id.
pub fn new_id() -> String {
    let mut bytes = [0u8; 12];
    let mut filled = 0;
    while filled < bytes.len() {
        // SAFETY: the pointer and length describe the unfilled tail of
        // `bytes`, which is valid for writes.
        let n = unsafe {
            libc::getrandom(bytes[filled..].as_mut_ptr().cast(), bytes.len() - filled, 0)
        };
        match usize::try_from(n) {
            Ok(n) => filled += n,
            Err(_) => {
                // Before the entropy pool is ready (early boot): uniqueness,
                // not secrecy, is what an id needs.
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_nanos()
                    ^ u128::from(std::process::id()) << 64;
                bytes.copy_from_slice(&now.to_le_bytes()[..12]);
                break;
            }
        }
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `{"href": .., "rel": "full"}`.
pub fn link(href: &str) -> Value {
    json!({ "href": href, "rel": "full" })
}

/// A record without the fields the server fills.
pub fn without_server_fields(record: &Value) -> Value {
    let mut r = record.clone();
    if let Value::Object(m) = &mut r {
        for k in SERVER_FIELDS {
            m.remove(k);
        }
    }
    r
}

/// Whether writing `desired` over `existing` would change anything.
pub fn differs(existing: &Value, desired: &Value) -> bool {
    without_server_fields(existing) != without_server_fields(desired)
}

/// Measurement fields that `simple_avoid` publishes by `PUT` alone
/// (`unis::reservations`): the real server refuses a `POST` of a
/// measurement with `scheduled_times` (its schema refers to a definition
/// that does not exist, which fails only when the field is there), and it
/// stores a `PUT` unvalidated, as the original BLiPP published them.
pub const PUT_ONLY: [&str; 2] = ["scheduled_times", "ttl"];

fn without_put_only(record: &Value) -> Value {
    let mut r = without_server_fields(record);
    if let Value::Object(m) = &mut r {
        for k in PUT_ONLY {
            m.remove(k);
        }
    }
    r
}

/// [`differs`] for measurements: their published slots are not part of
/// what registration writes.
pub fn measurement_differs(existing: &Value, desired: &Value) -> bool {
    without_put_only(existing) != without_put_only(desired)
}

/// The last path segment of an href: the record's id.
pub fn id_of(href: &str) -> &str {
    href.rsplit('/').next().unwrap_or(href)
}

/// The node's host facts, under `properties.system` (other properties of
/// the node are left as they are). Unknown facts are left out.
fn system(host: &HostInfo) -> Value {
    let mut s = Map::new();
    s.insert("hostname".into(), json!(host.hostname));
    s.insert("fqdn".into(), json!(host.fqdn));
    s.insert(
        "kernel".into(),
        json!({ "release": host.kernel.release, "machine": host.kernel.machine }),
    );
    if let Some(os) = &host.os_release {
        s.insert("os".into(), json!(os));
    }
    if let Some(model) = &host.cpu_model {
        s.insert("cpu_model".into(), json!(model));
    }
    s.insert("cpus".into(), json!(host.cpus));
    if let Some(kb) = host.mem_total_kb {
        s.insert("mem_total_kb".into(), json!(kb));
    }
    if let Some(t) = host.boot_time {
        s.insert("boot_time".into(), json!(t));
    }
    s.insert("numa_nodes".into(), json!(host.numa_nodes));
    Value::Object(s)
}

fn object<'a>(v: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    if !v.get(key).is_some_and(Value::is_object) {
        v[key] = Value::Object(Map::new());
    }
    match &mut v[key] {
        Value::Object(m) => m,
        _ => unreachable!("just made an object"),
    }
}

/// The node as blipp wants it: `existing` (or a new record with `id`)
/// with name, URN and host facts, and links to `ports` added.
pub fn node(
    existing: Option<&Value>,
    id: &str,
    host: &HostInfo,
    urn: &str,
    ports: &[String],
) -> Value {
    let mut n = existing.map_or_else(
        || json!({ "$schema": schema_uri("node"), "id": id }),
        without_server_fields,
    );
    if n.get("name").is_none() {
        n["name"] = json!(host.fqdn);
    }
    if n.get("urn").is_none() {
        n["urn"] = json!(urn);
    }
    object(&mut n, "properties").insert("system".into(), system(host));
    let links = n
        .get("ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut links = links;
    for href in ports {
        if !links
            .iter()
            .any(|l| l.get("href").and_then(Value::as_str) == Some(href))
        {
            links.push(link(href));
        }
    }
    n["ports"] = Value::Array(links);
    n
}

/// The hrefs a node links as its ports.
pub fn port_links(node: &Value) -> Vec<String> {
    node.get("ports")
        .and_then(Value::as_array)
        .map(|ls| {
            ls.iter()
                .filter_map(|l| l.get("href").and_then(Value::as_str).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The MAC a UNIS port record carries, as the original matched it:
/// `properties.geni.mac_address`, `properties.mac.address`, or a MAC
/// `address`.
pub fn port_mac(port: &Value) -> Option<String> {
    let mac = port
        .pointer("/properties/geni/mac_address")
        .or_else(|| port.pointer("/properties/mac/address"))
        .or_else(|| {
            (port.pointer("/address/type").and_then(Value::as_str) == Some("mac"))
                .then(|| port.pointer("/address/address"))
                .flatten()
        })?;
    clean_mac(mac.as_str()?)
}

/// A MAC that identifies hardware: loopback and tunnels have none or all
/// zeros.
fn real_mac(iface: &Interface) -> Option<String> {
    iface
        .mac
        .as_deref()
        .and_then(clean_mac)
        .filter(|m| m.bytes().any(|b| b != b'0'))
}

/// For each interface, the index of the existing port it is: the same MAC,
/// or (for interfaces without one) the same name among ports without one.
/// Each port is matched at most once.
pub fn match_ports(existing: &[Value], interfaces: &[Interface]) -> Vec<Option<usize>> {
    let mut taken = vec![false; existing.len()];
    interfaces
        .iter()
        .map(|iface| {
            let found = match real_mac(iface) {
                Some(mac) => existing
                    .iter()
                    .enumerate()
                    .position(|(i, p)| !taken[i] && port_mac(p).as_deref() == Some(mac.as_str())),
                None => existing.iter().enumerate().position(|(i, p)| {
                    !taken[i]
                        && port_mac(p).is_none_or(|m| m.bytes().all(|b| b == b'0'))
                        && p.get("name").and_then(Value::as_str) == Some(iface.name.as_str())
                }),
            };
            if let Some(i) = found {
                taken[i] = true;
            }
            found
        })
        .collect()
}

fn address(kind: &str, address: &str) -> Value {
    json!({ "type": kind, "address": address })
}

/// A port as blipp wants it: `existing` (or a new record with `id`) with
/// name, URN, `capacity` (the link speed in bytes per second, left out
/// when unknown), the MAC as its `address`, and under `properties` the MAC
/// and first IPv4/IPv6 addresses as the original wrote them plus every
/// address with its prefix.
pub fn port(existing: Option<&Value>, id: &str, iface: &Interface, urn: &str) -> Value {
    let mut p = existing.map_or_else(
        || json!({ "$schema": schema_uri("port"), "id": id }),
        without_server_fields,
    );
    p["name"] = json!(iface.name);
    p["urn"] = json!(urn);
    let obj = p.as_object_mut().expect("a port is an object");
    match iface.speed.bytes_per_second() {
        Some(bps) => {
            obj.insert("capacity".into(), json!(bps));
        }
        None => {
            obj.remove("capacity");
        }
    }
    let mac = real_mac(iface).and(iface.mac.clone());
    match &mac {
        Some(m) => {
            obj.insert("address".into(), address("mac", m));
        }
        None => {
            obj.remove("address");
        }
    }
    let props = object(&mut p, "properties");
    for key in ["mac", "ipv4", "ipv6", "addresses", "duplex"] {
        props.remove(key);
    }
    if let Some(m) = &mac {
        props.insert("mac".into(), address("mac", m));
    }
    if let Some((ip, _)) = iface.addresses.iter().find(|(a, _)| a.is_ipv4()) {
        props.insert("ipv4".into(), address("ipv4", &ip.to_string()));
    }
    if let Some((ip, _)) = iface.addresses.iter().find(|(a, _)| a.is_ipv6()) {
        props.insert("ipv6".into(), address("ipv6", &ip.to_string()));
    }
    let all: Vec<Value> = iface
        .addresses
        .iter()
        .map(|(ip, prefix)| {
            let kind = if ip.is_ipv4() { "ipv4" } else { "ipv6" };
            json!({ "type": kind, "address": ip.to_string(), "prefix": prefix })
        })
        .collect();
    props.insert("addresses".into(), Value::Array(all));
    if let LinkSpeed::Known {
        duplex: Some(d), ..
    } = iface.speed
    {
        props.insert("duplex".into(), json!(d));
    }
    p
}

/// The measurement of one probe: `existing` (or a new record with `id`)
/// with the service, the probe's configuration (as configured, with its
/// `name`) and its event types, and marked as blipp's in
/// `properties.blipp.probe` so that a later blipp tells its own from ones
/// others made.
pub fn measurement(
    existing: Option<&Value>,
    id: &str,
    service_href: &str,
    probe: &ProbeConfig,
    event_types: &BTreeSet<String>,
) -> Value {
    let mut m = existing.map_or_else(
        || json!({ "$schema": schema_uri("measurement"), "id": id }),
        without_put_only,
    );
    let mut configuration = probe.raw.clone();
    configuration["name"] = json!(probe.name);
    m["service"] = json!(service_href);
    m["configuration"] = configuration;
    m["eventTypes"] = json!(event_types);
    let props = object(&mut m, "properties");
    props.insert("blipp".into(), json!({ "probe": probe.name }));
    m
}

/// The probe a measurement belongs to, when blipp made it (or it names a
/// probe in its configuration).
pub fn measurement_probe(m: &Value) -> Option<&str> {
    m.pointer("/properties/blipp/probe")
        .or_else(|| m.pointer("/configuration/name"))
        .and_then(Value::as_str)
}

/// The configuration to run a measurement made by others with. Under
/// `builtins.scheduled` without `schedule_params.scheduled_times`, its
/// slots are the measurement's own `scheduled_times`, where the original
/// BLiPP read them; `None` while it has none (the original's arbiter
/// waited for them).
pub fn runnable_configuration(m: &Value) -> Option<Value> {
    let configuration = m.get("configuration")?;
    let scheduled = matches!(
        configuration
            .get("collection_schedule")
            .and_then(Value::as_str),
        Some("builtins.scheduled" | "scheduled")
    );
    if !scheduled
        || configuration
            .pointer("/schedule_params/scheduled_times")
            .is_some()
    {
        return Some(configuration.clone());
    }
    let slots = m.get("scheduled_times").filter(|s| !s.is_null())?;
    let mut c = configuration.clone();
    let params = object(&mut c, "schedule_params");
    params.insert("scheduled_times".into(), slots.clone());
    Some(c)
}

/// Whether the measurement's slots are its own `scheduled_times`: its
/// configuration follows them as they change.
pub fn runs_on_record_slots(m: &Value) -> bool {
    m.pointer("/configuration/schedule_params/scheduled_times")
        .is_none()
        && matches!(
            m.pointer("/configuration/collection_schedule")
                .and_then(Value::as_str),
            Some("builtins.scheduled" | "scheduled")
        )
}

/// The event types a measurement lists.
pub fn event_types(m: &Value) -> BTreeSet<String> {
    m.get("eventTypes")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|e| e.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// One metadata: what a series of data points is. Its `id` is the mid
/// under which the MS stores the points. The local subject name (`node`,
/// `port:eth0`, `disk:sda`, ...) is kept in `parameters.subject`, which is
/// how a thing without a UNIS resource of its own is told apart under the
/// node (metadata allows no other top-level field).
pub fn metadata(
    id: &str,
    subject_href: &str,
    event_type: &str,
    measurement_href: &str,
    subject: &str,
) -> Value {
    json!({
        "$schema": schema_uri("metadata"),
        "id": id,
        "subject": link(subject_href),
        "eventType": event_type,
        "parameters": {
            "datumSchema": schema_uri("datum"),
            "measurement": link(measurement_href),
            "subject": subject,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::{Duplex, Kernel, SpeedSource};
    use std::net::IpAddr;

    fn iface(name: &str, mac: Option<&str>, mbps: Option<u64>) -> Interface {
        Interface {
            name: name.into(),
            mac: mac.map(str::to_owned),
            addresses: vec![
                ("192.0.2.10".parse::<IpAddr>().unwrap(), 24),
                ("2001:db8::10".parse::<IpAddr>().unwrap(), 64),
            ],
            speed: mbps.map_or(LinkSpeed::Unknown, |mbps| LinkSpeed::Known {
                mbps,
                duplex: Some(Duplex::Full),
                via: SpeedSource::Netlink,
            }),
        }
    }

    #[test]
    fn ids_are_24_hex_and_differ() {
        let a = new_id();
        assert_eq!(a.len(), 24);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, new_id());
    }

    #[test]
    fn ports_match_by_mac_then_by_name() {
        let existing = vec![
            json!({"id": "a", "name": "old-name", "properties": {"mac": {"address": "02:00:00:00:00:01"}}}),
            json!({"id": "g", "name": "x", "properties": {"geni": {"mac_address": "02 00 00 00 00 02"}}}),
            json!({"id": "l", "name": "lo"}),
        ];
        let ifaces = [
            iface("eth0", Some("02:00:00:00:00:01"), Some(1000)),
            iface("eth1", Some("02:00:00:00:00:02"), None),
            iface("lo", Some("00:00:00:00:00:00"), None),
            iface("eth2", Some("02:00:00:00:00:03"), None),
        ];
        assert_eq!(
            match_ports(&existing, &ifaces),
            [Some(0), Some(1), Some(2), None]
        );
    }

    #[test]
    fn port_capacity_is_bytes_per_second_and_unknown_is_absent() {
        let p = port(
            None,
            "p1",
            &iface("eth0", Some("02:00:00:00:00:01"), Some(1000)),
            "urn:x:port=eth0",
        );
        assert_eq!(p["capacity"], 125_000_000);
        assert_eq!(
            p["address"],
            json!({"type": "mac", "address": "02:00:00:00:00:01"})
        );
        assert_eq!(p["properties"]["ipv4"]["address"], "192.0.2.10");
        assert_eq!(p["properties"]["ipv6"]["address"], "2001:db8::10");
        assert_eq!(p["properties"]["addresses"][0]["prefix"], 24);
        assert_eq!(p["properties"]["duplex"], "full");
        // The link went down: the old capacity is not kept.
        let stored =
            json!({"id": "p1", "ts": 5, "capacity": 125_000_000, "properties": {"geni": {"x": 1}}});
        let down = port(
            Some(&stored),
            "ignored",
            &iface("eth0", Some("02:00:00:00:00:01"), None),
            "u",
        );
        assert!(down.get("capacity").is_none() && down.get("ts").is_none());
        assert_eq!(down["id"], "p1");
        assert_eq!(
            down["properties"]["geni"]["x"], 1,
            "others' properties stay"
        );
        let lo = port(
            None,
            "l",
            &iface("lo", Some("00:00:00:00:00:00"), None),
            "u",
        );
        assert!(lo.get("address").is_none() && lo["properties"].get("mac").is_none());
    }

    #[test]
    fn node_keeps_what_others_wrote_and_adds_links_once() {
        let host = HostInfo {
            hostname: "h".into(),
            fqdn: "h.example.org".into(),
            kernel: Kernel {
                release: "6.1".into(),
                machine: "x86_64".into(),
            },
            os_release: None,
            cpu_model: None,
            cpus: 4,
            mem_total_kb: Some(1000),
            boot_time: None,
            numa_nodes: vec![0],
            interfaces: vec![],
            default_interface: None,
        };
        let stored = json!({"id": "n", "ts": 1, "name": "given", "ports": [{"href": "u/ports/a", "rel": "full"}],
            "properties": {"geni": {"k": 1}}});
        let n = node(
            Some(&stored),
            "ignored",
            &host,
            "urn:n",
            &["u/ports/a".into(), "u/ports/b".into()],
        );
        assert_eq!(n["name"], "given");
        assert_eq!(n["urn"], "urn:n");
        assert_eq!(n["ports"].as_array().unwrap().len(), 2);
        assert_eq!(n["properties"]["geni"]["k"], 1);
        assert_eq!(n["properties"]["system"]["cpus"], 4);
        assert!(
            n["properties"]["system"].get("os").is_none(),
            "unknown is left out"
        );
        assert!(differs(&stored, &n));
        let again = node(Some(&n), "ignored", &host, "urn:n", &["u/ports/b".into()]);
        assert!(!differs(&n, &again), "nothing new, nothing to write");
    }

    #[test]
    fn scheduled_measurements_run_on_their_own_scheduled_times() {
        let slots = json!([{"start": "2030-01-01T00:00:00Z", "end": "2030-01-01T01:00:00Z"}]);
        let m = json!({"id": "m", "configuration": {"probe_module": "mem",
            "collection_schedule": "builtins.scheduled", "schedule_params": {"every": 5}}});
        assert!(runs_on_record_slots(&m));
        assert_eq!(runnable_configuration(&m), None, "waits for its slots");
        let mut with = m.clone();
        with["scheduled_times"] = slots.clone();
        let c = runnable_configuration(&with).unwrap();
        assert_eq!(c["schedule_params"]["scheduled_times"], slots);
        assert_eq!(c["schedule_params"]["every"], 5);
        // Slots of its own, or another schedule: taken as they are.
        let own = json!({"configuration": {"collection_schedule": "scheduled",
            "schedule_params": {"every": 5, "scheduled_times": slots}}});
        assert!(!runs_on_record_slots(&own));
        assert_eq!(runnable_configuration(&own).unwrap(), own["configuration"]);
        let simple = json!({"configuration": {"probe_module": "mem"}});
        assert_eq!(
            runnable_configuration(&simple).unwrap(),
            simple["configuration"]
        );
    }

    #[test]
    fn metadata_has_no_extra_top_level_field() {
        let md = metadata("m", "u/nodes/n", "e", "u/measurements/x", "disk:sda");
        let keys: Vec<&str> = md.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["$schema", "eventType", "id", "parameters", "subject"]
        );
        assert_eq!(md["parameters"]["subject"], "disk:sda");
    }
}
