//! User side of the network programs: per-interface packets and bytes
//! received, transmitted and dropped, and the TCP counters.

use std::collections::HashMap;

use aya::maps::{MapData, PerCpuArray};
use blipp_common::net::{NET_FLOWS, NetFlow, NetLayout, NetSlot, TCP_COUNTS, Traffic, net_slot};

use super::batch::{BatchReader, possible_cpus};
use super::btf::{Btf, BtfError};
use super::{EbpfError, Kernel, ProgramHandle};

/// The per-interface programs.
pub const INTERFACE_PROGRAMS: [&str; 3] = ["netif_receive_skb", "net_dev_xmit", "kfree_skb"];

/// The TCP programs.
pub const TCP_PROGRAMS: [&str; 5] = [
    "tcp_retransmit_skb",
    "tcp_retransmit_synack",
    "inet_sock_set_state",
    "tcp_send_reset",
    "tcp_receive_reset",
];

/// Reads the offsets the network programs need from the kernel's BTF;
/// `netns` is the inode of the agent's network namespace.
pub fn net_layout(btf: &Btf, netns: u32) -> Result<NetLayout, BtfError> {
    let skb = |m: &str| btf.member("sk_buff", &[m]).map(|m| m.offset);
    Ok(NetLayout {
        skb_len: skb("len")?,
        skb_dev: skb("dev")?,
        skb_head: skb("head")?,
        skb_data: skb("data")?,
        skb_mac_header: skb("mac_header")?,
        skb_cb: skb("cb")?,
        skb_network_header: skb("network_header")?,
        skb_protocol: skb("protocol")?,
        dev_ifindex: btf.member("net_device", &["ifindex"])?.offset,
        dev_net: btf.member("net_device", &["nd_net", "net"])?.offset,
        sk_net: btf
            .member("sock", &["__sk_common", "skc_net", "net"])?
            .offset,
        sk_protocol: btf.member("sock", &["sk_protocol"])?.offset,
        net_inum: btf.member("net", &["ns", "inum"])?.offset,
        netns,
        valid: 1,
    })
}

/// The inode number of the calling thread's network namespace (the
/// agent's: blippd never changes it).
pub fn own_netns() -> std::io::Result<u32> {
    use std::os::unix::fs::MetadataExt as _;
    Ok(std::fs::metadata("/proc/thread-self/ns/net")?.ino() as u32)
}

fn map_err(map: &'static str) -> impl Fn(aya::maps::MapError) -> EbpfError {
    move |e| EbpfError::Map {
        map,
        source: Box::new(e),
    }
}

/// Per-interface totals since the programs were attached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InterfaceTotals {
    /// Indexed by [`NetFlow`].
    flows: [Traffic; NET_FLOWS],
}

impl InterfaceTotals {
    /// Received.
    pub fn rx(&self) -> Traffic {
        self.flows[NetFlow::Rx as usize]
    }

    /// Transmitted.
    pub fn tx(&self) -> Traffic {
        self.flows[NetFlow::Tx as usize]
    }

    /// Dropped by the kernel with this interface as the packet's device.
    pub fn drops(&self) -> Traffic {
        self.flows[NetFlow::Drops as usize]
    }
}

/// The per-interface programs' per-CPU slot array, turned into
/// per-interface totals.
///
/// A CPU's slot restarts from zero when another interface takes it over
/// (index collision), so totals are kept here by adding what each CPU's
/// slot gained since the last read.
pub struct InterfaceMaps {
    map: PerCpuArray<MapData, NetSlot>,
    /// Runs of slots read in one call.
    batch: BatchReader,
    /// Possible CPUs: how many values a slot holds.
    cpus: usize,
    /// A run of slots as the kernel hands them out, and their indexes;
    /// reused.
    per_cpu: Vec<NetSlot>,
    keys: Vec<u32>,
    /// Last values per (slot, CPU).
    last: HashMap<u32, Vec<NetSlot>>,
    totals: HashMap<u32, InterfaceTotals>,
    /// The runs of slots the last refresh read; reused.
    runs: Vec<std::ops::RangeInclusive<u32>>,
    /// The attached programs.
    pub programs: Vec<ProgramHandle>,
}

const MAP: &str = "NET_INTERFACES";

/// Slots this far apart or closer are read in one run: reading the few
/// slots between costs less than another system call.
const RUN_GAP: u32 = 8;

/// The slots of `ifindexes` as ascending runs of nearby slots, into `out`.
fn slot_runs(ifindexes: &[u32], out: &mut Vec<std::ops::RangeInclusive<u32>>) {
    let mut slots: Vec<u32> = ifindexes.iter().map(|i| net_slot(*i)).collect();
    slots.sort_unstable();
    slots.dedup();
    out.clear();
    for slot in slots {
        match out.last_mut() {
            Some(run) if slot - *run.end() <= RUN_GAP => *run = *run.start()..=slot,
            _ => out.push(slot..=slot),
        }
    }
}

impl InterfaceMaps {
    /// Attaches the receive, transmit and drop programs.
    pub fn attach(kernel: &mut Kernel) -> Result<Self, EbpfError> {
        let mut programs = Vec::new();
        for p in INTERFACE_PROGRAMS {
            programs.push(kernel.attach(p)?);
        }
        let map = kernel.map(MAP)?;
        Ok(Self {
            batch: BatchReader::of(MAP, &map),
            map: PerCpuArray::try_from(map).map_err(map_err(MAP))?,
            cpus: possible_cpus()?,
            per_cpu: Vec::new(),
            keys: Vec::new(),
            last: HashMap::new(),
            totals: HashMap::new(),
            runs: Vec::new(),
            programs,
        })
    }

    /// Reads the slots of `ifindexes`: one lookup per run of nearby slots
    /// (interface indexes are mostly small and consecutive, so usually one
    /// in all).
    pub fn refresh(&mut self, ifindexes: &[u32]) -> Result<(), EbpfError> {
        slot_runs(ifindexes, &mut self.runs);
        let runs = std::mem::take(&mut self.runs);
        let result = runs.iter().try_for_each(|run| self.update(run.clone()));
        self.runs = runs;
        result
    }

    /// Folds the current values of slots `run` into the totals: one
    /// lookup for the run (one per slot where the kernel has no batches).
    fn update(&mut self, run: std::ops::RangeInclusive<u32>) -> Result<(), EbpfError> {
        let (start, len) = (*run.start(), run.clone().count());
        self.keys.resize(len, 0);
        self.per_cpu.resize(len * self.cpus, NetSlot::default());
        let mut per_cpu = std::mem::take(&mut self.per_cpu);
        let result = if self
            .batch
            .read_percpu(start, &mut self.keys, self.cpus, &mut per_cpu)
        {
            for (slot, values) in run.zip(per_cpu.chunks(self.cpus)) {
                self.fold(slot, values);
            }
            Ok(())
        } else {
            run.into_iter().try_for_each(|slot| {
                let values = self.map.get(&slot, 0).map_err(map_err(MAP))?;
                self.fold(slot, &values);
                Ok(())
            })
        };
        self.per_cpu = per_cpu;
        result
    }

    /// Folds what each CPU's copy of `slot` gained into the totals.
    fn fold(&mut self, slot: u32, values: &[NetSlot]) {
        let last = self.last.entry(slot).or_default();
        last.resize(values.len(), NetSlot::default());
        for (now, before) in values.iter().zip(last.iter_mut()) {
            if now.ifindex != 0 {
                let same = now.ifindex == before.ifindex;
                let t = self.totals.entry(now.ifindex).or_default();
                for (i, total) in t.flows.iter_mut().enumerate() {
                    let (n, b) = (now.flows[i], before.flows[i]);
                    let (dp, db) = if same {
                        (
                            n.packets.wrapping_sub(b.packets),
                            n.bytes.wrapping_sub(b.bytes),
                        )
                    } else {
                        (n.packets, n.bytes)
                    };
                    total.packets = total.packets.wrapping_add(dp);
                    total.bytes = total.bytes.wrapping_add(db);
                }
            }
            *before = *now;
        }
    }

    /// Totals of `ifindex` as of the last [`InterfaceMaps::refresh`].
    pub fn totals(&self, ifindex: u32) -> InterfaceTotals {
        self.totals.get(&ifindex).copied().unwrap_or_default()
    }
}

/// The TCP programs' counters.
pub struct TcpMaps {
    counters: PerCpuArray<MapData, u64>,
    /// The counters read all at once.
    batch: BatchReader,
    /// Possible CPUs: how many values a counter holds.
    cpus: usize,
    /// The counters as the kernel hands them out; reused.
    per_cpu: Vec<u64>,
    /// The attached programs.
    pub programs: Vec<ProgramHandle>,
}

impl TcpMaps {
    /// Attaches the TCP programs.
    pub fn attach(kernel: &mut Kernel) -> Result<Self, EbpfError> {
        let mut programs = Vec::new();
        for p in TCP_PROGRAMS {
            programs.push(kernel.attach(p)?);
        }
        let map = kernel.map("TCP_COUNTERS")?;
        let cpus = possible_cpus()?;
        Ok(Self {
            batch: BatchReader::of("TCP_COUNTERS", &map),
            counters: PerCpuArray::try_from(map).map_err(map_err("TCP_COUNTERS"))?,
            cpus,
            per_cpu: vec![0; TCP_COUNTS as usize * cpus],
            programs,
        })
    }

    /// The counters, in [`TcpCount`](blipp_common::net::TcpCount) order:
    /// one lookup for all (one per counter where the kernel has no
    /// batches).
    pub fn read(&mut self) -> Result<[u64; TCP_COUNTS as usize], EbpfError> {
        let mut out = [0; TCP_COUNTS as usize];
        let mut keys = [0; TCP_COUNTS as usize];
        if self
            .batch
            .read_percpu(0, &mut keys, self.cpus, &mut self.per_cpu)
        {
            for (total, values) in out.iter_mut().zip(self.per_cpu.chunks(self.cpus)) {
                *total = values.iter().fold(0u64, |a, v| a.wrapping_add(*v));
            }
            return Ok(out);
        }
        for (i, slot) in out.iter_mut().enumerate() {
            *slot = self
                .counters
                .get(&(i as u32), 0)
                .map_err(map_err("TCP_COUNTERS"))?
                .iter()
                .sum();
        }
        Ok(out)
    }
}

/// The index of interface `name`, if it exists.
pub fn ifindex(name: &str) -> Option<u32> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: a valid NUL-terminated string.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (i != 0).then_some(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearby_slots_are_read_in_one_run() {
        let mut runs = Vec::new();
        slot_runs(&[2, 1, 4, 3, 2], &mut runs);
        assert_eq!(runs, [1..=4]);
        // Far apart: separate runs; indexes past the table wrap onto slots.
        slot_runs(&[1, 40, 45, 300], &mut runs);
        assert_eq!(runs, [1..=1, 40..=45]);
        slot_runs(&[1, 9, 18], &mut runs);
        assert_eq!(runs, [1..=9, 18..=18]);
        slot_runs(&[], &mut runs);
        assert!(runs.is_empty());
    }
}
