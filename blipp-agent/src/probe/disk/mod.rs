//! Block devices: per-device counters and rates from /proc/diskstats, and,
//! where the kernel allows, counts from the eBPF block programs.
//!
//! This file holds what both variants share (the registry row, the
//! options, the event-type names) and the choice between them; `proc.rs`
//! reads /proc/diskstats, `ebpf.rs` reads the kernel programs' maps.

mod ebpf;
mod proc;

use blipp_common::disk::{DISK_OPS, DiskOp};
use serde::Deserialize;

use super::{BuildContext, Built, Fallback, ProbeError, ProbeSpec, Reach, choose};
use crate::config::ProbeConfig;
use crate::sample::Name;

/// Registry row.
pub const SPEC: ProbeSpec = ProbeSpec {
    module: "disk",
    summary: "block devices and partitions: requests, merges, sectors, time; IOPS, bytes/s, await, busy fraction, queue (/proc/diskstats; eBPF block_rq_complete)",
    fallback: Fallback::Proc,
    programs: &[&[crate::source::ebpf::disk::COMPLETE_PROGRAM]],
    reach: Reach::NONE,
    build,
    options: crate::config::option_keys::<Options>,
};

/// Every disk event type starts with this.
const PREFIX: &str = "ps:tools:blipp:linux:disk:";

/// The interned event type `ps:tools:blipp:linux:disk:<suffix>`.
fn event_type(suffix: &str) -> Name {
    Name::from(format!("{PREFIX}{suffix}"))
}

/// Every disk event type, interned once. Both variants name their samples
/// through this, so a quantity measured by both has one event type.
/// Per-operation arrays are indexed by [`DiskOp`] (read, write, discard,
/// flush, other); /proc/diskstats has no "other" and no flush sectors.
#[derive(Clone)]
struct EventTypes {
    /// `requests:<op>`: requests completed (cumulative).
    requests: [Name; DISK_OPS as usize],
    /// `sectors:<op>`: 512-byte sectors transferred (cumulative).
    sectors: [Name; DISK_OPS as usize],
    /// `merged:<op>`: requests merged into others (cumulative).
    merged: [Name; 3],
    /// `time:<op>`: milliseconds spent on requests (cumulative).
    time: [Name; 4],
    /// `time:io`: milliseconds with requests in flight (cumulative).
    io_time: Name,
    /// `time:weighted`: request-milliseconds in flight (cumulative).
    weighted_time: Name,
    /// `inprogress`: requests in flight now.
    in_progress: Name,
    /// `utilization:iops:<op>`: requests completed per second.
    iops: [Name; 4],
    /// `utilization:bytes:<op>`: bytes per second.
    bytes: [Name; 3],
    /// `utilization:await:<op>`: average milliseconds per completed request.
    await_ms: [Name; 4],
    /// `utilization:busy`: fraction of the interval with requests in flight.
    busy: Name,
    /// `utilization:queue`: average requests in flight.
    queue: Name,
}

/// `<what>:<op>` for the first `N` operations of [`DiskOp::ALL`].
fn per_op<const N: usize>(what: &str) -> [Name; N] {
    std::array::from_fn(|i| event_type(&format!("{what}:{}", DiskOp::ALL[i].name())))
}

impl EventTypes {
    fn new() -> Self {
        Self {
            requests: per_op("requests"),
            sectors: per_op("sectors"),
            merged: per_op("merged"),
            time: per_op("time"),
            io_time: event_type("time:io"),
            weighted_time: event_type("time:weighted"),
            in_progress: event_type("inprogress"),
            iops: per_op("utilization:iops"),
            bytes: per_op("utilization:bytes"),
            await_ms: per_op("utilization:await"),
            busy: event_type("utilization:busy"),
            queue: event_type("utilization:queue"),
        }
    }
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
        |_| Ok(proc::build(config, &options)),
    )
}
