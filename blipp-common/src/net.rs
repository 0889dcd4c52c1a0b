//! Network counters: per interface, and TCP events.

/// Interfaces kept apart per CPU (a power of two): the slot of an
/// interface is its index modulo this, tagged with the index, so two
/// interfaces share a slot only when their indices collide; the newer one
/// then takes the slot over on that CPU, and the agent notices the tag
/// change.
pub const MAX_NETDEVS: u32 = 256;

/// Packets and bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Packets (socket buffers, as drivers count them).
    pub packets: u64,
    /// Bytes, link-layer header included.
    pub bytes: u64,
}

impl Traffic {
    /// Nothing counted.
    pub const ZERO: Traffic = Traffic {
        packets: 0,
        bytes: 0,
    };
}

/// The directions an interface's traffic is counted in, as indices of
/// [`NetSlot::flows`]. Each has its own program, which adds to its own
/// flow only: programs that nest on one CPU (a softirq's receive inside a
/// task's drop) never add to the same counter.
#[repr(usize)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetFlow {
    /// Received (`netif_receive_skb`).
    Rx = 0,
    /// Transmitted (`net_dev_xmit`).
    Tx = 1,
    /// Dropped with the interface as the packet's device (`kfree_skb`).
    Drops = 2,
}

/// Number of [`NetFlow`]s.
pub const NET_FLOWS: usize = 3;

/// One interface's traffic in every direction, on one CPU: one slot, so
/// that the agent reads an interface with one lookup.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetSlot {
    /// The interface index that owns the slot (0: none yet).
    pub ifindex: u32,
    /// Padding, always 0.
    pub pad: u32,
    /// Indexed by [`NetFlow`].
    pub flows: [Traffic; NET_FLOWS],
}

#[cfg(feature = "user")]
// SAFETY: plain `repr(C)` integers, no padding.
unsafe impl aya::Pod for NetSlot {}

/// The slot of interface `ifindex`.
#[inline(always)]
pub fn net_slot(ifindex: u32) -> u32 {
    ifindex & (MAX_NETDEVS - 1)
}

/// Indices of the host-wide TCP counters (a per-CPU array).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpCount {
    /// Data segments retransmitted; with [`TcpCount::RetransSynacks`],
    /// /proc/net/snmp's `RetransSegs`.
    RetransSegs = 0,
    /// SYN-ACKs retransmitted (a separate slot: one writer per slot).
    RetransSynacks = 1,
    /// Connections established by this host (`SYN_SENT -> ESTABLISHED`).
    EstablishedActive = 2,
    /// Connections accepted by this host (`SYN_RECV -> ESTABLISHED`).
    EstablishedPassive = 3,
    /// Sockets that reached `CLOSE` from an established or closing state.
    Closed = 4,
    /// Resets sent.
    ResetsSent = 5,
    /// Resets received.
    ResetsReceived = 6,
}

/// Number of [`TcpCount`] slots.
pub const TCP_COUNTS: u32 = 7;

impl TcpCount {
    /// Every counter, in index order.
    pub const ALL: [TcpCount; TCP_COUNTS as usize] = [
        TcpCount::RetransSegs,
        TcpCount::RetransSynacks,
        TcpCount::EstablishedActive,
        TcpCount::EstablishedPassive,
        TcpCount::Closed,
        TcpCount::ResetsSent,
        TcpCount::ResetsReceived,
    ];
}

/// `TCP_ESTABLISHED` and friends (include/net/tcp_states.h, stable).
pub mod tcp_state {
    /// Established.
    pub const ESTABLISHED: u32 = 1;
    /// SYN sent (active open).
    pub const SYN_SENT: u32 = 2;
    /// SYN received (passive open).
    pub const SYN_RECV: u32 = 3;
    /// Closed.
    pub const CLOSE: u32 = 7;
    /// Listening.
    pub const LISTEN: u32 = 10;
}

/// Byte offsets of the kernel struct members the network programs read,
/// from the kernel's BTF.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetLayout {
    /// `sk_buff.len` (u32).
    pub skb_len: u32,
    /// `sk_buff.dev` (pointer).
    pub skb_dev: u32,
    /// `sk_buff.head` (pointer).
    pub skb_head: u32,
    /// `sk_buff.data` (pointer).
    pub skb_data: u32,
    /// `sk_buff.mac_header` (u16).
    pub skb_mac_header: u32,
    /// `sk_buff.cb` (char[48]): TCP keeps its per-segment control block
    /// there, with the segment count at byte 8.
    pub skb_cb: u32,
    /// `net_device.ifindex` (int).
    pub dev_ifindex: u32,
    /// `net_device.nd_net.net` (pointer).
    pub dev_net: u32,
    /// `sock.__sk_common.skc_net.net` (pointer).
    pub sk_net: u32,
    /// `sock.sk_protocol` (u16, a plain member since 5.6).
    pub sk_protocol: u32,
    /// `net.ns.inum` (u32).
    pub net_inum: u32,
    /// The agent's network namespace (inode of /proc/self/ns/net): only
    /// devices and sockets in it are counted, as /proc/net shows.
    pub netns: u32,
    /// Non-zero once the agent filled the layout in.
    pub valid: u32,
}

#[cfg(feature = "user")]
// SAFETY: plain `repr(C)` integers, no padding.
unsafe impl aya::Pod for NetLayout {}
