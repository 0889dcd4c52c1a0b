//! Pressure stall information from `/proc/pressure/{cpu,memory,io}`
//! (Linux 4.20+, `CONFIG_PSI`): the share of time tasks waited for a
//! resource, which load averages and utilization do not tell apart from
//! plain busyness. `some` is time when at least one task stalled, `full`
//! time when every non-idle task did.
//!
//! The kernel's own averages are reported as fractions; `total` (µs
//! stalled since boot) goes through [`crate::counter`] and gives
//! `stalled`, the fraction of the probe's own interval.
//!
//! Not reported: cpu `full`. The kernel documents it as undefined at the
//! system level and prints zeros since 5.13 only to keep the file's
//! layout (Documentation/accounting/psi.rst): a sample of it would be a
//! zero nobody measured. Kernels built with `CONFIG_PSI_DEFAULT_DISABLED`
//! refuse the read with EOPNOTSUPP unless booted with `psi=1`; the probe
//! then does not start, and says so.

use std::io;

use serde::Deserialize;

use super::{BuildContext, Built, Fallback, Probe, ProbeError, ProbeSpec, Reach};
use crate::config::ProbeConfig;
use crate::counter::{Bound, Counter, Width};
use crate::sample::{Name, Sample, Source, Timestamp, Value};
use crate::source::procfs::pressure::{self, Stall};
use crate::source::read::{FileError, KernelFile};

/// Registry row.
pub const SPEC: ProbeSpec = ProbeSpec {
    module: "pressure",
    summary: "pressure stall information: some/full stalled fractions (10 s, 60 s, 300 s averages and per interval) and stalled µs for cpu, memory and io (/proc/pressure, Linux 4.20+)",
    fallback: Fallback::Only(Source::Proc),
    programs: &[],
    reach: Reach::NONE,
    build,
    options: crate::config::option_keys::<Options>,
};

/// Every pressure event type starts with this.
pub const PREFIX: &str = "ps:tools:blipp:linux:pressure:";

/// Stalled time advances at most with the clock; the slack covers the
/// jitter between the probe's timestamps and the kernel's reads.
const STALLED: Bound = Bound::new(1_050_000.0, 2_000_000);

/// Reads one of the kernel's running averages out of a line.
type Average = fn(&Stall) -> f64;

/// The kernel's running averages.
const AVERAGES: [(&str, Average); 3] = [
    ("avg10", |s| s.avg10),
    ("avg60", |s| s.avg60),
    ("avg300", |s| s.avg300),
];

#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Resource {
    Cpu,
    Memory,
    Io,
}

impl Resource {
    const ALL: [Resource; 3] = [Resource::Cpu, Resource::Memory, Resource::Io];

    fn name(self) -> &'static str {
        match self {
            Resource::Cpu => "cpu",
            Resource::Memory => "memory",
            Resource::Io => "io",
        }
    }

    /// The lines measured at the system level: `full` is not for cpu.
    fn kinds(self) -> &'static [&'static str] {
        match self {
            Resource::Cpu => &["some"],
            Resource::Memory | Resource::Io => &["some", "full"],
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    /// Only these resources (default: cpu, memory and io).
    resources: Option<Vec<Resource>>,
}

/// One line of one file: its event types and its counter.
struct Kind {
    full: bool,
    averages: [Name; AVERAGES.len()],
    total: Name,
    stalled: Name,
    counter: Counter,
}

struct Watched {
    file: KernelFile,
    kinds: Vec<Kind>,
}

struct PressureProbe {
    node: Name,
    files: Vec<Watched>,
    last_ts: Option<Timestamp>,
}

/// Says why a kernel with PSI compiled in refuses the read.
fn explain(e: FileError) -> FileError {
    match e {
        FileError::Read { path, source } if source.raw_os_error() == Some(libc::EOPNOTSUPP) => {
            FileError::Read {
                path,
                source: io::Error::new(
                    io::ErrorKind::Unsupported,
                    "pressure stall information is disabled on this kernel (EOPNOTSUPP): boot with psi=1",
                ),
            }
        }
        e => e,
    }
}

fn build(config: &ProbeConfig, ctx: &mut BuildContext<'_>) -> Result<Built, ProbeError> {
    let options: Options = config.options()?;
    let resources = options.resources.unwrap_or_else(|| Resource::ALL.to_vec());
    let mut files = Vec::new();
    for r in resources {
        let mut file = KernelFile::new(&config.proc_dir, &format!("pressure/{}", r.name()));
        // A kernel without PSI, or with PSI disabled, fails here rather
        // than at every collection.
        file.parse(pressure::parse).map_err(explain)?;
        let kinds = r
            .kinds()
            .iter()
            .map(|kind| {
                let name = |q: &str| Name::from(format!("{PREFIX}{}:{kind}:{q}", r.name()));
                Kind {
                    full: *kind == "full",
                    averages: AVERAGES.map(|(q, _)| name(q)),
                    total: name("total"),
                    stalled: name("stalled"),
                    counter: Counter::default(),
                }
            })
            .collect();
        files.push(Watched { file, kinds });
    }
    Ok(Built {
        probe: Box::new(PressureProbe {
            node: ctx.node.clone(),
            files,
            last_ts: None,
        }),
        source: Source::Proc,
    })
}

impl Probe for PressureProbe {
    fn collect(&mut self, ts: Timestamp, out: &mut Vec<Sample>) -> Result<(), ProbeError> {
        let seconds = self.last_ts.map(|last| ts.seconds_since(last));
        self.last_ts = Some(ts);
        let node = &self.node;
        let sample =
            |event_type: &Name, value| Sample::new(ts, node, event_type, value, Source::Proc);
        // One file that cannot be read does not stop the others; the first
        // error is returned after all were read.
        let mut failed = None;
        for w in &mut self.files {
            let read = w.file.parse(pressure::parse);
            for kind in &mut w.kinds {
                let stall = match &read {
                    Ok(p) if kind.full => p.full,
                    Ok(p) => p.some,
                    Err(_) => None,
                };
                let Some(stall) = stall else {
                    // Nothing read: the next reading starts afresh.
                    kind.counter.clear();
                    continue;
                };
                for (event_type, (_, get)) in kind.averages.iter().zip(AVERAGES) {
                    out.push(sample(event_type, Value::Float(get(&stall))));
                }
                let observed =
                    kind.counter
                        .observe(stall.total_us, Width::Bits64, STALLED, seconds);
                out.push(
                    sample(&kind.total, Value::Int(stall.total_us)).with_reset(observed.is_reset()),
                );
                if let (Some(us), Some(s)) = (observed.advance(), seconds.filter(|s| *s > 0.0)) {
                    // The kernel's clock and the probe's differ by a hair.
                    let fraction = (us as f64 / (s * 1e6)).min(1.0);
                    out.push(sample(&kind.stalled, Value::Float(fraction)));
                }
            }
            if let Err(e) = read {
                failed.get_or_insert(explain(e));
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

    const T0: Timestamp = Timestamp(1_700_000_000_000_000);

    /// The probe with `options`, built by [`testing`] on `proc_dir`.
    fn probe(proc_dir: &Path, options: &serde_json::Value) -> Result<Box<dyn Probe>, ProbeError> {
        testing::try_build("pressure", options, proc_dir).map(|built| built.probe)
    }

    /// A /proc with this host's pressure files of the `6.18` fixtures.
    fn proc_tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("pressure")).unwrap();
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/source/procfs/fixtures");
        for r in ["cpu", "memory", "io"] {
            std::fs::copy(
                fixtures.join(format!("pressure-{r}-6.18")),
                dir.path().join("pressure").join(r),
            )
            .unwrap();
        }
        dir
    }

    fn collect(p: &mut Box<dyn Probe>, ts: Timestamp) -> Vec<Sample> {
        let mut out = Vec::new();
        p.collect(ts, &mut out).unwrap();
        out
    }

    fn get<'a>(samples: &'a [Sample], suffix: &str) -> Option<&'a Sample> {
        samples
            .iter()
            .find(|s| s.event_type.strip_prefix(PREFIX) == Some(suffix))
    }

    fn float(samples: &[Sample], suffix: &str) -> Option<f64> {
        get(samples, suffix).map(|s| match s.value {
            Value::Float(v) => v,
            ref other => panic!("{other:?}"),
        })
    }

    #[test]
    fn fixture_tree() {
        let dir = proc_tree();
        let mut p = probe(dir.path(), &json!({})).unwrap();
        let s = collect(&mut p, T0);
        // cpu some, memory and io some and full: 4 samples each, no
        // `stalled` without an interval.
        assert_eq!(s.len(), 5 * 4, "{s:?}");
        assert!(s.iter().all(|s| &*s.subject == "node"));
        let avg = float(&s, "io:full:avg60").unwrap();
        assert!((avg - 0.0581).abs() < 1e-12, "{avg}");
        assert_eq!(
            get(&s, "cpu:some:total").map(|s| &s.value),
            Some(&Value::Int(4_212_154_503))
        );
        // The file has a cpu full line of zeros: not a measurement.
        assert!(s.iter().all(|s| !s.event_type.contains(":cpu:full:")));
        assert!(float(&s, "io:some:stalled").is_none());

        // 2 s later, io stalled 0.5 s more; memory's counter went back.
        std::fs::write(
            dir.path().join("pressure/io"),
            "some avg10=0.69 avg60=7.02 avg300=5.52 total=188623832\nfull avg10=0.59 avg60=5.81 avg300=4.49 total=87964628\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("pressure/memory"),
            "some avg10=0.00 avg60=1.25 avg300=0.93 total=43\nfull avg10=0.00 avg60=1.11 avg300=0.83 total=6778277\n",
        )
        .unwrap();
        let s = collect(&mut p, Timestamp(T0.0 + 2_000_000));
        assert_eq!(float(&s, "io:some:stalled"), Some(0.25));
        assert_eq!(float(&s, "io:full:stalled"), Some(0.0));
        assert!(get(&s, "memory:some:total").unwrap().reset);
        assert!(float(&s, "memory:some:stalled").is_none());
        assert!(!get(&s, "memory:full:total").unwrap().reset);
    }

    /// Before 5.13 the cpu file has only a `some` line.
    #[test]
    fn cpu_without_full_line() {
        let dir = proc_tree();
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("src/source/procfs/fixtures/pressure-cpu-4.20"),
            dir.path().join("pressure/cpu"),
        )
        .unwrap();
        let s = collect(
            &mut probe(dir.path(), &json!({"resources": ["cpu"]})).unwrap(),
            T0,
        );
        assert_eq!(s.len(), 4, "{s:?}");
        assert_eq!(float(&s, "cpu:some:avg10"), Some(0.125));
    }

    #[test]
    fn a_missing_file_stops_the_build_and_names_the_file() {
        let dir = proc_tree();
        std::fs::remove_file(dir.path().join("pressure/memory")).unwrap();
        let Err(e) = probe(dir.path(), &json!({})) else {
            panic!("built without /proc/pressure/memory")
        };
        assert!(e.to_string().contains("pressure/memory"), "{e}");
        assert!(probe(dir.path(), &json!({"resources": ["io"]})).is_ok());
    }

    #[test]
    fn disabled_psi_says_how_to_enable_it() {
        let e = explain(FileError::Read {
            path: "/proc/pressure/cpu".into(),
            source: io::Error::from_raw_os_error(libc::EOPNOTSUPP),
        });
        assert_eq!(
            e.to_string(),
            "reading /proc/pressure/cpu: pressure stall information is disabled on this kernel (EOPNOTSUPP): boot with psi=1"
        );
    }

    /// On this host, when it has PSI: stalled time does not go back and
    /// the fractions are fractions.
    #[test]
    fn this_host() {
        let mut p = match probe(Path::new("/proc"), &json!({})) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("skipped: this host has no pressure stall information: {e}");
                return;
            }
        };
        let first = collect(&mut p, Timestamp::now());
        std::thread::sleep(std::time::Duration::from_millis(200));
        let second = collect(&mut p, Timestamp::now());
        for s in first.iter().chain(&second) {
            if let Value::Float(v) = s.value {
                assert!((0.0..=1.0).contains(&v), "{s:?}");
            }
        }
        let total = |s: &[Sample]| match get(s, "cpu:some:total").map(|s| &s.value) {
            Some(Value::Int(v)) => *v,
            other => panic!("{other:?}"),
        };
        assert!(total(&second) >= total(&first));
        assert!(float(&second, "cpu:some:stalled").is_some());
    }
}
