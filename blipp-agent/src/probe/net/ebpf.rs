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
//! whatever its source. So for each new port (and after its index changed)
//! the probe reads the programs' counts just before and just after /proc's;
//! where they agree nothing was counted between the reads, and /proc's
//! value minus the programs' is the anchor: the programs' count from there
//! on plus that difference has /proc's cumulative origin. (A port that is
//! never quiet over [`ANCHOR_TRIES`] collections is anchored on the count
//! read before, off by what passed in those microseconds.) Until then its
//! bytes and packets are not reported. A restart of blippd or of the probe,
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
    /// Collections that tried to anchor it.
    tries: u32,
}

/// Collections that try to anchor a counter in a quiet moment before it is
/// anchored anyway.
const ANCHOR_TRIES: u32 = 3;

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
    /// programs' count to it, and the tries so far.
    retrans_proc: Option<u64>,
    retrans_anchor: Option<[u64; 1]>,
    retrans_tries: u32,
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
        retrans_tries: 0,
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
                    tries: 0,
                });
                if port.seen != self.collection {
                    if port.seen == 0 || port.seen + 1 < self.collection {
                        // New, or back after an absence (maybe re-created
                        // with another index): look its index up again,
                        // and anchor again.
                        port.ifindex = ifindex(s.subject.strip_prefix("port:").unwrap_or_default());
                        port.anchor = None;
                        port.tries = 0;
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

/// One counter set's anchor to /proc's origin.
struct Anchoring<'a, const N: usize> {
    anchor: &'a mut Option<[u64; N]>,
    tries: &'a mut u32,
}

impl<const N: usize> Anchoring<'_, N> {
    /// The programs' `counts` carried to /proc's origin, or `None` while
    /// the anchor cannot be fixed. It is fixed from /proc's values
    /// `proc_now` and the programs' counts read just before them
    /// (`before`), when those equal `counts` (read just after: nothing was
    /// counted in between), or after [`ANCHOR_TRIES`] tries regardless.
    fn values(
        self,
        proc_now: [Option<u64>; N],
        before: Option<[u64; N]>,
        counts: [u64; N],
    ) -> Option<[u64; N]> {
        if self.anchor.is_none() {
            *self.tries += 1;
            let before = before?;
            if before != counts && *self.tries < ANCHOR_TRIES {
                return None;
            }
            let mut a = [0; N];
            for (slot, (p, c)) in a.iter_mut().zip(proc_now.iter().zip(before)) {
                *slot = p.as_ref()?.wrapping_sub(c);
            }
            *self.anchor = Some(a);
        }
        let a = (*self.anchor)?;
        let mut out = counts;
        for (v, off) in out.iter_mut().zip(a) {
            *v = v.wrapping_add(off);
        }
        Some(out)
    }
}

/// A port's counts in [`REPLACED`] order.
fn port_counts(maps: &InterfaceMaps, ifindex: u32) -> [u64; REPLACED.len()] {
    let t = maps.totals(ifindex);
    [t.rx().bytes, t.tx().bytes, t.rx().packets, t.tx().packets]
}

/// Retransmitted segments, SYN-ACKs included (as /proc's `RetransSegs`).
fn retrans_of(tcp: &[u64; TCP_COUNTS as usize]) -> u64 {
    tcp[TcpCount::RetransSegs as usize] + tcp[TcpCount::RetransSynacks as usize]
}

impl Probe for EbpfNetProbe {
    fn collect(&mut self, ts: Timestamp, out: &mut Vec<Sample>) -> Result<(), ProbeError> {
        let first = out.len();
        // The programs' counts just before /proc is read, only while some
        // counter is not anchored yet.
        self.ifindexes.clear();
        self.ifindexes.extend(
            self.ports
                .values()
                .filter(|p| p.anchor.is_none())
                .filter_map(|p| p.ifindex),
        );
        let mut before: HashMap<u32, [u64; REPLACED.len()]> = HashMap::new();
        if !self.ifindexes.is_empty() {
            self.interfaces.refresh(&self.ifindexes)?;
            for &i in &self.ifindexes {
                before.insert(i, port_counts(&self.interfaces, i));
            }
        }
        let retrans_before = match self.retrans_anchor {
            None => Some([retrans_of(&self.tcp.read()?)]),
            Some(_) => None,
        };
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
            let counts = port_counts(&self.interfaces, i);
            let anchoring = Anchoring {
                anchor: &mut port.anchor,
                tries: &mut port.tries,
            };
            match anchoring.values(port.proc_now, before.get(&i).copied(), counts) {
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
        let anchoring = Anchoring {
            anchor: &mut self.retrans_anchor,
            tries: &mut self.retrans_tries,
        };
        if let Some([v]) = anchoring.values([self.retrans_proc], retrans_before, [retrans_of(&tcp)])
        {
            out.push(Sample::new(
                ts,
                &self.node,
                &t.node[RETRANS],
                Value::Int(v),
                Source::Ebpf,
            ));
        }
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
    use super::{ANCHOR_TRIES, Anchoring};

    #[test]
    fn an_anchor_is_taken_in_a_quiet_moment_and_kept() {
        let (mut anchor, mut tries) = (None, 0);
        let mut at = |proc_now, before, counts| {
            Anchoring {
                anchor: &mut anchor,
                tries: &mut tries,
            }
            .values(proc_now, before, counts)
        };
        // No reading before /proc's (a port seen for the first time).
        assert_eq!(at([Some(1000), Some(7)], None, [10, 0]), None);
        // Something was counted between the reads: not yet.
        assert_eq!(at([Some(1000), Some(7)], Some([10, 0]), [50, 1]), None);
        // Quiet: /proc's value minus the programs'.
        assert_eq!(
            at([Some(1040), Some(8)], Some([50, 1]), [50, 1]),
            Some([1040, 8])
        );
        // /proc is not needed once anchored.
        assert_eq!(at([None, None], None, [65, 3]), Some([1055, 10]));
    }

    #[test]
    fn a_counter_never_quiet_is_anchored_on_the_count_read_before() {
        let (mut anchor, mut tries) = (None, 0);
        for _ in 1..ANCHOR_TRIES {
            let got = Anchoring {
                anchor: &mut anchor,
                tries: &mut tries,
            }
            .values([Some(100)], Some([5]), [6]);
            assert_eq!(got, None);
        }
        let got = Anchoring {
            anchor: &mut anchor,
            tries: &mut tries,
        }
        .values([Some(100)], Some([5]), [6]);
        assert_eq!(got, Some([101]));
        // Wrapping arithmetic near a 64-bit counter's end.
        let (mut near_end, mut t) = (None, 0);
        let got = Anchoring {
            anchor: &mut near_end,
            tries: &mut t,
        }
        .values([Some(u64::MAX)], Some([2]), [3]);
        assert_eq!(got, None);
        let got = Anchoring {
            anchor: &mut near_end,
            tries: &mut t,
        }
        .values([Some(u64::MAX)], Some([3]), [3]);
        assert_eq!(got, Some([u64::MAX]));
        let got = Anchoring {
            anchor: &mut near_end,
            tries: &mut t,
        }
        .values([None], None, [4]);
        assert_eq!(got, Some([0]));
    }
}
