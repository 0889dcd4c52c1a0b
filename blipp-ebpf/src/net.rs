//! Per-interface packets and bytes, received and transmitted, and packets
//! the kernel dropped, counted where every packet passes: the BTF
//! tracepoints `netif_receive_skb` and `net_dev_xmit`, and `kfree_skb`
//! (which the kernel calls only for drops; freed-after-use packets go
//! through `consume_skb`).
//!
//! Interfaces are kept apart in a per-CPU array indexed by interface index
//! (see `MAX_NETDEVS`): no hash lookup per packet. One slot holds an
//! interface's three directions, so the agent reads it in one lookup. Only
//! interfaces in the agent's network namespace are counted, as
//! /proc/net/dev shows them.

use aya_ebpf::{
    macros::{btf_tracepoint, map},
    maps::PerCpuArray,
    programs::BtfTracePointContext,
};
use blipp_common::net::{MAX_NETDEVS, NET_FLOWS, NetFlow, NetLayout, NetSlot, Traffic, net_slot};

use crate::kmem;

/// Filled in by the agent from the kernel's BTF and its own namespace.
#[unsafe(no_mangle)]
pub(crate) static NET_LAYOUT: NetLayout = NetLayout {
    skb_len: 0,
    skb_dev: 0,
    skb_head: 0,
    skb_data: 0,
    skb_mac_header: 0,
    skb_cb: 0,
    skb_network_header: 0,
    skb_protocol: 0,
    dev_ifindex: 0,
    dev_net: 0,
    sk_net: 0,
    sk_protocol: 0,
    net_inum: 0,
    netns: 0,
    valid: 0,
};

/// Per CPU and interface slot; each program adds to its own [`NetFlow`].
#[map]
static NET_INTERFACES: PerCpuArray<NetSlot> = PerCpuArray::with_max_entries(MAX_NETDEVS, 0);

#[inline(always)]
pub(crate) fn layout() -> Option<NetLayout> {
    // SAFETY: a volatile read keeps the compiler from folding the initial
    // value; the loader rewrote it before the program was loaded.
    let l = unsafe { core::ptr::read_volatile(&NET_LAYOUT) };
    (l.valid != 0).then_some(l)
}

/// Whether the `struct net` at `net` is the agent's namespace.
#[inline(always)]
pub(crate) fn is_ours(net: *const u8, l: &NetLayout) -> bool {
    if net.is_null() {
        return false;
    }
    // SAFETY: BTF member offset; the verifier checks it.
    let inum: u32 = unsafe { kmem::load(net, l.net_inum) };
    inum == l.netns
}

/// The interface index of `dev` when it is in the agent's namespace.
#[inline(always)]
fn our_ifindex(dev: *const u8, l: &NetLayout) -> Option<u32> {
    if dev.is_null() {
        return None;
    }
    // SAFETY: BTF member offsets; the verifier checks them.
    let net: *const u8 = unsafe { kmem::load(dev, l.dev_net) };
    if !is_ours(net, l) {
        return None;
    }
    // SAFETY: as above.
    let ifindex: u32 = unsafe { kmem::load(dev, l.dev_ifindex) };
    (ifindex != 0).then_some(ifindex)
}

#[inline(always)]
fn add(flow: NetFlow, ifindex: u32, bytes: u64) {
    let Some(s) = NET_INTERFACES.get_ptr_mut(net_slot(ifindex)) else {
        return;
    };
    // SAFETY: this CPU's value; other programs that nest on this CPU add
    // to other flows.
    unsafe {
        if (*s).ifindex != ifindex {
            // A new interface, or two whose indices collide: this CPU's
            // slot starts over for the newcomer; the agent sees the tag
            // change and does not read it as counters going backwards. A
            // program nested in this one may then add to the newcomer what
            // belonged to the old owner: only ever on a collision.
            *s = NetSlot {
                ifindex,
                pad: 0,
                flows: [Traffic::ZERO; NET_FLOWS],
            };
        }
        let f = &mut (*s).flows[flow as usize];
        f.packets += 1;
        f.bytes += bytes;
    }
}

/// netif_receive_skb(struct sk_buff *skb): every packet handed to the
/// stack, after the driver pulled the link-layer header, which is added
/// back so that bytes are counted as drivers count them.
#[btf_tracepoint(function = "netif_receive_skb")]
pub fn netif_receive_skb(ctx: BtfTracePointContext) -> i32 {
    let Some(l) = layout() else { return 0 };
    let skb: *const u8 = ctx.arg(0);
    // SAFETY (loads): BTF member offsets; the verifier checks them.
    let dev: *const u8 = unsafe { kmem::load(skb, l.skb_dev) };
    let Some(ifindex) = our_ifindex(dev, &l) else {
        return 0;
    };
    let len: u32 = unsafe { kmem::load(skb, l.skb_len) };
    let head: u64 = unsafe { kmem::load(skb, l.skb_head) };
    let data: u64 = unsafe { kmem::load(skb, l.skb_data) };
    let mac: u16 = unsafe { kmem::load(skb, l.skb_mac_header) };
    let mut link = 0;
    if mac != u16::MAX {
        let mac_start = head.wrapping_add(u64::from(mac));
        if data > mac_start && data - mac_start <= 64 {
            link = data - mac_start;
        }
    }
    add(NetFlow::Rx, ifindex, u64::from(len) + link);
    0
}

/// net_dev_xmit(struct sk_buff *skb, int rc, struct net_device *dev,
/// unsigned int skb_len): after the driver took (rc 0) or refused the
/// packet.
#[btf_tracepoint(function = "net_dev_xmit")]
pub fn net_dev_xmit(ctx: BtfTracePointContext) -> i32 {
    let Some(l) = layout() else { return 0 };
    let rc: i32 = ctx.arg(1);
    if rc != 0 {
        return 0;
    }
    let dev: *const u8 = ctx.arg(2);
    let Some(ifindex) = our_ifindex(dev, &l) else {
        return 0;
    };
    let len: u64 = ctx.arg::<u64>(3) & 0xffff_ffff;
    add(NetFlow::Tx, ifindex, len);
    0
}

/// kfree_skb(struct sk_buff *skb, void *location, ...): a packet dropped.
/// Only drops of packets that name a device of the agent's namespace are
/// counted (a packet dropped by a socket may no longer name one).
#[btf_tracepoint(function = "kfree_skb")]
pub fn kfree_skb(ctx: BtfTracePointContext) -> i32 {
    let Some(l) = layout() else { return 0 };
    let skb: *const u8 = ctx.arg(0);
    // SAFETY (loads): BTF member offsets; the verifier checks them.
    let dev: *const u8 = unsafe { kmem::load(skb, l.skb_dev) };
    if let Some(ifindex) = our_ifindex(dev, &l) {
        let len: u32 = unsafe { kmem::load(skb, l.skb_len) };
        add(NetFlow::Drops, ifindex, u64::from(len));
    }
    0
}
