//! The UNIS/MS test server on what blipp relies on beyond the recorded
//! transcript: list bodies, versions and `unique=true`, dotted-key and
//! list filters, PUT merges, schema validation of every body, many mids in
//! one `POST /data`, and TLS that requires a client certificate.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use blipp_tests::real_schemas;
use blipp_tests::tls::TlsMaterial;
use blipp_tests::unis_server::{Options, UnisServer, now_us};
use serde_json::{Value, json};

const PSJSON: &str = "application/perfsonar+json";

struct Client<'a> {
    server: &'a UnisServer,
    http: reqwest::Client,
}

impl Client<'_> {
    fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut b = self
            .http
            .request(
                method.parse().unwrap(),
                format!("{}{path}", self.server.url()),
            )
            .header("Accept", PSJSON);
        if let Some(body) = body {
            b = b.header("Content-Type", PSJSON).body(body.to_string());
        }
        self.server.block_on(async {
            let r = b.send().await.unwrap();
            let status = r.status().as_u16();
            let headers = r.headers().clone();
            let text = r.text().await.unwrap();
            let v = if text.is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).unwrap()
            };
            (status, headers, v)
        })
    }
}

fn server() -> Option<UnisServer> {
    blipp_tests::schema_checked_server("the UNIS/MS test server's schema checks")
}

fn client(server: &UnisServer) -> Client<'_> {
    Client {
        server,
        http: server.client().unwrap(),
    }
}

#[test]
fn list_bodies_versions_unique_and_filters() {
    let Some(server) = server() else { return };
    let c = client(&server);
    let ports = json!([
        {"id": "p1", "name": "eth0", "properties": {"mac": {"address": "02:00:00:00:00:01"}}},
        {"id": "p2", "name": "eth1", "properties": {"mac": {"address": "02:00:00:00:00:02"}}}
    ]);
    let (status, headers, body) = c.send("POST", "/ports", Some(&ports));
    assert_eq!(status, 201);
    assert!(
        headers.get("Location").is_none(),
        "a list answer has no Location"
    );
    let body = body.as_array().unwrap();
    assert_eq!(body.len(), 2);
    assert_eq!(body[1]["selfRef"], format!("{}/ports/p2", server.url()));
    assert!(body[0]["ts"].is_u64());

    // A list of one is answered with the bare record, as the real server
    // does (its answer is a list only when more than one record came back).
    let (status, headers, body) = c.send("POST", "/ports", Some(&json!([{"name": "eth2"}])));
    assert_eq!(status, 201);
    assert!(body.is_object(), "{body}");
    let generated = body["id"].as_str().unwrap();
    assert_eq!(generated.len(), 24);
    assert_eq!(
        headers["Location"].to_str().unwrap(),
        format!("{}/ports/{generated}", server.url())
    );

    // A second POST of p1 is a new version; queries list every version,
    // newest first, unless unique=true.
    let (status, _, _) = c.send(
        "POST",
        "/ports",
        Some(&json!({"id": "p1", "name": "eth0", "capacity": 1e9})),
    );
    assert_eq!(status, 201);
    let (_, headers, all) = c.send("GET", "/ports?name=eth0", None);
    assert_eq!(all.as_array().unwrap().len(), 2);
    assert_eq!(headers["X-Count"], "2");
    assert_eq!(all[0]["capacity"], 1e9, "newest first");
    let (_, _, unique) = c.send("GET", "/ports?name=eth0&unique=true", None);
    assert_eq!(unique.as_array().unwrap().len(), 1);
    assert_eq!(unique[0]["capacity"], 1e9);
    let (_, _, one) = c.send("GET", "/ports/p1", None);
    assert_eq!(one["capacity"], 1e9, "GET by id is the newest version");

    // Dotted keys and lists of values (MongoDB $in).
    let (_, _, by_mac) = c.send(
        "GET",
        "/ports?properties.mac.address=02:00:00:00:00:02,02:00:00:00:00:09&unique=true",
        None,
    );
    assert_eq!(by_mac.as_array().unwrap().len(), 1);
    assert_eq!(by_mac[0]["id"], "p2");
    let (_, _, by_ids) = c.send("GET", "/ports?id=p1,p2&unique=true", None);
    let mut ids: Vec<&str> = by_ids
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, ["p1", "p2"]);
    let (_, _, none) = c.send("GET", "/ports?name=nosuch", None);
    assert_eq!(none, json!([]));
}

#[test]
fn put_merges_top_level_keys_and_renews_ts() {
    let Some(server) = server() else { return };
    let c = client(&server);
    let service = json!({"id": "s1", "serviceType": "ps:tools:blipp", "name": "blipp", "ttl": 600,
        "status": "ON", "properties": {"configurations": {"probes": {}}}});
    let (_, _, created) = c.send("POST", "/services", Some(&service));
    // A PUT in the same µs could not renew ts visibly.
    let created_ts = created["ts"].as_u64().unwrap();
    while now_us() <= created_ts {
        std::hint::spin_loop();
    }
    let (status, headers, body) = c.send("PUT", "/services/s1", Some(&json!({"status": "OFF"})));
    assert_eq!(status, 204);
    assert!(body.is_null() && headers.get("Content-Type").is_none());
    let now = server.record("services", "s1").unwrap();
    assert_eq!(now["status"], "OFF");
    assert_eq!(now["ttl"], 600, "keys not in the body stay");
    assert!(now["ts"].as_u64() > created["ts"].as_u64(), "PUT renews ts");
    assert_eq!(
        server.versions("services").len(),
        1,
        "a PUT updates in place"
    );
    let (status, _, _) = c.send("PUT", "/services/nosuch", Some(&json!({"status": "OFF"})));
    assert_eq!(status, 404);
    let (status, _, _) = c.send("PUT", "/services/s1", Some(&json!({"id": "other"})));
    assert_eq!(status, 400);
    // The merged record must still be a valid service.
    let (status, _, _) = c.send("PUT", "/services/s1", Some(&json!({"ttl": "long"})));
    assert_eq!(status, 400);
}

#[test]
fn every_body_is_validated_with_the_real_schemas() {
    let Some(server) = server() else { return };
    let c = client(&server);
    let (status, _, body) = c.send("POST", "/measurements", Some(&json!({"eventTypes": []})));
    assert_eq!(status, 400);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("'configuration'"),
        "{body}"
    );
    // The real server cannot resolve measurement.json's scheduled_times
    // reference either: such a measurement is refused.
    let m = json!({"configuration": {}, "eventTypes": [], "scheduled_times": []});
    assert_eq!(c.send("POST", "/measurements", Some(&m)).0, 400);
    let m = json!({"configuration": {}, "eventTypes": ["e"]});
    assert_eq!(c.send("POST", "/measurements", Some(&m)).0, 201);
    let md = json!({"subject": {"href": "x", "rel": "full"}, "eventType": "e",
        "parameters": {"datumSchema": "d", "subject": "disk:sda"}});
    assert_eq!(
        c.send("POST", "/metadata", Some(&md)).0,
        201,
        "parameters take any key"
    );
    let md = json!({"subject": {"href": "x"}, "eventType": "e"});
    assert_eq!(
        c.send("POST", "/metadata", Some(&md)).0,
        400,
        "a link needs rel"
    );
    let node = json!({"name": "n", "ts": 1.5});
    assert_eq!(
        c.send("POST", "/nodes", Some(&node)).0,
        400,
        "ts is an integer"
    );
    // A list with one bad record stores nothing.
    let nodes = json!([{"id": "good", "name": "n"}, {"name": 5}]);
    assert_eq!(c.send("POST", "/nodes", Some(&nodes)).0, 400);
    assert!(server.records("nodes").is_empty());
    // application/json is answered with 500, as the real server does.
    let status = server.block_on(async {
        c.http
            .post(format!("{}/nodes", server.url()))
            .header("Content-Type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    });
    assert_eq!(status, 500);
}

#[test]
fn many_mids_per_post_and_events_of_several_mids() {
    let Some(server) = server() else { return };
    let c = client(&server);
    let mut mids = Vec::new();
    for et in ["a", "b"] {
        let md = json!({"subject": {"href": "x", "rel": "full"}, "eventType": et});
        let (_, _, body) = c.send("POST", "/metadata", Some(&md));
        mids.push(body["id"].as_str().unwrap().to_owned());
    }
    let both = mids.join(",");
    assert_eq!(c.send("GET", &format!("/events?mids={both}"), None).0, 404);
    let ev = json!({"metadata_URL": format!("{}/metadata/{}", server.url(), mids[0]),
        "collection_size": 1000, "ttl": 60});
    assert_eq!(c.send("POST", "/events", Some(&ev)).0, 201);
    assert_eq!(
        c.send("GET", &format!("/events?mids={both}"), None).0,
        404,
        "one is missing"
    );
    let ev1 = json!({"metadata_URL": format!("{}/metadata/{}", server.url(), mids[1]),
        "collection_size": 1000, "ttl": 60});
    assert_eq!(c.send("POST", "/events", Some(&ev1)).0, 201);
    let (status, _, stats) = c.send("GET", &format!("/events?mids={both}"), None);
    assert_eq!(status, 200);
    assert_eq!(stats.as_array().unwrap().len(), 2);
    let unknown = json!({"metadata_URL": format!("{}/metadata/nosuch", server.url()),
        "collection_size": 1, "ttl": 1});
    assert_eq!(
        c.send("POST", "/events", Some(&unknown)).0,
        409,
        "the real server wraps this failure in a 409"
    );
    assert!(!server.events().contains_key("nosuch"));

    let data = json!([
        {"mid": mids[0], "data": [{"ts": 1, "value": 1}, {"ts": 2, "value": 2.5}]},
        {"mid": mids[1], "data": [{"ts": 1, "value": "R"}]}
    ]);
    let (status, _, body) = c.send("POST", "/data", Some(&data));
    assert_eq!((status, body), (201, Value::Null));
    let stored = server.data();
    assert_eq!(stored[&mids[0]].len(), 2);
    assert_eq!(stored[&mids[1]][0]["value"], "R");
    let (_, _, later) = c.send("GET", &format!("/data/{}?ts=gt=1", mids[0]), None);
    assert_eq!(later, json!([{"ts": 2, "value": 2.5}]));
    let bad = json!([{"mid": mids[0], "data": [{"value": 1}]}]);
    assert_eq!(c.send("POST", "/data", Some(&bad)).0, 400);
    assert_eq!(
        server.data()[&mids[0]].len(),
        2,
        "nothing of a refused body is stored"
    );
}

#[test]
fn tls_requires_a_client_certificate_signed_by_its_ca() {
    let dir = tempfile::tempdir().unwrap();
    let material = TlsMaterial::generate(dir.path()).unwrap();
    let server = UnisServer::start(Options {
        tls: Some(material.clone()),
        schemas: real_schemas("the TLS test server's schema checks"),
        ..Options::default()
    })
    .unwrap();
    assert!(server.url().starts_with("https://127.0.0.1:"));
    let ca = reqwest::Certificate::from_pem(material.ca_cert.as_bytes()).unwrap();
    let build = |identity: Option<&blipp_tests::tls::Pem>| {
        let mut b = reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(ca.clone());
        if let Some(p) = identity {
            b = b.identity(
                reqwest::Identity::from_pem(format!("{}{}", p.cert, p.key).as_bytes()).unwrap(),
            );
        }
        b.build().unwrap()
    };
    let get = |client: reqwest::Client| {
        server.block_on(async {
            client
                .get(format!("{}/nodes", server.url()))
                .header("Accept", PSJSON)
                .send()
                .await
                .map(|r| r.status().as_u16())
        })
    };
    assert!(get(build(None)).is_err(), "no client certificate: refused");
    assert!(
        get(build(Some(&material.stranger))).is_err(),
        "another CA's certificate: refused"
    );
    assert_eq!(get(build(Some(&material.client))).unwrap(), 200);

    // The server's own GET of metadata_URL goes over TLS too.
    let c = Client {
        server: &server,
        http: build(Some(&material.client)),
    };
    let md = json!({"subject": {"href": "x", "rel": "full"}, "eventType": "e"});
    let (_, _, body) = c.send("POST", "/metadata", Some(&md));
    let ev = json!({"metadata_URL": body["selfRef"], "collection_size": 10, "ttl": 10});
    assert_eq!(c.send("POST", "/events", Some(&ev)).0, 201);
    assert_eq!(server.events().len(), 1);
}
