//! blippd against the UNIS/MS test server over TLS with a client
//! certificate: accepted with the right one, refused without.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use blipp_tests::daemon::{Blippd, wait_for};
use blipp_tests::real_schemas;
use blipp_tests::tls::TlsMaterial;
use blipp_tests::unis_scenario::config;
use blipp_tests::unis_server::{Options, UnisServer};
use serde_json::json;

#[test]
fn tls_with_a_client_certificate() {
    let Some(schemas) = real_schemas("the TLS end-to-end test") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let tls = TlsMaterial::generate(dir.path()).unwrap();
    let server = UnisServer::start(Options {
        tls: Some(tls.clone()),
        schemas: Some(schemas),
        ..Options::default()
    })
    .unwrap();
    let with = |cert: &str, key: &str| {
        json!({"properties": {"configurations": {
            "use_ssl": true,
            "ssl_cert": tls.path(cert).display().to_string(),
            "ssl_key": tls.path(key).display().to_string(),
            "ssl_cafile": tls.path("ca.pem").display().to_string()
        }}})
    };
    // A certificate the server does not trust: blippd measures, but no
    // request gets through.
    let stranger_dir = dir.path().join("stranger");
    std::fs::create_dir(&stranger_dir).unwrap();
    let cfg = config(
        &stranger_dir,
        &server.url(),
        &with("stranger.pem", "stranger.key"),
    );
    let blippd = Blippd::start(&cfg, &[], &stranger_dir.join("run.log"));
    wait_for(
        30,
        "a failed TLS attempt",
        || blippd.log(),
        || blippd.log().contains("UNIS unreachable"),
    );
    blippd.stop();
    assert!(
        server.requests().is_empty(),
        "the server must refuse an untrusted client certificate"
    );

    let cfg = config(dir.path(), &server.url(), &with("client.pem", "client.key"));
    let blippd = Blippd::start(&cfg, &[], &dir.path().join("run.log"));
    wait_for(
        60,
        "data over TLS",
        || blippd.log(),
        || server.data().len() > 10,
    );
    blippd.stop();
    assert!(server.url().starts_with("https://"));
    assert_eq!(server.records("services").len(), 1);
    assert!(server.events().values().all(|e| {
        e.record["metadata_URL"]
            .as_str()
            .unwrap()
            .starts_with("https://")
    }));
}
