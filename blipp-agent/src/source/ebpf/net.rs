//! User side of the network programs: per-interface packets and bytes
//! received, transmitted and dropped, and the TCP counters.

use std::collections::HashMap;

use aya::maps::{MapData, PerCpuArray};
use blipp_common::net::{MAX_NETDEVS, NetLayout, NetSlot, TCP_COUNTS, net_slot};

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

/// Packets and bytes since the program was attached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Packets.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
}

/// One per-CPU slot array, turned into per-interface totals.
///
/// A CPU's slot restarts from zero when another interface takes it over
/// (index collision), so totals are kept here by adding what each CPU's
/// slot gained since the last read.
struct Accumulator {
    map: PerCpuArray<MapData, NetSlot>,
    name: &'static str,
    /// Last values per (slot, CPU).
    last: HashMap<u32, Vec<NetSlot>>,
    totals: HashMap<u32, Traffic>,
}

impl Accumulator {
    fn new(kernel: &mut Kernel, name: &'static str) -> Result<Self, EbpfError> {
        Ok(Self {
            map: PerCpuArray::try_from(kernel.map(name)?).map_err(map_err(name))?,
            name,
            last: HashMap::new(),
            totals: HashMap::new(),
        })
    }

    /// Folds the current values of `slot` into the totals.
    fn update(&mut self, slot: u32) -> Result<(), EbpfError> {
        let values = self.map.get(&slot, 0).map_err(map_err(self.name))?;
        let last = self.last.entry(slot).or_default();
        last.resize(values.len(), NetSlot::default());
        for (now, before) in values.iter().zip(last.iter_mut()) {
            if now.ifindex != 0 {
                let (dp, db) = if now.ifindex == before.ifindex {
                    (
                        now.packets.wrapping_sub(before.packets),
                        now.bytes.wrapping_sub(before.bytes),
                    )
                } else {
                    (now.packets, now.bytes)
                };
                let t = self.totals.entry(now.ifindex).or_default();
                t.packets = t.packets.wrapping_add(dp);
                t.bytes = t.bytes.wrapping_add(db);
            }
            *before = *now;
        }
        Ok(())
    }

    fn total(&self, ifindex: u32) -> Traffic {
        self.totals.get(&ifindex).copied().unwrap_or_default()
    }
}

/// Per-interface totals of one interface.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InterfaceTotals {
    /// Received.
    pub rx: Traffic,
    /// Transmitted.
    pub tx: Traffic,
    /// Dropped by the kernel with this interface as the packet's device.
    pub drops: Traffic,
}

/// The per-interface programs' maps.
pub struct InterfaceMaps {
    rx: Accumulator,
    tx: Accumulator,
    drops: Accumulator,
    /// The attached programs.
    pub programs: Vec<ProgramHandle>,
}

impl InterfaceMaps {
    /// Attaches the receive, transmit and drop programs.
    pub fn attach(kernel: &mut Kernel) -> Result<Self, EbpfError> {
        let mut programs = Vec::new();
        for p in INTERFACE_PROGRAMS {
            programs.push(kernel.attach(p)?);
        }
        Ok(Self {
            rx: Accumulator::new(kernel, "NET_RX")?,
            tx: Accumulator::new(kernel, "NET_TX")?,
            drops: Accumulator::new(kernel, "NET_DROPS")?,
            programs,
        })
    }

    /// Reads the slots of `ifindexes`: three lookups per interface.
    pub fn refresh(&mut self, ifindexes: &[u32]) -> Result<(), EbpfError> {
        for &i in ifindexes {
            let slot = net_slot(i);
            self.rx.update(slot)?;
            self.tx.update(slot)?;
            self.drops.update(slot)?;
        }
        Ok(())
    }

    /// Totals of `ifindex` as of the last [`InterfaceMaps::refresh`].
    pub fn totals(&self, ifindex: u32) -> InterfaceTotals {
        InterfaceTotals {
            rx: self.rx.total(ifindex),
            tx: self.tx.total(ifindex),
            drops: self.drops.total(ifindex),
        }
    }

    /// Number of interface slots per CPU.
    pub const SLOTS: u32 = MAX_NETDEVS;
}

/// The TCP programs' counters.
pub struct TcpMaps {
    counters: PerCpuArray<MapData, u64>,
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
        Ok(Self {
            counters: PerCpuArray::try_from(kernel.map("TCP_COUNTERS")?)
                .map_err(map_err("TCP_COUNTERS"))?,
            programs,
        })
    }

    /// The counters, in [`TcpCount`](blipp_common::net::TcpCount) order.
    pub fn read(&self) -> Result<[u64; TCP_COUNTS as usize], EbpfError> {
        let mut out = [0; TCP_COUNTS as usize];
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
