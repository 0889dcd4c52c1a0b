//! Network traffic: per-interface counters from /proc/net/dev (subject:
//! the interface's port) and the node's TCP and UDP counters from
//! /proc/net/snmp, with the original BLiPP's event types. Values are the
//! kernel's cumulative counters, as the original reported them; a counter
//! that went backwards in a way no wrap explains is marked `reset`.
//!
//! This file holds what every variant shares (the registry row, the
//! options, the event-type names) and the choice between them; `proc.rs`
//! reads /proc, `ebpf.rs` the network programs' maps.

mod ebpf;
mod proc;

use serde::Deserialize;

use super::{BuildContext, Built, Fallback, ProbeError, ProbeSpec, Reach, choose};
use crate::config::ProbeConfig;
use crate::sample::Name;

/// Registry row.
pub const SPEC: ProbeSpec = ProbeSpec {
    module: "net",
    summary: "per-interface bytes, packets, errors and drops in and out; TCP segments and retransmits, UDP datagrams (/proc/net/dev, /proc/net/snmp; eBPF netif_receive_skb, net_dev_xmit, kfree_skb, tcp and sock tracepoints)",
    fallback: Fallback::Proc,
    programs: &[
        &crate::source::ebpf::net::INTERFACE_PROGRAMS,
        &crate::source::ebpf::net::TCP_PROGRAMS,
    ],
    reach: Reach::Keys {
        paths: &[],
        urls: &["unis_url"],
    },
    build,
    options: crate::config::option_keys::<Options>,
};

/// Every network event type starts with this.
const PREFIX: &str = "ps:tools:blipp:linux:network:";

/// The interned event type `ps:tools:blipp:linux:network:<suffix>`, shared
/// by every variant so that one quantity has one event type.
fn event_type(suffix: &str) -> Name {
    Name::from(format!("{PREFIX}{suffix}"))
}

/// Per-interface quantities, subject `port:<interface>`: the original's
/// event types (errors and drops are the sums of both directions, as the
/// original reported them) and each direction on its own.
const PORT_QUANTITIES: [&str; 10] = [
    "utilization:bytes:in",
    "utilization:bytes:out",
    "ip:utilization:packets:in",
    "ip:utilization:packets:out",
    "ip:utilization:errors",
    "ip:utilization:drops",
    "ip:utilization:errors:in",
    "ip:utilization:errors:out",
    "ip:utilization:drops:in",
    "ip:utilization:drops:out",
];

/// The node's TCP and UDP quantities, subject the node (the original
/// reported them against a port by mistake).
const NODE_QUANTITIES: [&str; 5] = [
    "tcp:utilization:segments:in",
    "tcp:utilization:segments:out",
    "tcp:utilization:retrans",
    "udp:utilization:datagrams:in",
    "udp:utilization:datagrams:out",
];

/// Every event type of the probe, interned once.
struct EventTypes {
    port: [Name; PORT_QUANTITIES.len()],
    node: [Name; NODE_QUANTITIES.len()],
}

impl EventTypes {
    fn new() -> Self {
        Self {
            port: PORT_QUANTITIES.map(event_type),
            node: NODE_QUANTITIES.map(event_type),
        }
    }
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    /// Only these interfaces.
    interfaces: Option<Vec<String>>,
    /// The original's UNIS URL for port lookups; UNIS registration is the
    /// agent's job now, so it is accepted and unused.
    #[serde(rename = "unis_url")]
    _unis_url: Option<String>,
}

fn build(config: &ProbeConfig, ctx: &mut BuildContext<'_>) -> Result<Built, ProbeError> {
    let options: Options = config.options()?;
    choose(
        config,
        ctx,
        |ctx| ebpf::build(config, &options, ctx),
        |ctx| Ok(proc::build(config, &options, ctx)),
    )
}
