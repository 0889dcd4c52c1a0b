//! Every parser survives arbitrary input: random bytes, kernel-looking token
//! soup, and real fixtures with random damage. A parser may refuse input
//! with an error; it must never panic, loop, or return a record that
//! contradicts its layout.
//!
//! [`PARSERS`] is the one list: a parser's row names it and the fixture
//! file names that are its input, so adding a parser is a row, and adding
//! a fixture is a file in `fixtures/` named after its parser.

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use proptest::prelude::*;

use super::{ParseError, beancounters, diskstats, loadavg, meminfo, netdev, numa, pid_status};
use super::{pressure, snmp, stat};
use crate::source::read::decode;

/// The output buffers the probes reuse from one read to the next.
#[derive(Default)]
struct Buffers {
    stat: stat::Stat,
    disks: Vec<diskstats::DiskStat>,
    devs: Vec<netdev::NetDev>,
}

/// One parser: the names of its fixtures (a file named `<name>` or
/// `<name>-<anything>`), and a run of it that also checks what a parsed
/// record must satisfy.
struct Parser {
    fixtures: &'static [&'static str],
    run: fn(&str, &mut Buffers) -> Result<(), ParseError>,
}

const PARSERS: &[Parser] = &[
    Parser {
        fixtures: &["stat"],
        run: |t, b| stat::parse_into(t, &mut b.stat),
    },
    Parser {
        fixtures: &["loadavg"],
        run: |t, _| loadavg::parse(t).map(drop),
    },
    Parser {
        fixtures: &["meminfo"],
        run: |t, _| meminfo::parse(t).map(drop),
    },
    Parser {
        fixtures: &["user_beancounters"],
        run: |t, _| beancounters::parse(t).map(drop),
    },
    Parser {
        fixtures: &["snmp", "net-snmp"],
        run: |t, _| snmp::parse(t).map(drop),
    },
    Parser {
        fixtures: &["pid_status"],
        run: |t, _| pid_status::parse(t).map(drop),
    },
    Parser {
        fixtures: &["node-meminfo"],
        run: |t, _| numa::parse_meminfo(t).map(drop),
    },
    Parser {
        fixtures: &["numastat"],
        run: |t, _| numa::parse_numastat(t).map(drop),
    },
    Parser {
        fixtures: &["pressure"],
        run: |t, _| pressure::parse(t).map(drop),
    },
    Parser {
        fixtures: &["diskstats"],
        run: |t, b| {
            diskstats::parse_into(t, &mut b.disks)?;
            for d in &b.disks {
                // Layouts are nested: a later field implies the earlier ones.
                assert!(d.flushes.is_none() || d.discards.is_some(), "{d:?}");
                assert!(d.discards.is_none() || d.io_ms.is_some(), "{d:?}");
                assert_eq!(d.flushes.is_some(), d.flush_ms.is_some(), "{d:?}");
            }
            assert!(b.disks.len() <= t.lines().count());
            Ok(())
        },
    },
    Parser {
        fixtures: &["netdev", "net-dev"],
        run: |t, b| {
            netdev::parse_into(t, &mut b.devs)?;
            assert!(b.devs.len() <= t.lines().count());
            assert!(
                b.devs
                    .iter()
                    .all(|d| !d.name.is_empty() && !d.name.contains(':'))
            );
            Ok(())
        },
    },
];

/// Runs every parser on `text`, reusing the output buffers as the probes do.
fn parse_all(text: &str, buffers: &mut Buffers) {
    for p in PARSERS {
        let _ = (p.run)(text, buffers);
    }
}

/// Whether the fixture file `name` is an input of `parser`.
fn is_fixture_of(parser: &Parser, name: &str) -> bool {
    parser.fixtures.iter().any(|f| {
        name == *f
            || name
                .strip_prefix(f)
                .is_some_and(|rest| rest.starts_with('-'))
    })
}

/// Every file under `fixtures/`, sorted, with its text.
static FIXTURES: LazyLock<Vec<(PathBuf, String)>> = LazyLock::new(|| {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/source/procfs/fixtures");
    let mut files = Vec::new();
    let mut dirs = vec![root];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("fixtures directory") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                let text = std::fs::read_to_string(&path).expect("a text fixture");
                files.push((path, text));
            }
        }
    }
    files.sort();
    files
});

fn file_name(path: &Path) -> &str {
    path.file_name()
        .and_then(|n| n.to_str())
        .expect("a UTF-8 name")
}

/// One random edit of a fixture (or of the empty file): bytes replaced,
/// inserted or cut.
fn damaged_fixture() -> impl Strategy<Value = Vec<u8>> {
    let edit = (
        any::<prop::sample::Index>(),
        0usize..40,
        prop::collection::vec(any::<u8>(), 0..40),
    );
    (0..=FIXTURES.len(), prop::collection::vec(edit, 1..6)).prop_map(|(f, edits)| {
        let mut bytes = FIXTURES
            .get(f)
            .map_or_else(Vec::new, |(_, text)| text.as_bytes().to_vec());
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
        parse_all(&decode(&bytes), &mut Buffers::default());
    }

    #[test]
    fn kernel_looking_token_soup(text in "([a-zA-Z_()]{0,12}[:|]? ?([0-9]{1,22} {1,3}|-1 |x ){0,24}\n){0,30}") {
        let mut buffers = Buffers::default();
        parse_all(&text, &mut buffers);
        // Twice: the reused buffers must not carry state that breaks parsing.
        parse_all(&text, &mut buffers);
    }

    #[test]
    fn damaged_fixtures(bytes in damaged_fixture()) {
        parse_all(&decode(&bytes), &mut Buffers::default());
    }
}

#[test]
fn every_fixture_parses_with_its_parser() {
    // The damage test is only meaningful if the undamaged inputs reach the
    // parsers' deep paths: each fixture parses cleanly with its own parser,
    // and a fixture no parser claims is a misnamed file.
    assert!(!FIXTURES.is_empty());
    let mut buffers = Buffers::default();
    for (path, text) in FIXTURES.iter() {
        let name = file_name(path);
        let parsers: Vec<&Parser> = PARSERS.iter().filter(|p| is_fixture_of(p, name)).collect();
        assert_eq!(
            parsers.len(),
            1,
            "{} is not one parser's fixture",
            path.display()
        );
        if let Err(e) = (parsers[0].run)(text, &mut buffers) {
            panic!("{}: {e}", path.display());
        }
    }
}

#[test]
fn fixture_names_select_their_parser() {
    let stat = &PARSERS[0];
    assert!(is_fixture_of(stat, "stat"));
    assert!(is_fixture_of(stat, "stat-2.4-4col"));
    assert!(!is_fixture_of(stat, "statm"));
    assert!(!is_fixture_of(stat, "net-stat"));
}
