//! Per-interface traffic counters from /proc/net/dev, with the original
//! BLiPP's event types. The values are the kernel's cumulative counters, as
//! the original reported them.

use std::collections::HashMap;

use serde::Deserialize;

use super::{BuildContext, Built, Fallback, Getter, Probe, ProbeError, ProbeSpec};
use crate::config::ProbeConfig;
use crate::sample::{Name, Sample, Source, Timestamp, Value};
use crate::source::procfs::netdev::{self, NetDev};
use crate::source::read::KernelFile;

/// Registry row.
pub const SPEC: ProbeSpec = ProbeSpec {
    module: "net",
    summary: "per-interface bytes, packets, errors and drops in and out (/proc/net/dev)",
    fallback: Fallback::ProcOnly,
    build,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    /// Only these interfaces.
    interfaces: Option<Vec<String>>,
    /// The original's UNIS URL for port lookups; UNIS registration is the
    /// agent's job now, so it is accepted and unused.
    #[serde(rename = "unis_url")]
    _unis_url: Option<String>,
}

const QUANTITIES: [(&str, Getter<NetDev>); 6] = [
    ("utilization:bytes:in", |d| Some(d.rx_bytes)),
    ("utilization:bytes:out", |d| Some(d.tx_bytes)),
    ("ip:utilization:packets:in", |d| Some(d.rx_packets)),
    ("ip:utilization:packets:out", |d| Some(d.tx_packets)),
    ("ip:utilization:errors", |d| {
        Some(d.rx_errors.saturating_add(d.tx_errors))
    }),
    ("ip:utilization:drops", |d| {
        Some(d.rx_dropped.saturating_add(d.tx_dropped))
    }),
];

struct NetProbe {
    file: KernelFile,
    devs: Vec<NetDev>,
    only: Option<Vec<String>>,
    subjects: HashMap<String, Name>,
    types: [Name; QUANTITIES.len()],
}

fn build(config: &ProbeConfig, _ctx: &mut BuildContext<'_>) -> Result<Built, ProbeError> {
    let options: Options = config.options()?;
    Ok(Built {
        probe: Box::new(NetProbe {
            file: KernelFile::new(&config.proc_dir, "net/dev"),
            devs: Vec::new(),
            only: options.interfaces,
            subjects: HashMap::new(),
            types: QUANTITIES.map(|(q, _)| Name::from(format!("ps:tools:blipp:linux:network:{q}"))),
        }),
        source: Source::Proc,
    })
}

impl Probe for NetProbe {
    fn collect(&mut self, ts: Timestamp, out: &mut Vec<Sample>) -> Result<(), ProbeError> {
        let devs = &mut self.devs;
        self.file.parse(|text| netdev::parse_into(text, devs))?;
        for dev in &self.devs {
            if self
                .only
                .as_ref()
                .is_some_and(|only| !only.contains(&dev.name))
            {
                continue;
            }
            let subject = match self.subjects.get(&dev.name) {
                Some(s) => s.clone(),
                None => {
                    let s = Name::from(format!("port:{}", dev.name));
                    self.subjects.insert(dev.name.clone(), s.clone());
                    s
                }
            };
            for (event_type, (_, get)) in self.types.iter().zip(QUANTITIES) {
                if let Some(v) = get(dev) {
                    out.push(Sample::new(
                        ts,
                        &subject,
                        event_type,
                        Value::Int(v),
                        Source::Proc,
                    ));
                }
            }
        }
        Ok(())
    }
}
