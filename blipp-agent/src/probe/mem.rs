//! Memory use in kB from /proc/meminfo, with the original BLiPP's event
//! types (free, used, buffer, cache, kernel) plus available, swap and dirty.

use serde::Deserialize;

use super::{BuildContext, Built, Fallback, Getter, Probe, ProbeError, ProbeSpec};
use crate::config::ProbeConfig;
use crate::sample::{Name, Sample, Source, Timestamp, Value};
use crate::source::procfs::meminfo::{self, Meminfo};
use crate::source::read::KernelFile;

/// Registry row.
pub const SPEC: ProbeSpec = ProbeSpec {
    module: "mem",
    summary: "memory free, used, buffers, cache, kernel, available, swap, dirty in kB (/proc/meminfo)",
    fallback: Fallback::ProcOnly,
    build,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {}

/// Each reported quantity: event type suffix and how to compute it.
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

struct MemProbe {
    file: KernelFile,
    node: Name,
    types: [Name; QUANTITIES.len()],
}

fn build(config: &ProbeConfig, ctx: &mut BuildContext<'_>) -> Result<Built, ProbeError> {
    let _: Options = config.options()?;
    Ok(Built {
        probe: Box::new(MemProbe {
            file: KernelFile::new(&config.proc_dir, "meminfo"),
            node: ctx.node.clone(),
            types: QUANTITIES
                .map(|(q, _)| Name::from(format!("ps:tools:blipp:linux:memory:utilization:{q}"))),
        }),
        source: Source::Proc,
    })
}

impl Probe for MemProbe {
    fn collect(&mut self, ts: Timestamp, out: &mut Vec<Sample>) -> Result<(), ProbeError> {
        let m = self.file.parse(meminfo::parse)?;
        for (event_type, (_, get)) in self.types.iter().zip(QUANTITIES) {
            if let Some(kb) = get(&m) {
                out.push(Sample::new(
                    ts,
                    &self.node,
                    event_type,
                    Value::Int(kb),
                    Source::Proc,
                ));
            }
        }
        Ok(())
    }
}
