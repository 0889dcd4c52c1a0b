//! Packets and bytes that match a few protocol/port rules, received and
//! transmitted: what the original BLiPP counted by inserting an iptables
//! chain, counted here without touching the firewall.
//!
//! Two programs on the same BTF tracepoints as the per-interface counts
//! (`netif_receive_skb`, `net_dev_xmit`), attached only when a `counting`
//! probe is configured, so hosts without one pay nothing. Per packet: the
//! IP header (and the transport header's first four bytes) read once, then
//! the rules (at most [`MAX_COUNT_RULES`], an array lookup each, which the
//! verifier inlines). A rule's slot is only ever added to by the program of
//! its direction, on this CPU's copy.

use aya_ebpf::{
    helpers::bpf_probe_read_kernel,
    macros::{btf_tracepoint, map},
    maps::{Array, PerCpuArray},
    programs::BtfTracePointContext,
};
use blipp_common::net::{
    CountRule, IpHeader, MAX_COUNT_RULES, NetLayout, PacketFacts, Traffic, count_direction,
    has_ports, ipv4_header, ipv6_header,
};

use crate::kmem;
use crate::net::{is_ours, layout};

/// The rules, written by the agent; a slot with `active == 0` is unused.
#[map]
static COUNT_RULES: Array<CountRule> = Array::with_max_entries(MAX_COUNT_RULES, 0);

/// Per CPU and rule: the matching packets and bytes.
#[map]
static COUNTS: PerCpuArray<Traffic> = PerCpuArray::with_max_entries(MAX_COUNT_RULES, 0);

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;

/// The IP facts of `skb`, from its network header.
#[inline(always)]
fn facts(skb: *const u8, l: &NetLayout) -> Option<(PacketFacts, u32)> {
    // SAFETY (loads): BTF member offsets; the verifier checks them.
    let head: u64 = unsafe { kmem::load(skb, l.skb_head) };
    let network: u16 = unsafe { kmem::load(skb, l.skb_network_header) };
    let protocol: u16 = unsafe { kmem::load(skb, l.skb_protocol) };
    if network == u16::MAX {
        return None;
    }
    let ip = head.wrapping_add(u64::from(network)) as *const u8;
    // SAFETY (reads): probe reads; a fault is an error, not a crash.
    let header: IpHeader = match u16::from_be(protocol) {
        ETH_P_IP => {
            let b = unsafe { bpf_probe_read_kernel(ip.cast::<[u8; 20]>()) }.ok()?;
            ipv4_header(&b)?
        }
        ETH_P_IPV6 => {
            let b = unsafe { bpf_probe_read_kernel(ip.cast::<[u8; 8]>()) }.ok()?;
            ipv6_header(&b)?
        }
        _ => return None,
    };
    let ports = match header.transport {
        Some(at) if has_ports(header.protocol) => {
            let l4 = ip.wrapping_add(at as usize).cast::<[u8; 4]>();
            // SAFETY: as above.
            let p = unsafe { bpf_probe_read_kernel(l4) }.ok()?;
            Some((
                u16::from_be_bytes([p[0], p[1]]),
                u16::from_be_bytes([p[2], p[3]]),
            ))
        }
        _ => None,
    };
    Some((
        PacketFacts {
            family: header.family,
            protocol: header.protocol,
            ports,
        },
        header.length,
    ))
}

/// Adds the packet to every active rule of `direction` it matches.
#[inline(always)]
fn count(direction: u8, facts: &PacketFacts, length: u32) {
    for i in 0..MAX_COUNT_RULES {
        let Some(rule) = COUNT_RULES.get(i) else {
            return;
        };
        if rule.active == 0 || rule.direction != direction || !rule.matches(facts) {
            continue;
        }
        if let Some(t) = COUNTS.get_ptr_mut(i) {
            // SAFETY: this CPU's value; only this direction's program adds
            // to this rule.
            unsafe {
                (*t).packets += 1;
                (*t).bytes += u64::from(length);
            }
        }
    }
}

/// Whether `dev` is a device of the agent's namespace.
#[inline(always)]
fn ours(dev: *const u8, l: &NetLayout) -> bool {
    if dev.is_null() {
        return false;
    }
    // SAFETY: BTF member offset; the verifier checks it.
    let net: *const u8 = unsafe { kmem::load(dev, l.dev_net) };
    is_ours(net, l)
}

/// netif_receive_skb(struct sk_buff *skb): packets received.
#[btf_tracepoint(function = "netif_receive_skb")]
pub fn count_receive(ctx: BtfTracePointContext) -> i32 {
    let Some(l) = layout() else { return 0 };
    let skb: *const u8 = ctx.arg(0);
    // SAFETY: BTF member offset; the verifier checks it.
    let dev: *const u8 = unsafe { kmem::load(skb, l.skb_dev) };
    if !ours(dev, &l) {
        return 0;
    }
    if let Some((f, length)) = facts(skb, &l) {
        count(count_direction::IN, &f, length);
    }
    0
}

/// net_dev_xmit(struct sk_buff *skb, int rc, struct net_device *dev, ...):
/// packets a driver took.
#[btf_tracepoint(function = "net_dev_xmit")]
pub fn count_transmit(ctx: BtfTracePointContext) -> i32 {
    let Some(l) = layout() else { return 0 };
    let rc: i32 = ctx.arg(1);
    if rc != 0 {
        return 0;
    }
    let skb: *const u8 = ctx.arg(0);
    let dev: *const u8 = ctx.arg(2);
    if !ours(dev, &l) {
        return 0;
    }
    if let Some((f, length)) = facts(skb, &l) {
        count(count_direction::OUT, &f, length);
    }
    0
}
