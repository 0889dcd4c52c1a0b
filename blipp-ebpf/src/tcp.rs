//! TCP retransmissions, connection state changes and resets, host-wide,
//! for sockets in the agent's network namespace (as /proc/net/snmp).

use aya_ebpf::{
    macros::{btf_tracepoint, map},
    maps::PerCpuArray,
    programs::BtfTracePointContext,
};
use blipp_common::net::{NetLayout, TCP_COUNTS, TcpCount, tcp_state};

use crate::kmem;
use crate::net::{is_ours, layout};

/// `IPPROTO_TCP`.
const IPPROTO_TCP: u16 = 6;

/// Per-CPU counters; each index has one writing program.
#[map]
static TCP_COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(TCP_COUNTS, 0);

#[inline(always)]
fn count(which: TcpCount, n: u64) {
    if let Some(c) = TCP_COUNTERS.get_ptr_mut(which as u32) {
        // SAFETY: per-CPU value with a single writing program per index.
        unsafe { *c += n };
    }
}

/// Whether socket `sk` is in the agent's namespace.
#[inline(always)]
fn sock_is_ours(sk: *const u8, l: &NetLayout) -> bool {
    if sk.is_null() {
        return false;
    }
    // SAFETY: BTF member offset; the verifier checks it.
    let net: *const u8 = unsafe { kmem::load(sk, l.sk_net) };
    is_ours(net, l)
}

/// tcp_retransmit_skb(const struct sock *sk, const struct sk_buff *skb,
/// ...): one retransmitted skb, which may carry several segments
/// (`TCP_SKB_CB(skb)->tcp_gso_segs`, at byte 8 of `skb->cb`).
#[btf_tracepoint(function = "tcp_retransmit_skb")]
pub fn tcp_retransmit_skb(ctx: BtfTracePointContext) -> i32 {
    let Some(l) = layout() else { return 0 };
    let sk: *const u8 = ctx.arg(0);
    if !sock_is_ours(sk, &l) {
        return 0;
    }
    let skb: *const u8 = ctx.arg(1);
    // SAFETY: inside the 48-byte `cb` member; the verifier checks it.
    let segs: u16 = unsafe { kmem::load(skb, l.skb_cb + 8) };
    count(TcpCount::RetransSegs, u64::from(segs.max(1)));
    0
}

/// tcp_retransmit_synack(const struct sock *sk, const struct request_sock
/// *req): one retransmitted SYN-ACK, counted like /proc's RetransSegs.
#[btf_tracepoint(function = "tcp_retransmit_synack")]
pub fn tcp_retransmit_synack(ctx: BtfTracePointContext) -> i32 {
    let Some(l) = layout() else { return 0 };
    let sk: *const u8 = ctx.arg(0);
    if sock_is_ours(sk, &l) {
        count(TcpCount::RetransSynacks, 1);
    }
    0
}

/// inet_sock_set_state(const struct sock *sk, int oldstate, int newstate).
#[btf_tracepoint(function = "inet_sock_set_state")]
pub fn inet_sock_set_state(ctx: BtfTracePointContext) -> i32 {
    let Some(l) = layout() else { return 0 };
    let sk: *const u8 = ctx.arg(0);
    // SAFETY: BTF member offset; the verifier checks it.
    let protocol: u16 = unsafe { kmem::load(sk, l.sk_protocol) };
    if protocol != IPPROTO_TCP || !sock_is_ours(sk, &l) {
        return 0;
    }
    let old = ctx.arg::<u32>(1);
    let new = ctx.arg::<u32>(2);
    match (old, new) {
        (tcp_state::SYN_SENT, tcp_state::ESTABLISHED) => count(TcpCount::EstablishedActive, 1),
        (tcp_state::SYN_RECV, tcp_state::ESTABLISHED) => count(TcpCount::EstablishedPassive, 1),
        (tcp_state::SYN_SENT | tcp_state::SYN_RECV | tcp_state::LISTEN, tcp_state::CLOSE) => {}
        (_, tcp_state::CLOSE) => count(TcpCount::Closed, 1),
        _ => {}
    }
    0
}

/// tcp_send_reset(const struct sock *sk, const struct sk_buff *skb, ...):
/// `sk` is NULL when no socket matched; then the namespace is the
/// receiving device's.
#[btf_tracepoint(function = "tcp_send_reset")]
pub fn tcp_send_reset(ctx: BtfTracePointContext) -> i32 {
    let Some(l) = layout() else { return 0 };
    let sk: *const u8 = ctx.arg(0);
    let ours = if sk.is_null() {
        let skb: *const u8 = ctx.arg(1);
        if skb.is_null() {
            return 0;
        }
        // SAFETY: BTF member offsets; the verifier checks them.
        let dev: *const u8 = unsafe { kmem::load(skb, l.skb_dev) };
        !dev.is_null() && is_ours(unsafe { kmem::load(dev, l.dev_net) }, &l)
    } else {
        sock_is_ours(sk, &l)
    };
    if ours {
        count(TcpCount::ResetsSent, 1);
    }
    0
}

/// tcp_receive_reset(struct sock *sk).
#[btf_tracepoint(function = "tcp_receive_reset")]
pub fn tcp_receive_reset(ctx: BtfTracePointContext) -> i32 {
    let Some(l) = layout() else { return 0 };
    let sk: *const u8 = ctx.arg(0);
    if sock_is_ours(sk, &l) {
        count(TcpCount::ResetsReceived, 1);
    }
    0
}
