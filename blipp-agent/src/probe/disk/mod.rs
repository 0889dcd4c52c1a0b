//! Block devices: per-device counters and rates from /proc/diskstats, and,
//! where the kernel allows, counts from the eBPF block programs.
//!
//! This file holds what both variants share (the registry row, the
//! options, the event-type names) and the choice between them; `proc.rs`
//! reads /proc/diskstats, `ebpf.rs` reads the kernel programs' maps.

mod ebpf;
mod proc;

use serde::Deserialize;

use super::{BuildContext, Built, Fallback, ProbeError, ProbeSpec, choose};
use crate::config::ProbeConfig;
use crate::sample::Name;

/// Registry row.
pub const SPEC: ProbeSpec = ProbeSpec {
    module: "disk",
    summary: "block devices: requests, sectors, IOPS, bytes/s, busy fraction (/proc/diskstats; eBPF block_rq_complete)",
    fallback: Fallback::Proc,
    build,
};

/// Every disk event type starts with this.
const PREFIX: &str = "ps:tools:blipp:linux:disk:";

/// The interned event type `ps:tools:blipp:linux:disk:<suffix>`. Both
/// variants name their samples through this, so a quantity measured by
/// both has one event type.
fn event_type(suffix: &str) -> Name {
    Name::from(format!("{PREFIX}{suffix}"))
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    /// Only these devices.
    devices: Option<Vec<String>>,
}

fn build(config: &ProbeConfig, ctx: &mut BuildContext<'_>) -> Result<Built, ProbeError> {
    let options: Options = config.options()?;
    choose(
        config,
        ctx,
        |ctx| ebpf::build(config, &options, ctx),
        |_| proc::build(config, &options),
    )
}
