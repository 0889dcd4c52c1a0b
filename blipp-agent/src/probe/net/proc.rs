//! The /proc variant: /proc/net/dev. The values are the kernel's
//! cumulative counters, as the original reported them.

use std::collections::HashMap;

use super::{Options, event_type};
use crate::config::ProbeConfig;
use crate::probe::{Getter, Probe, ProbeError};
use crate::sample::{Name, Sample, Source, Timestamp, Value};
use crate::source::procfs::netdev::{self, NetDev};
use crate::source::read::KernelFile;

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

/// The /proc variant as a probe.
pub(super) fn build(config: &ProbeConfig, options: &Options) -> Result<Box<dyn Probe>, ProbeError> {
    Ok(Box::new(NetProbe {
        file: KernelFile::new(&config.proc_dir, "net/dev"),
        devs: Vec::new(),
        only: options.interfaces.clone(),
        subjects: HashMap::new(),
        types: QUANTITIES.map(|(q, _)| event_type(q)),
    }))
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
