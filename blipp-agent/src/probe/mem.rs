//! Memory use in kB from /proc/meminfo, with the original BLiPP's event
//! types (free, used, buffer, cache, kernel) plus available, swap and dirty.
//!
//! Inside an OpenVZ container (`/proc/user_beancounters` exists) meminfo
//! describes the whole host, so blipp does what the original did: `free`
//! stays meminfo's (the container has no better notion of it), `used` is
//! the container's `physpages` held times the page size, `kernel` its
//! `kmemsize` held in kB, and the host-wide buffer and cache figures are
//! not reported. The quantities blipp added (available, swap, dirty) are
//! host-wide there too and are not reported either.

use serde::Deserialize;

use super::{BuildContext, Built, Fallback, Getter, Probe, ProbeError, ProbeSpec, Reach};
use crate::config::ProbeConfig;
use crate::sample::{Name, Sample, Source, Timestamp, Value};
use crate::source::procfs::beancounters::{self, Beancounters};
use crate::source::procfs::meminfo::{self, Meminfo};
use crate::source::read::KernelFile;

/// Registry row.
pub const SPEC: ProbeSpec = ProbeSpec {
    module: "mem",
    summary: "memory free, used, buffers, cache, kernel, available, swap, dirty in kB (/proc/meminfo; OpenVZ /proc/user_beancounters)",
    fallback: Fallback::Only(Source::Proc),
    programs: &[],
    reach: Reach::NONE,
    build,
    options: crate::config::option_keys::<Options>,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {}

/// Each reported quantity of a host (no beancounters): event type suffix
/// and how to compute it.
const QUANTITIES: [(&str, Getter<Meminfo>); 9] = [
    ("free", |m| m.free),
    ("used", |m| Some(m.total?.saturating_sub(m.free?))),
    ("buffer", |m| m.buffers),
    ("cache", |m| m.cached),
    ("kernel", |m| m.slab),
    ("available", |m| m.available),
    ("swap:used", |m| {
        Some(m.swap_total?.saturating_sub(m.swap_free?))
    }),
    ("swap:free", |m| m.swap_free),
    ("dirty", |m| m.dirty),
];
const FREE: usize = 0;
const USED: usize = 1;
const KERNEL: usize = 4;

/// The values of an OpenVZ container, by index into [`QUANTITIES`], as the
/// original computed them.
fn container(m: &Meminfo, b: &Beancounters, page_kb: u64) -> [(usize, Option<u64>); 3] {
    [
        (FREE, m.free),
        (
            USED,
            b.physpages
                .map(|pages| pages.saturating_mul(page_kb))
                .or_else(|| QUANTITIES[USED].1(m)),
        ),
        (KERNEL, b.kmemsize.map(|bytes| bytes / 1024)),
    ]
}

struct MemProbe {
    meminfo: KernelFile,
    /// Only OpenVZ kernels have the file, so its absence at start-up is
    /// final and costs no failed open on every collection.
    beancounters: Option<KernelFile>,
    /// The page size in kB, for `physpages`.
    page_kb: u64,
    /// A beancounters read error was already logged.
    warned: bool,
    node: Name,
    types: [Name; QUANTITIES.len()],
}

fn build(config: &ProbeConfig, ctx: &mut BuildContext<'_>) -> Result<Built, ProbeError> {
    let _: Options = config.options()?;
    Ok(Built {
        probe: Box::new(MemProbe {
            meminfo: KernelFile::new(&config.proc_dir, "meminfo"),
            beancounters: config
                .proc_dir
                .join("user_beancounters")
                .exists()
                .then(|| KernelFile::new(&config.proc_dir, "user_beancounters")),
            page_kb: crate::host::page_size() / 1024,
            warned: false,
            node: ctx.node.clone(),
            types: QUANTITIES
                .map(|(q, _)| Name::from(format!("ps:tools:blipp:linux:memory:utilization:{q}"))),
        }),
        source: Source::Proc,
    })
}

impl MemProbe {
    fn push(&self, ts: Timestamp, index: usize, kb: Option<u64>, out: &mut Vec<Sample>) {
        if let Some(kb) = kb {
            out.push(Sample::new(
                ts,
                &self.node,
                &self.types[index],
                Value::Int(kb),
                Source::Proc,
            ));
        }
    }
}

impl Probe for MemProbe {
    fn collect(&mut self, ts: Timestamp, out: &mut Vec<Sample>) -> Result<(), ProbeError> {
        let m = self.meminfo.parse(meminfo::parse)?;
        let read = self
            .beancounters
            .as_mut()
            .map(|f| f.parse_optional(beancounters::parse));
        let counters = match read.transpose() {
            Ok(b) => b.flatten(),
            // The original treated a file it could not open as absent; do
            // the same, but say so once (it is root-only on OpenVZ).
            Err(e) => {
                if !self.warned {
                    tracing::warn!(error = %e, "cannot read user_beancounters; reporting /proc/meminfo as is");
                    self.warned = true;
                }
                None
            }
        };
        match counters {
            Some(b) => {
                for (index, kb) in container(&m, &b, self.page_kb) {
                    self.push(ts, index, kb, out);
                }
            }
            None => {
                for (index, (_, get)) in QUANTITIES.iter().enumerate() {
                    self.push(ts, index, get(&m), out);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;
    use crate::probe::testing;

    const MEMINFO: &str = include_str!("../source/procfs/fixtures/original/meminfo");
    const BEANCOUNTERS: &str = include_str!("../source/procfs/fixtures/original/user_beancounters");

    fn by_type(samples: &[Sample]) -> BTreeMap<String, u64> {
        samples
            .iter()
            .map(|s| {
                assert_eq!(&*s.subject, "node");
                let Value::Int(v) = s.value else {
                    panic!("{s:?}")
                };
                (
                    s.event_type
                        .trim_start_matches("ps:tools:blipp:linux:memory:utilization:")
                        .to_owned(),
                    v,
                )
            })
            .collect()
    }

    /// The original BLiPP's test_mem.py, test_get_data2.
    #[test]
    fn original_blipp_vector_host() {
        let dir = tempfile::tempdir().unwrap();
        testing::write_tree(dir.path(), &[("meminfo", MEMINFO)]);
        let mut probe = testing::build("mem", &json!({}), dir.path());
        let got = by_type(&testing::collect(&mut *probe, 0.0));
        let want: BTreeMap<String, u64> = [
            ("free", 525_460),
            ("used", 7_602_504),
            ("buffer", 358_700),
            ("cache", 4_390_548),
            ("kernel", 401_292),
            // blipp's additions, from the same fixture.
            ("swap:used", 5_105_656 - 5_104_120),
            ("swap:free", 5_104_120),
            ("dirty", 96),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        assert_eq!(got, want, "no MemAvailable line: no available sample");
    }

    /// The original BLiPP's test_mem.py, test_get_data (OpenVZ).
    #[test]
    fn original_blipp_vector_openvz() {
        let dir = tempfile::tempdir().unwrap();
        testing::write_tree(
            dir.path(),
            &[("meminfo", MEMINFO), ("user_beancounters", BEANCOUNTERS)],
        );
        let mut probe = testing::build("mem", &json!({}), dir.path());
        let got = by_type(&testing::collect(&mut *probe, 0.0));
        // The original's page size was 4 kB: 1173286 pages = 4693144 kB.
        let page_kb = crate::host::page_size() / 1024;
        let want: BTreeMap<String, u64> = [
            ("free", 525_460),
            ("kernel", 60_474),
            ("used", 1_173_286 * page_kb),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        assert_eq!(got, want);
        if page_kb == 4 {
            assert_eq!(got["used"], 4_693_144);
        }
    }

    #[test]
    fn container_without_counters_keeps_meminfo_used() {
        let m = meminfo::parse(MEMINFO).unwrap();
        let got = container(&m, &Beancounters::default(), 4);
        assert_eq!(
            got,
            [
                (FREE, Some(525_460)),
                (USED, Some(7_602_504)),
                (KERNEL, None)
            ]
        );
    }

    #[test]
    fn kernels_without_optional_lines() {
        let dir = tempfile::tempdir().unwrap();
        testing::write_tree(
            dir.path(),
            &[(
                "meminfo",
                include_str!("../source/procfs/fixtures/meminfo-2.4"),
            )],
        );
        let mut probe = testing::build("mem", &json!({}), dir.path());
        let got = by_type(&testing::collect(&mut *probe, 0.0));
        let keys: Vec<&str> = got.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["buffer", "cache", "free", "swap:free", "swap:used", "used"],
            "2.4: no Slab, Dirty, MemAvailable"
        );
        assert_eq!(got["used"], 1_026_100 - 37_756);
    }
}
