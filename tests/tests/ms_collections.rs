//! Creating MS collections against the test server, which answers as the
//! real server does: a `GET /events?mids=` batch is 404 as a whole when any
//! mid has no collection, and a list `POST /events` creates its first
//! record only. blippd finds the new mids among many known ones with a
//! few halved lookups and creates exactly those, one request each: no 409
//! for a collection it could have known exists.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use blipp::unis::Endpoint;
use blipp::unis::ms::{Collection, Ms};
use blipp_tests::unis_server::UnisServer;
use serde_json::{Value, json};

fn server() -> Option<UnisServer> {
    blipp_tests::schema_checked_server("creating MS collections against the UNIS/MS test server")
}

/// `n` metadata records in UNIS; returns their ids and selfRefs.
fn metadata(server: &UnisServer, n: usize) -> Vec<(String, String)> {
    let client = server.client().unwrap();
    let body: Vec<Value> = (0..n)
        .map(|i| {
            json!({"subject": {"href": format!("{}/nodes/n1", server.url()), "rel": "full"},
                   "eventType": format!("ps:tools:blipp:test:{i}"),
                   "parameters": {"datumSchema": "http://unis.crest.iu.edu/schema/20151104/datum#",
                                  "measurement": {"href": format!("{}/measurements/m1", server.url()), "rel": "full"}}})
        })
        .collect();
    // One record per POST: the server keeps only the first of a list.
    body.iter()
        .map(|b| {
            let url = format!("{}/metadata", server.url());
            let text = server.block_on(async {
                client
                    .post(url)
                    .header("Content-Type", "application/perfsonar+json")
                    .header("Accept", "application/perfsonar+json")
                    .body(b.to_string())
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap()
            });
            let stored: Value = serde_json::from_str(&text).unwrap();
            (
                stored["id"].as_str().unwrap().to_owned(),
                stored["selfRef"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn count(server: &UnisServer, from: usize, method: &str) -> usize {
    server.requests()[from..]
        .iter()
        .filter(|r| r.method == method && r.target.starts_with("/events"))
        .count()
}

/// `new` mids without a collection among `n`: the lookups and creations an
/// `ensure` of all of them costs, checked against the bound.
fn ensure_with_new(n: usize, new: &[usize]) {
    let Some(server) = server() else { return };
    let meta = metadata(&server, n);
    let collections: Vec<Collection<'_>> = meta
        .iter()
        .map(|(mid, href)| Collection {
            mid,
            metadata_url: href,
            size: 1000,
            ttl: 1000,
            fresh: false,
        })
        .collect();
    let http = server.client().unwrap();
    let endpoint = || Endpoint::new(&server.url(), http.clone()).unwrap();
    // An earlier run of blippd created the others.
    let existing: Vec<Collection<'_>> = collections
        .iter()
        .enumerate()
        .filter(|(i, _)| !new.contains(i))
        .map(|(_, c)| c.clone())
        .collect();
    let waiting = server
        .block_on(Ms::new(endpoint()).ensure(&existing, &mut usize::MAX.clone(), far()))
        .unwrap();
    assert!(waiting.is_empty());
    assert_eq!(server.events().len(), n - new.len());

    // The restart: every mid is unknown to this process.
    let from = server.requests().len();
    let waiting = server
        .block_on(Ms::new(endpoint()).ensure(&collections, &mut usize::MAX.clone(), far()))
        .unwrap();
    assert!(waiting.is_empty());
    assert_eq!(server.events().len(), n, "every collection exists");
    let posts = count(&server, from, "POST");
    let gets = count(&server, from, "GET");
    assert_eq!(posts, new.len(), "one POST /events per new mid, no 409");
    let k = new.len().max(1) as f64;
    let bound = 1 + (2.0 * k * ((n as f64 / k).log2().ceil() + 1.0)) as usize;
    assert!(
        gets <= bound,
        "{gets} GET /events for {} new among {n} (bound {bound})",
        new.len()
    );
}

#[test]
fn one_new_collection_among_many_costs_a_few_lookups_and_one_post() {
    ensure_with_new(150, &[97]);
}

#[test]
fn several_new_collections_among_many() {
    ensure_with_new(150, &[0, 1, 77, 149]);
}

#[test]
fn nothing_new_costs_one_lookup() {
    ensure_with_new(150, &[]);
}

/// Collections whose metadata blippd just created need no lookup, and at
/// most the budget of them is created per call: the rest are returned to
/// wait.
#[test]
fn fresh_collections_are_created_without_lookups_within_the_budget() {
    let Some(server) = server() else { return };
    let meta = metadata(&server, 100);
    let collections: Vec<Collection<'_>> = meta
        .iter()
        .map(|(mid, href)| Collection {
            mid,
            metadata_url: href,
            size: 1000,
            ttl: 1000,
            fresh: true,
        })
        .collect();
    let http = server.client().unwrap();
    let mut ms = Ms::new(Endpoint::new(&server.url(), http).unwrap());
    let from = server.requests().len();
    let mut budget = 64;
    let waiting = server
        .block_on(ms.ensure(&collections, &mut budget, far()))
        .unwrap();
    assert_eq!((budget, waiting.len()), (0, 36));
    assert_eq!(count(&server, from, "GET"), 0, "no lookups");
    assert_eq!(count(&server, from, "POST"), 64);
    let mut budget = 64;
    let waiting = server
        .block_on(ms.ensure(&collections, &mut budget, far()))
        .unwrap();
    assert!(waiting.is_empty());
    assert_eq!(budget, 28);
    assert_eq!(server.events().len(), 100);
}

/// No deadline that matters in these tests.
fn far() -> std::time::Instant {
    std::time::Instant::now() + std::time::Duration::from_secs(3600)
}
