//! Per-NUMA-node memory and allocation locality from
//! `/sys/devices/system/node`: each online node's `meminfo` (kB) and
//! `numastat` (pages allocated since boot: hits, misses, foreign,
//! interleave, local, other) — what counters tell about NUMA placement
//! without hardware performance counters.
//!
//! The online nodes are listed once when the probe starts (nodes come and
//! go only with memory hot-plug); each collection reads two small files
//! per node into reused buffers.

use serde::Deserialize;

use super::{BuildContext, Built, Fallback, Getter, Probe, ProbeError, ProbeSpec, Reach};
use crate::config::ProbeConfig;
use crate::sample::{Name, Sample, Source, Timestamp, Value};
use crate::source::procfs::ParseError;
use crate::source::procfs::numa::{self, NodeMeminfo, Numastat};
use crate::source::read::{FileError, KernelFile};
use crate::source::sysfs::id_list;

/// Registry row.
pub const SPEC: ProbeSpec = ProbeSpec {
    module: "numa",
    summary: "per-NUMA-node memory (kB) and numastat hit/miss/foreign/interleave/local/other page counters (/sys/devices/system/node)",
    fallback: Fallback::Only(Source::Proc),
    programs: &[],
    reach: Reach::NONE,
    build,
    options: crate::config::option_keys::<Options>,
};

/// Every NUMA event type starts with this.
pub const PREFIX: &str = "ps:tools:blipp:linux:numa:";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    /// Only these nodes (default: every online node).
    nodes: Option<Vec<u32>>,
}

const MEMORY: [(&str, Getter<NodeMeminfo>); 7] = [
    ("memory:total", |m| m.total),
    ("memory:free", |m| m.free),
    ("memory:used", |m| m.used),
    ("memory:cache", |m| m.file_pages),
    ("memory:anon", |m| m.anon_pages),
    ("memory:slab", |m| m.slab),
    ("memory:dirty", |m| m.dirty),
];

const NUMASTAT: [(&str, Getter<Numastat>); 6] = [
    ("pages:hit", |n| n.numa_hit),
    ("pages:miss", |n| n.numa_miss),
    ("pages:foreign", |n| n.numa_foreign),
    ("pages:interleave_hit", |n| n.interleave_hit),
    ("pages:local", |n| n.local_node),
    ("pages:other", |n| n.other_node),
];

struct Node {
    subject: Name,
    meminfo: KernelFile,
    numastat: KernelFile,
}

struct NumaProbe {
    nodes: Vec<Node>,
    memory: [Name; MEMORY.len()],
    numastat: [Name; NUMASTAT.len()],
}

fn build(config: &ProbeConfig, _ctx: &mut BuildContext<'_>) -> Result<Built, ProbeError> {
    let options: Options = config.options()?;
    let mut online = KernelFile::new(&config.sys_dir, "devices/system/node/online");
    let mut ids = online.parse(|text| {
        id_list(text).ok_or(ParseError::Missing {
            file: "node/online",
            what: "a node list",
        })
    })?;
    if let Some(only) = &options.nodes {
        ids.retain(|id| only.contains(id));
    }
    let nodes = ids
        .into_iter()
        .map(|id| {
            let dir = format!("devices/system/node/node{id}");
            Node {
                subject: Name::from(format!("numa:{id}")),
                meminfo: KernelFile::new(&config.sys_dir, &format!("{dir}/meminfo")),
                numastat: KernelFile::new(&config.sys_dir, &format!("{dir}/numastat")),
            }
        })
        .collect();
    let name = |suffix: &str| Name::from(format!("{PREFIX}{suffix}"));
    Ok(Built {
        probe: Box::new(NumaProbe {
            nodes,
            memory: MEMORY.map(|(s, _)| name(s)),
            numastat: NUMASTAT.map(|(s, _)| name(s)),
        }),
        source: Source::Proc,
    })
}

impl Probe for NumaProbe {
    fn collect(&mut self, ts: Timestamp, out: &mut Vec<Sample>) -> Result<(), ProbeError> {
        // One node that cannot be read (taken offline) does not stop the
        // others; the first such error is returned after all were read.
        let mut failed: Option<FileError> = None;
        for node in &mut self.nodes {
            match node.meminfo.parse(numa::parse_meminfo) {
                Ok(m) => {
                    for (event_type, (_, get)) in self.memory.iter().zip(MEMORY) {
                        if let Some(kb) = get(&m) {
                            out.push(Sample::new(
                                ts,
                                &node.subject,
                                event_type,
                                Value::Int(kb),
                                Source::Proc,
                            ));
                        }
                    }
                }
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
            match node.numastat.parse(numa::parse_numastat) {
                Ok(n) => {
                    for (event_type, (_, get)) in self.numastat.iter().zip(NUMASTAT) {
                        if let Some(pages) = get(&n) {
                            out.push(Sample::new(
                                ts,
                                &node.subject,
                                event_type,
                                Value::Int(pages),
                                Source::Proc,
                            ));
                        }
                    }
                }
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
        }
        failed.map_or(Ok(()), |e| Err(e.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::testing;
    use serde_json::json;
    use std::path::Path;

    /// The probe with `options`, built by [`testing`] on `sys_dir`.
    fn probe(sys_dir: &Path, options: &serde_json::Value) -> Result<Box<dyn Probe>, ProbeError> {
        testing::try_build_sys("numa", options, sys_dir).map(|built| built.probe)
    }

    fn collect(p: &mut Box<dyn Probe>) -> Vec<Sample> {
        let mut out = Vec::new();
        p.collect(Timestamp(1_700_000_000_000_000), &mut out)
            .unwrap();
        out
    }

    fn get(samples: &[Sample], subject: &str, suffix: &str) -> Option<u64> {
        samples
            .iter()
            .find(|s| &*s.subject == subject && s.event_type.strip_prefix(PREFIX) == Some(suffix))
            .map(|s| match s.value {
                Value::Int(v) => v,
                ref other => panic!("{other:?}"),
            })
    }

    fn fixtures() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("src/probe/numa/fixtures/sys")
    }

    /// Two online nodes of four possible; node 3's files exist but it is
    /// offline, so it is not read.
    #[test]
    fn two_node_fixture() {
        let s = collect(&mut probe(&fixtures(), &json!({})).unwrap());
        assert_eq!(get(&s, "numa:0", "memory:total"), Some(65_842_908));
        assert_eq!(get(&s, "numa:0", "memory:free"), Some(50_331_648));
        assert_eq!(get(&s, "numa:0", "memory:used"), Some(15_511_260));
        assert_eq!(get(&s, "numa:0", "memory:cache"), Some(9_437_184));
        assert_eq!(get(&s, "numa:0", "memory:anon"), Some(4_194_304));
        assert_eq!(get(&s, "numa:0", "memory:slab"), Some(782_480));
        assert_eq!(get(&s, "numa:0", "memory:dirty"), Some(1_024));
        assert_eq!(get(&s, "numa:0", "pages:hit"), Some(938_789_556));
        assert_eq!(get(&s, "numa:0", "pages:miss"), Some(0));
        assert_eq!(get(&s, "numa:0", "pages:foreign"), Some(1_234_567));
        assert_eq!(get(&s, "numa:0", "pages:interleave_hit"), Some(1136));
        assert_eq!(get(&s, "numa:0", "pages:local"), Some(938_700_000));
        assert_eq!(get(&s, "numa:0", "pages:other"), Some(89_556));
        assert_eq!(get(&s, "numa:1", "memory:total"), Some(66_060_288));
        assert_eq!(get(&s, "numa:1", "pages:miss"), Some(1_234_567));
        assert_eq!(get(&s, "numa:1", "pages:foreign"), Some(0));
        assert!(s.iter().all(|s| &*s.subject != "numa:3"));
        assert_eq!(s.len(), 2 * (MEMORY.len() + NUMASTAT.len()));

        let s = collect(&mut probe(&fixtures(), &json!({"nodes": [1]})).unwrap());
        assert!(s.iter().all(|s| &*s.subject == "numa:1"), "{s:?}");
    }

    #[test]
    fn no_numa_directory_is_a_build_error() {
        let dir = tempfile::tempdir().unwrap();
        let Err(e) = probe(dir.path(), &json!({})) else {
            panic!("built without a node list")
        };
        assert!(e.to_string().contains("node/online"), "{e}");
    }

    /// On this host: every online node reports, and its allocation
    /// counters do not go back between two reads.
    #[test]
    fn this_host() {
        let mut p = probe(Path::new("/sys"), &json!({})).unwrap();
        let online = std::fs::read_to_string("/sys/devices/system/node/online").unwrap();
        let nodes = id_list(&online).unwrap();
        let first = collect(&mut p);
        let second = collect(&mut p);
        for n in nodes {
            let subject = format!("numa:{n}");
            let total = get(&first, &subject, "memory:total").unwrap();
            let free = get(&first, &subject, "memory:free").unwrap();
            assert!(total > 0 && free <= total, "{total} {free}");
            let hit0 = get(&first, &subject, "pages:hit").unwrap();
            let hit1 = get(&second, &subject, "pages:hit").unwrap();
            assert!(hit1 >= hit0, "{hit0} -> {hit1}");
        }
    }
}
