//! Every parser survives arbitrary input: random bytes, kernel-looking token
//! soup, and real fixtures with random damage. A parser may refuse input
//! with an error; it must never panic, loop, or return a record that
//! contradicts its layout.

use proptest::prelude::*;

use super::{beancounters, diskstats, loadavg, meminfo, netdev, snmp, stat};
use crate::source::read::decode;

/// Runs every parser on `text`, reusing the output buffers as the probes do.
fn parse_all(
    text: &str,
    stats: &mut stat::Stat,
    disks: &mut Vec<diskstats::DiskStat>,
    devs: &mut Vec<netdev::NetDev>,
) {
    let _ = stat::parse_into(text, stats);
    let _ = loadavg::parse(text);
    let _ = meminfo::parse(text);
    let _ = beancounters::parse(text);
    let _ = snmp::parse(text);
    if diskstats::parse_into(text, disks).is_ok() {
        for d in disks.iter() {
            // Layouts are nested: a later field implies the earlier ones.
            assert!(d.flushes.is_none() || d.discards.is_some(), "{d:?}");
            assert!(d.discards.is_none() || d.io_ms.is_some(), "{d:?}");
            assert_eq!(d.flushes.is_some(), d.flush_ms.is_some(), "{d:?}");
        }
        assert!(disks.len() <= text.lines().count());
    }
    if netdev::parse_into(text, devs).is_ok() {
        assert!(devs.len() <= text.lines().count());
        assert!(
            devs.iter()
                .all(|d| !d.name.is_empty() && !d.name.contains(':'))
        );
    }
}

const FIXTURES: [&str; 24] = [
    include_str!("fixtures/original/stat"),
    include_str!("fixtures/original/meminfo"),
    include_str!("fixtures/original/user_beancounters"),
    include_str!("fixtures/original/net-dev"),
    include_str!("fixtures/original/net-snmp"),
    include_str!("fixtures/stat-2.4-4col"),
    include_str!("fixtures/stat-2.6.9-7col"),
    include_str!("fixtures/stat-2.6.18-8col"),
    include_str!("fixtures/stat-2.6.24-9col"),
    include_str!("fixtures/stat-6.18-10col"),
    include_str!("fixtures/meminfo-2.4"),
    include_str!("fixtures/meminfo-2.6.18"),
    include_str!("fixtures/meminfo-6.18"),
    include_str!("fixtures/netdev-2.6.18"),
    include_str!("fixtures/netdev-6.18"),
    include_str!("fixtures/snmp-2.6.9"),
    include_str!("fixtures/snmp-6.18"),
    include_str!("fixtures/diskstats-2.6.18"),
    include_str!("fixtures/diskstats-4.4"),
    include_str!("fixtures/diskstats-4.19"),
    include_str!("fixtures/diskstats-6.18"),
    include_str!("fixtures/diskstats-future"),
    include_str!("fixtures/loadavg"),
    "",
];

/// One random edit of a fixture: bytes replaced, inserted or cut.
fn damaged_fixture() -> impl Strategy<Value = Vec<u8>> {
    let edit = (
        any::<prop::sample::Index>(),
        0usize..40,
        prop::collection::vec(any::<u8>(), 0..40),
    );
    (0..FIXTURES.len(), prop::collection::vec(edit, 1..6)).prop_map(|(f, edits)| {
        let mut bytes = FIXTURES[f].as_bytes().to_vec();
        for (at, cut, insert) in edits {
            let start = if bytes.is_empty() {
                0
            } else {
                at.index(bytes.len())
            };
            let end = (start + cut).min(bytes.len());
            bytes.splice(start..end, insert);
        }
        bytes
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        parse_all(&decode(&bytes), &mut stat::Stat::default(), &mut Vec::new(), &mut Vec::new());
    }

    #[test]
    fn kernel_looking_token_soup(text in "([a-zA-Z_()]{0,12}[:|]? ?([0-9]{1,22} {1,3}|-1 |x ){0,24}\n){0,30}") {
        let (mut s, mut d, mut n) = Default::default();
        parse_all(&text, &mut s, &mut d, &mut n);
        // Twice: the reused buffers must not carry state that breaks parsing.
        parse_all(&text, &mut s, &mut d, &mut n);
    }

    #[test]
    fn damaged_fixtures(bytes in damaged_fixture()) {
        parse_all(&decode(&bytes), &mut stat::Stat::default(), &mut Vec::new(), &mut Vec::new());
    }
}

#[test]
fn every_fixture_parses_with_its_parser() {
    // The damage test is only meaningful if the undamaged inputs reach the
    // parsers' deep paths: each fixture parses cleanly with its own parser.
    let mut s = stat::Stat::default();
    let mut d = Vec::new();
    let mut n = Vec::new();
    for f in &FIXTURES[5..10] {
        stat::parse_into(f, &mut s).unwrap();
    }
    for f in &FIXTURES[10..13] {
        meminfo::parse(f).unwrap();
    }
    for f in &FIXTURES[13..15] {
        netdev::parse_into(f, &mut n).unwrap();
    }
    for f in &FIXTURES[15..17] {
        snmp::parse(f).unwrap();
    }
    for f in &FIXTURES[17..22] {
        diskstats::parse_into(f, &mut d).unwrap();
    }
    loadavg::parse(FIXTURES[22]).unwrap();
}
