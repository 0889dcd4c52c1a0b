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
//! from when the programs were attached), as is the node's `retrans`.
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

struct Port {
    subject: Name,
    ifindex: Option<u32>,
    seen: u64,
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
    }))
}

impl EbpfNetProbe {
    /// Notes the ports of the /proc samples from `first` on and drops the
    /// samples the programs replace.
    fn take_over(&mut self, out: &mut Vec<Sample>, first: usize) {
        let t = &self.types;
        let replaced = [BYTES_IN, BYTES_OUT, PACKETS_IN, PACKETS_OUT].map(|i| &t.port[i]);
        let mut keep = first;
        for i in first..out.len() {
            let s = &out[i];
            let drop = if s.subject.starts_with("port:") {
                let port = self.ports.entry(s.subject.clone()).or_insert_with(|| Port {
                    ifindex: None,
                    subject: s.subject.clone(),
                    seen: 0,
                });
                if port.seen == 0 || port.seen + 1 < self.collection {
                    // New, or back after an absence (maybe re-created with
                    // another index): look its index up again.
                    port.ifindex = ifindex(s.subject.strip_prefix("port:").unwrap_or_default());
                }
                port.seen = self.collection;
                port.ifindex.is_some() && replaced.iter().any(|t| ***t == *s.event_type)
            } else {
                *s.event_type == *t.node[RETRANS]
            };
            if !drop {
                out.swap(keep, i);
                keep += 1;
            }
        }
        out.truncate(keep);
    }
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
        for port in self.ports.values().filter(|p| p.seen == self.collection) {
            let Some(i) = port.ifindex else { continue };
            let totals = self.interfaces.totals(i);
            for (q, v) in [
                (BYTES_IN, totals.rx().bytes),
                (BYTES_OUT, totals.tx().bytes),
                (PACKETS_IN, totals.rx().packets),
                (PACKETS_OUT, totals.tx().packets),
            ] {
                out.push(Sample::new(
                    ts,
                    &port.subject,
                    &t.port[q],
                    Value::Int(v),
                    Source::Ebpf,
                ));
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
        out.push(Sample::new(
            ts,
            &self.node,
            &t.node[RETRANS],
            Value::Int(retrans),
            Source::Ebpf,
        ));
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
