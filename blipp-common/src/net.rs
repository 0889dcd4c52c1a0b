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
    /// `sk_buff.network_header` (u16, from `head`; `0xffff` when unset).
    pub skb_network_header: u32,
    /// `sk_buff.protocol` (__be16, the packet's EtherType).
    pub skb_protocol: u32,
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

/// Slots of the counting rules: how many protocol/port rules all
/// `counting` probes together can have.
pub const MAX_COUNT_RULES: u32 = 16;

/// Direction of a counting rule, [`CountRule::direction`].
pub mod count_direction {
    /// Received by an interface of the namespace (`netif_receive_skb`).
    pub const IN: u8 = 0;
    /// Handed to a driver (`net_dev_xmit`).
    pub const OUT: u8 = 1;
}

/// Which port of a packet a rule's range applies to,
/// [`CountRule::port_side`].
pub mod count_port {
    /// No port condition.
    pub const ANY: u8 = 0;
    /// The destination port.
    pub const DESTINATION: u8 = 1;
    /// The source port.
    pub const SOURCE: u8 = 2;
    /// Either port.
    pub const EITHER: u8 = 3;
}

/// One counting rule, as the programs match packets against it: packets
/// and bytes (the IP datagram's length, as netfilter counts them) of the
/// matching packets go to the rule's slot of `COUNTS`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CountRule {
    /// Non-zero for a slot in use.
    pub active: u8,
    /// [`count_direction`].
    pub direction: u8,
    /// IP protocol number (6 TCP, 17 UDP...); 0: any.
    pub protocol: u8,
    /// IP version, 4 or 6; 0: both.
    pub family: u8,
    /// [`count_port`].
    pub port_side: u8,
    /// Padding, always 0.
    pub pad: [u8; 3],
    /// Lowest port of the range (inclusive).
    pub port_low: u16,
    /// Highest port of the range (inclusive).
    pub port_high: u16,
}

#[cfg(feature = "user")]
// SAFETY: plain `repr(C)` integers, explicit padding.
unsafe impl aya::Pod for CountRule {}

#[cfg(feature = "user")]
// SAFETY: plain `repr(C)` integers, no padding.
unsafe impl aya::Pod for Traffic {}

/// A packet's IP header facts, as the counting programs read them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PacketFacts {
    /// 4 or 6.
    pub family: u8,
    /// IP protocol number (for IPv6, the first next-header).
    pub protocol: u8,
    /// Source and destination port, when the protocol has them and this
    /// is a first (or only) fragment.
    pub ports: Option<(u16, u16)>,
}

/// Protocols whose header starts with a source and a destination port.
#[inline(always)]
pub fn has_ports(protocol: u8) -> bool {
    // TCP, UDP, DCCP, SCTP, UDP-Lite
    matches!(protocol, 6 | 17 | 33 | 132 | 136)
}

impl CountRule {
    /// Whether a packet with `facts` matches this rule (direction aside,
    /// which the program that sees the packet checks).
    #[inline(always)]
    pub fn matches(&self, facts: &PacketFacts) -> bool {
        if self.family != 0 && self.family != facts.family {
            return false;
        }
        if self.protocol != 0 && self.protocol != facts.protocol {
            return false;
        }
        let within = |p: u16| p >= self.port_low && p <= self.port_high;
        match (self.port_side, facts.ports) {
            (count_port::ANY, _) => true,
            (_, None) => false,
            (count_port::DESTINATION, Some((_, d))) => within(d),
            (count_port::SOURCE, Some((s, _))) => within(s),
            (_, Some((s, d))) => within(s) || within(d),
        }
    }
}

/// What the counting programs need of an IP header: the packet's facts
/// but its ports, its length (what netfilter counts as bytes) and where
/// its transport header starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpHeader {
    /// 4 or 6.
    pub family: u8,
    /// IP protocol number.
    pub protocol: u8,
    /// The whole datagram's length in bytes.
    pub length: u32,
    /// Bytes from the IP header's start to the transport header's, when
    /// this packet carries one (not a later fragment).
    pub transport: Option<u32>,
}

/// The first 20 bytes of an IPv4 header; `None` when they are not one.
#[inline(always)]
pub fn ipv4_header(b: &[u8; 20]) -> Option<IpHeader> {
    if b[0] >> 4 != 4 {
        return None;
    }
    let ihl = u32::from(b[0] & 0x0f) * 4;
    if ihl < 20 {
        return None;
    }
    let fragment_offset = u16::from_be_bytes([b[6], b[7]]) & 0x1fff;
    Some(IpHeader {
        family: 4,
        protocol: b[9],
        length: u32::from(u16::from_be_bytes([b[2], b[3]])),
        transport: (fragment_offset == 0).then_some(ihl),
    })
}

/// The first 8 bytes of an IPv6 header; `None` when they are not one.
/// Extension headers are not followed: a packet whose first next-header
/// is one (hop-by-hop options, a fragment header...) has that as its
/// protocol and no ports.
#[inline(always)]
pub fn ipv6_header(b: &[u8; 8]) -> Option<IpHeader> {
    if b[0] >> 4 != 6 {
        return None;
    }
    Some(IpHeader {
        family: 6,
        protocol: b[6],
        length: u32::from(u16::from_be_bytes([b[4], b[5]])) + 40,
        transport: Some(40),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(protocol: u8, side: u8, low: u16, high: u16) -> CountRule {
        CountRule {
            active: 1,
            protocol,
            port_side: side,
            port_low: low,
            port_high: high,
            ..CountRule::default()
        }
    }

    fn tcp(s: u16, d: u16) -> PacketFacts {
        PacketFacts {
            family: 4,
            protocol: 6,
            ports: Some((s, d)),
        }
    }

    #[test]
    fn rules_match_protocol_family_and_port_side() {
        let ssh = rule(6, count_port::DESTINATION, 22, 22);
        assert!(ssh.matches(&tcp(40000, 22)));
        assert!(!ssh.matches(&tcp(22, 40000)));
        assert!(rule(6, count_port::SOURCE, 22, 22).matches(&tcp(22, 40000)));
        assert!(rule(6, count_port::EITHER, 22, 22).matches(&tcp(22, 40000)));
        assert!(rule(6, count_port::EITHER, 22, 22).matches(&tcp(40000, 22)));
        assert!(!rule(17, count_port::DESTINATION, 22, 22).matches(&tcp(1, 22)));
        assert!(rule(0, count_port::DESTINATION, 20, 30).matches(&tcp(1, 30)));
        assert!(!rule(0, count_port::DESTINATION, 20, 30).matches(&tcp(1, 31)));
        let mut v6 = ssh;
        v6.family = 6;
        assert!(!v6.matches(&tcp(40000, 22)));
        // A later fragment has no ports: only rules without a port
        // condition count it.
        let fragment = PacketFacts {
            ports: None,
            ..tcp(0, 0)
        };
        assert!(!ssh.matches(&fragment));
        assert!(rule(6, count_port::ANY, 0, 0).matches(&fragment));
    }

    #[test]
    fn ip_headers() {
        // IPv4, IHL 6 (options), total length 1500, TCP, DF set.
        let mut h = [0u8; 20];
        h[0] = 0x46;
        h[2..4].copy_from_slice(&1500u16.to_be_bytes());
        h[6] = 0x40;
        h[9] = 6;
        let v4 = ipv4_header(&h).unwrap();
        assert_eq!((v4.family, v4.protocol, v4.length), (4, 6, 1500));
        assert_eq!(v4.transport, Some(24));
        // A later fragment (offset 185 * 8) has no transport header.
        h[6..8].copy_from_slice(&185u16.to_be_bytes());
        assert_eq!(ipv4_header(&h).unwrap().transport, None);
        h[0] = 0x44;
        assert_eq!(ipv4_header(&h), None, "IHL below 5");
        h[0] = 0x65;
        assert_eq!(ipv4_header(&h), None, "not version 4");
        let mut h6 = [0u8; 8];
        h6[0] = 0x60;
        h6[4..6].copy_from_slice(&100u16.to_be_bytes());
        h6[6] = 17;
        let v6 = ipv6_header(&h6).unwrap();
        assert_eq!((v6.family, v6.protocol, v6.length), (6, 17, 140));
        h6[0] = 0x45;
        assert_eq!(ipv6_header(&h6), None);
    }
}
