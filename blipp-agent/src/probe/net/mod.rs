//! Network traffic: per-interface counters from /proc/net/dev, with the
//! original BLiPP's event types.
//!
//! This file holds what every variant shares (the registry row, the
//! options, the event-type names) and the choice between them; `proc.rs`
//! reads /proc. There is no eBPF variant yet: when one is added next to
//! `proc.rs`, `build` chooses between the two with
//! [`choose`](super::choose) and the row's fallback becomes
//! [`Fallback::Proc`].

mod proc;

use serde::Deserialize;

use super::{BuildContext, Built, Fallback, ProbeError, ProbeSpec};
use crate::config::ProbeConfig;
use crate::sample::{Name, Source};

/// Registry row.
pub const SPEC: ProbeSpec = ProbeSpec {
    module: "net",
    summary: "per-interface bytes, packets, errors and drops in and out (/proc/net/dev)",
    fallback: Fallback::ProcOnly,
    build,
};

/// Every network event type starts with this.
const PREFIX: &str = "ps:tools:blipp:linux:network:";

/// The interned event type `ps:tools:blipp:linux:network:<suffix>`, shared
/// by every variant so that one quantity has one event type.
fn event_type(suffix: &str) -> Name {
    Name::from(format!("{PREFIX}{suffix}"))
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

fn build(config: &ProbeConfig, _ctx: &mut BuildContext<'_>) -> Result<Built, ProbeError> {
    let options: Options = config.options()?;
    Ok(Built {
        probe: proc::build(config, &options)?,
        source: Source::Proc,
    })
}
