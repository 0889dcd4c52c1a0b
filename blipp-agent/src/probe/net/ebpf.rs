//! The eBPF variant: per-interface packets and bytes in and out counted by
//! the `netif_receive_skb` and `net_dev_xmit` programs, packets the kernel
//! dropped per interface (`kfree_skb`), and TCP retransmitted segments,
//! connections established and closed and resets (tcp and sock
//! tracepoints); everything else from the /proc variant.
//!
//! Every interface of the agent's network namespace is covered: the
//! programs see each packet the stack receives or hands to a driver. For
//! those interfaces the /proc variant's bytes and packets samples are
//! replaced by the programs' (same event types, `source: ebpf`, counting
//! anchored to /proc's), as is the node's `retrans`.
//!
//! Anchored: the programs count from when they were attached, /proc since
//! the interface (or the boot) began, and a series in the MS has one mid
//! whatever its source. So at the first collection of each port (and after
//! its index changed) the probe notes /proc's value beside the programs',
//! and reports the programs' count from there on plus that difference: the
//! same cumulative origin as /proc's. A restart of blippd or of the probe,
//! or a fallback to /proc and back, then continues the series instead of
//! starting it again near zero. The counters that /proc has no equal of
//! (kernel drops, TCP connections and resets) count from the attachment.
//! Errors and the drivers' own drop counters stay /proc's. Packets an XDP
//! program drops or redirects never reach the stack: only /proc's driver
//! counters see them.

use std::collections::HashMap;

use blipp_common::net::{TCP_COUNTS, TcpCount};

use super::{EventTypes, Options, event_type, proc};
use crate::config::ProbeConfig;
use crate::probe::{BuildContext, Probe, ProbeError};
use crate::sample::{Name, Sample, Source, Timestamp, Value};
use crate::source::ebpf::net::{InterfaceMaps, TcpMaps, ifindex};

/// Index of each replaced port quantity in [`super::PORT_QUANTITIES`].
const BYTES_IN: usize = 0;
const BYTES_OUT: usize = 1;
const PACKETS_IN: usize = 2;
const PACKETS_OUT: usize = 3;
/// Index of `tcp:utilization:retrans` in [`super::NODE_QUANTITIES`].
const RETRANS: usize = 2;

/// The TCP counters besides retransmits, with their event types.
const TCP_EVENTS: [(TcpCount, &str); 5] = [
    (TcpCount::EstablishedActive, "tcp:connections:active"),
    (TcpCount::EstablishedPassive, "tcp:connections:passive"),
    (TcpCount::Closed, "tcp:connections:closed"),
    (TcpCount::ResetsSent, "tcp:resets:out"),
    (TcpCount::ResetsReceived, "tcp:resets:in"),
];

/// The quantities the programs replace, in the order their totals are read.
const REPLACED: [usize; 4] = [BYTES_IN, BYTES_OUT, PACKETS_IN, PACKETS_OUT];

struct Port {
    subject: Name,
    ifindex: Option<u32>,
    seen: u64,
    /// /proc's values of [`REPLACED`] at this collection.
    proc_now: [Option<u64>; REPLACED.len()],
    /// /proc's value minus the programs' at the anchoring collection.
    anchor: Option<[u64; REPLACED.len()]>,
}

struct EbpfNetProbe {
    proc: Box<dyn Probe>,
    interfaces: InterfaceMaps,
    tcp: TcpMaps,
    types: EventTypes,
    kernel_drops: Name,
    tcp_types: [Name; TCP_EVENTS.len()],
    node: Name,
    ports: HashMap<Name, Port>,
    ifindexes: Vec<u32>,
    collection: u64,
    /// /proc's `retrans` at this collection, and the anchor of the
    /// programs' count to it.
    retrans_proc: Option<u64>,
    retrans_anchor: Option<u64>,
}

/// Attaches the programs; fails (and the caller falls back) when the
/// kernel does not allow it.
pub(super) fn build(
    config: &ProbeConfig,
    options: &Options,
    ctx: &mut BuildContext<'_>,
) -> Result<Box<dyn Probe>, ProbeError> {
    let kernel = ctx.kernel.get().map_err(ProbeError::EbpfUnavailable)?;
    let mut interfaces = InterfaceMaps::attach(kernel)?;
    let mut tcp = TcpMaps::attach(kernel)?;
    let mut programs = std::mem::take(&mut interfaces.programs);
    programs.append(&mut tcp.programs);
    ctx.costs.add_programs(programs, kernel.stats_enabled());
    Ok(Box::new(EbpfNetProbe {
        proc: proc::build(config, options, ctx),
        interfaces,
        tcp,
        types: EventTypes::new(),
        kernel_drops: event_type("ip:utilization:drops:kernel"),
        tcp_types: TCP_EVENTS.map(|(_, s)| event_type(s)),
        node: ctx.node.clone(),
        ports: HashMap::new(),
        ifindexes: Vec::new(),
        collection: 0,
        retrans_proc: None,
        retrans_anchor: None,
    }))
}

impl EbpfNetProbe {
    /// Notes the ports of the /proc samples from `first` on and drops the
    /// samples the programs replace.
    fn take_over(&mut self, out: &mut Vec<Sample>, first: usize) {
        let t = &self.types;
        let replaced = REPLACED.map(|i| &t.port[i]);
        self.retrans_proc = None;
        let mut keep = first;
        for i in first..out.len() {
            let s = &out[i];
            let drop = if s.subject.starts_with("port:") {
                let port = self.ports.entry(s.subject.clone()).or_insert_with(|| Port {
                    ifindex: None,
                    subject: s.subject.clone(),
                    seen: 0,
                    proc_now: [None; REPLACED.len()],
                    anchor: None,
                });
                if port.seen != self.collection {
                    if port.seen == 0 || port.seen + 1 < self.collection {
                        // New, or back after an absence (maybe re-created
                        // with another index): look its index up again,
                        // and anchor again.
                        port.ifindex = ifindex(s.subject.strip_prefix("port:").unwrap_or_default());
                        port.anchor = None;
                    }
                    port.proc_now = [None; REPLACED.len()];
                }
                port.seen = self.collection;
                let which = replaced.iter().position(|t| ***t == *s.event_type);
                if let (Some(q), Value::Int(v)) = (which, &s.value) {
                    port.proc_now[q] = Some(*v);
                }
                port.ifindex.is_some() && which.is_some()
            } else if *s.event_type == *t.node[RETRANS] {
                if let Value::Int(v) = s.value {
                    self.retrans_proc = Some(v);
                }
                true
            } else {
                false
            };
            if !drop {
                out.swap(keep, i);
                keep += 1;
            }
        }
        out.truncate(keep);
    }
}

/// `anchor` fixed from /proc's values and the programs' `counts` on first
/// use; the programs' counts carried to /proc's origin, or `None` while it
/// cannot be fixed (/proc gave no value this time).
fn anchored<const N: usize>(
    anchor: &mut Option<[u64; N]>,
    proc_now: [Option<u64>; N],
    counts: [u64; N],
) -> Option<[u64; N]> {
    if anchor.is_none() {
        let mut a = [0; N];
        for (slot, (p, c)) in a.iter_mut().zip(proc_now.iter().zip(counts)) {
            *slot = p.as_ref()?.wrapping_sub(c);
        }
        *anchor = Some(a);
    }
    let a = (*anchor)?;
    let mut out = counts;
    for (v, off) in out.iter_mut().zip(a) {
        *v = v.wrapping_add(off);
    }
    Some(out)
}

impl Probe for EbpfNetProbe {
    fn collect(&mut self, ts: Timestamp, out: &mut Vec<Sample>) -> Result<(), ProbeError> {
        let first = out.len();
        self.proc.collect(ts, out)?;
        self.collection += 1;
        let now = self.collection;
        self.ports.retain(|_, p| now - p.seen <= 64);
        self.take_over(out, first);
        self.ifindexes.clear();
        self.ifindexes.extend(
            self.ports
                .values()
                .filter(|p| p.seen == self.collection)
                .filter_map(|p| p.ifindex),
        );
        self.interfaces.refresh(&self.ifindexes)?;
        let t = &self.types;
        let collection = self.collection;
        for port in self.ports.values_mut().filter(|p| p.seen == collection) {
            let Some(i) = port.ifindex else { continue };
            let totals = self.interfaces.totals(i);
            let counts = [
                totals.rx().bytes,
                totals.tx().bytes,
                totals.rx().packets,
                totals.tx().packets,
            ];
            match anchored(&mut port.anchor, port.proc_now, counts) {
                Some(values) => {
                    for (q, v) in REPLACED.into_iter().zip(values) {
                        out.push(Sample::new(
                            ts,
                            &port.subject,
                            &t.port[q],
                            Value::Int(v),
                            Source::Ebpf,
                        ));
                    }
                }
                None => {
                    tracing::debug!(port = %port.subject, "no /proc counters to anchor the programs' to yet")
                }
            }
            out.push(Sample::new(
                ts,
                &port.subject,
                &self.kernel_drops,
                Value::Int(totals.drops().packets),
                Source::Ebpf,
            ));
        }
        let tcp: [u64; TCP_COUNTS as usize] = self.tcp.read()?;
        let retrans = tcp[TcpCount::RetransSegs as usize] + tcp[TcpCount::RetransSynacks as usize];
        let mut anchor = self.retrans_anchor.map(|a| [a]);
        if let Some([v]) = anchored(&mut anchor, [self.retrans_proc], [retrans]) {
            out.push(Sample::new(
                ts,
                &self.node,
                &t.node[RETRANS],
                Value::Int(v),
                Source::Ebpf,
            ));
        }
        self.retrans_anchor = anchor.map(|[a]| a);
        for ((which, _), et) in TCP_EVENTS.iter().zip(&self.tcp_types) {
            out.push(Sample::new(
                ts,
                &self.node,
                et,
                Value::Int(tcp[*which as usize]),
                Source::Ebpf,
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::anchored;

    #[test]
    fn counts_continue_from_procs_origin() {
        let mut anchor = None;
        assert_eq!(
            anchored(&mut anchor, [Some(1000), Some(7)], [10, 0]),
            Some([1000, 7])
        );
        // /proc is not needed once anchored.
        assert_eq!(
            anchored(&mut anchor, [None, None], [25, 3]),
            Some([1015, 10])
        );
        let mut unanchored: Option<[u64; 1]> = None;
        assert_eq!(anchored(&mut unanchored, [None], [5]), None);
        assert!(unanchored.is_none(), "tried again at the next collection");
        // Wrapping arithmetic: a 64-bit /proc counter near its end.
        let mut near_end = None;
        assert_eq!(
            anchored(&mut near_end, [Some(u64::MAX)], [2]),
            Some([u64::MAX])
        );
        assert_eq!(anchored(&mut near_end, [None], [3]), Some([0]));
    }
}
