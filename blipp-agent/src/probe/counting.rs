//! Packets and bytes of chosen protocols and ports, counted in the kernel:
//! the original BLiPP's `iptables` probe (`counting_measurement.json`)
//! without its side effects. The original inserted a chain into the
//! host's firewall with `sudo iptables -N` and parsed `iptables -L` output;
//! blipp attaches two programs (see `blipp-ebpf/src/count.rs`) and leaves
//! the firewall alone, so nothing is left behind when blippd dies.
//!
//! Each rule counts on its own: a packet that matches two rules is in both
//! counts. Counts are cumulative from when the probe started (as an
//! iptables rule's counters from its insertion). Nothing in /proc has
//! these numbers, so without eBPF the probe does not run (it is reported
//! faulty with the reason, never with made-up zeros).

use std::collections::{BTreeMap, HashSet};

use blipp_common::net::{CountRule, MAX_COUNT_RULES, Traffic, count_direction, count_port};
use serde::Deserialize;
use serde_json::{Value as Json, json};

use super::{BuildContext, Built, Fallback, Probe, ProbeError, ProbeSpec, Reach};
use crate::config::{ConfigError, Mode, ProbeConfig};
use crate::sample::{Name, Sample, Source, Timestamp, Value};
use crate::source::ebpf::count::CountMaps;

/// Registry row.
pub const SPEC: ProbeSpec = ProbeSpec {
    module: "counting",
    summary: "packets and bytes of chosen protocols and ports, in or out, counted in the kernel (eBPF only; the firewall is not touched)",
    fallback: Fallback::None,
    programs: &[&crate::source::ebpf::count::COUNT_PROGRAMS],
    reach: Reach::NONE,
    build,
    options: crate::config::option_keys::<Options>,
};

/// The original's module name: its configurations (no `rules`) count
/// incoming TCP to port 22, as its hard-wired chain did.
pub const SPEC_ORIGINAL: ProbeSpec = ProbeSpec {
    module: "iptables",
    summary: "the original BLiPP's name of the counting probe (its files count incoming TCP to port 22)",
    fallback: Fallback::None,
    programs: &[&crate::source::ebpf::count::COUNT_PROGRAMS],
    reach: Reach::NONE,
    build,
    options: crate::config::option_keys::<Options>,
};

/// Event types of a named rule's counts.
const PACKETS: &str = "ps:tools:blipp:linux:net:count:packets";
const BYTES: &str = "ps:tools:blipp:linux:net:count:bytes";
/// The original's event type (its `eventTypes.counting`), for packets.
const ORIGINAL: &str = "ps:tools:blipp:linux:net:iptables:counting";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    /// What to count; without it, what the original counted.
    rules: Option<Vec<RuleOptions>>,
    /// The original's `{"counting": event type}`.
    #[serde(rename = "eventTypes")]
    event_types: Option<BTreeMap<String, String>>,
    /// The original's `iptables -L` command and its regex: accepted so
    /// that its files run, never run or used.
    command: Option<Json>,
    regex: Option<Json>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleOptions {
    name: String,
    #[serde(default)]
    direction: Direction,
    #[serde(default)]
    protocol: Protocol,
    #[serde(default)]
    family: Family,
    port: Option<PortRange>,
    #[serde(default)]
    port_of: PortOf,
}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Direction {
    #[default]
    In,
    Out,
}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Family {
    #[default]
    Any,
    Ipv4,
    Ipv6,
}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum PortOf {
    #[default]
    Destination,
    Source,
    Either,
}

/// A protocol by name or IP protocol number.
#[derive(Deserialize, Default, Clone, Copy)]
#[serde(untagged)]
enum Protocol {
    #[default]
    #[serde(skip)]
    Any,
    Number(u8),
    Name(ProtocolName),
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum ProtocolName {
    Any,
    Tcp,
    Udp,
    Icmp,
    Icmpv6,
    Sctp,
    Dccp,
    Udplite,
}

impl Protocol {
    fn number(self) -> u8 {
        match self {
            Protocol::Any | Protocol::Name(ProtocolName::Any) => 0,
            Protocol::Number(n) => n,
            Protocol::Name(ProtocolName::Tcp) => 6,
            Protocol::Name(ProtocolName::Udp) => 17,
            Protocol::Name(ProtocolName::Icmp) => 1,
            Protocol::Name(ProtocolName::Icmpv6) => 58,
            Protocol::Name(ProtocolName::Sctp) => 132,
            Protocol::Name(ProtocolName::Dccp) => 33,
            Protocol::Name(ProtocolName::Udplite) => 136,
        }
    }
}

/// `22` or `"6000-6010"`.
#[derive(Deserialize, Clone, Copy)]
#[serde(untagged)]
enum PortRange {
    One(u16),
    Range(#[serde(deserialize_with = "range")] (u16, u16)),
}

fn range<'de, D: serde::Deserializer<'de>>(d: D) -> Result<(u16, u16), D::Error> {
    let s = String::deserialize(d)?;
    let bad = || serde::de::Error::custom(format!("a port or a range \"low-high\", not {s:?}"));
    let (low, high) = s.split_once('-').ok_or_else(bad)?;
    let low: u16 = low.trim().parse().map_err(|_| bad())?;
    let high: u16 = high.trim().parse().map_err(|_| bad())?;
    if low > high {
        return Err(bad());
    }
    Ok((low, high))
}

/// One rule as the programs get it, and where its counts are reported.
#[derive(Debug, PartialEq)]
struct Counted {
    rule: CountRule,
    subject: Name,
    packets: Name,
    bytes: Name,
}

/// The rules `options` (of `config`) ask for, checked; the error names
/// the key at fault.
fn rules(config: &ProbeConfig, options: Options, node: &Name) -> Result<Vec<Counted>, ConfigError> {
    let pointer = |key: &str| format!("/properties/configurations/probes/{}/{key}", config.name);
    let Some(rules) = options.rules else {
        // The original's chain: TCP to port 22, received.
        let packets = options
            .event_types
            .as_ref()
            .and_then(|t| t.get("counting"))
            .map_or(ORIGINAL, String::as_str);
        return Ok(vec![Counted {
            rule: CountRule {
                direction: count_direction::IN,
                protocol: 6,
                port_side: count_port::DESTINATION,
                port_low: 22,
                port_high: 22,
                ..CountRule::default()
            },
            subject: node.clone(),
            packets: Name::from(packets),
            bytes: Name::from(format!("{packets}:bytes")),
        }]);
    };
    if rules.is_empty() || rules.len() > MAX_COUNT_RULES as usize {
        return Err(ConfigError::invalid(
            "configuration",
            &pointer("rules"),
            &json!(rules.len()),
            format!("1 to {MAX_COUNT_RULES} rules"),
        ));
    }
    let mut names = HashSet::new();
    rules
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let name_ok = !r.name.is_empty()
                && r.name.len() <= 64
                && r
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !name_ok || !names.insert(r.name.as_str()) {
                return Err(ConfigError::invalid(
                    "configuration",
                    &pointer(&format!("rules/{i}/name")),
                    &json!(r.name),
                    "a name of letters, digits, '_' and '-' (at most 64), unique among the rules",
                ));
            }
            let protocol = r.protocol.number();
            let (port_side, (low, high)) = match r.port {
                None => (count_port::ANY, (0, 0)),
                Some(p) => {
                    if protocol != 0 && !blipp_common::net::has_ports(protocol) {
                        return Err(ConfigError::invalid(
                            "configuration",
                            &pointer(&format!("rules/{i}/port")),
                            &json!(protocol),
                            "a port only with a protocol that has ports (tcp, udp, sctp, dccp, udplite, or any)",
                        ));
                    }
                    let side = match r.port_of {
                        PortOf::Destination => count_port::DESTINATION,
                        PortOf::Source => count_port::SOURCE,
                        PortOf::Either => count_port::EITHER,
                    };
                    let range = match p {
                        PortRange::One(p) => (p, p),
                        PortRange::Range(r) => r,
                    };
                    (side, range)
                }
            };
            Ok(Counted {
                rule: CountRule {
                    direction: match r.direction {
                        Direction::In => count_direction::IN,
                        Direction::Out => count_direction::OUT,
                    },
                    protocol,
                    family: match r.family {
                        Family::Any => 0,
                        Family::Ipv4 => 4,
                        Family::Ipv6 => 6,
                    },
                    port_side,
                    port_low: low,
                    port_high: high,
                    ..CountRule::default()
                },
                subject: Name::from(format!("count:{}", r.name)),
                packets: Name::from(PACKETS),
                bytes: Name::from(BYTES),
            })
        })
        .collect()
}

fn build(config: &ProbeConfig, ctx: &mut BuildContext<'_>) -> Result<Built, ProbeError> {
    let options: Options = config.options()?;
    if options.command.is_some() || options.regex.is_some() {
        tracing::info!(
            probe = %config.name,
            "counting in the kernel: the original's iptables command and regex are not run"
        );
    }
    let counted = rules(config, options, &ctx.node)?;
    if config.mode == Mode::Proc {
        return Err(ProbeError::Config(ConfigError::invalid(
            "configuration",
            &format!("/properties/configurations/probes/{}/mode", config.name),
            &json!("proc"),
            "auto or ebpf: counting has no /proc variant (nothing in /proc counts by port)",
        )));
    }
    let kernel = ctx
        .kernel
        .get()
        .map_err(|e| ProbeError::EbpfUnavailable(e.to_string()))?;
    let rules: Vec<CountRule> = counted.iter().map(|c| c.rule).collect();
    let mut maps = CountMaps::attach(kernel, &rules)?;
    ctx.costs
        .add_programs(std::mem::take(&mut maps.programs), kernel.stats_enabled());
    Ok(Built {
        probe: Box::new(Counting {
            maps,
            counted,
            totals: Vec::new(),
        }),
        source: Source::Ebpf,
    })
}

struct Counting {
    maps: CountMaps,
    counted: Vec<Counted>,
    /// Reused between collections.
    totals: Vec<Traffic>,
}

impl Probe for Counting {
    fn collect(&mut self, ts: Timestamp, out: &mut Vec<Sample>) -> Result<(), ProbeError> {
        self.maps.totals(&mut self.totals)?;
        for (c, t) in self.counted.iter().zip(&self.totals) {
            out.push(Sample::new(
                ts,
                &c.subject,
                &c.packets,
                Value::Int(t.packets),
                Source::Ebpf,
            ));
            out.push(Sample::new(
                ts,
                &c.subject,
                &c.bytes,
                Value::Int(t.bytes),
                Source::Ebpf,
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::testing;

    fn rules_of(options: Json) -> Result<Vec<Counted>, ConfigError> {
        let config = testing::probe_config("counting", &options)?;
        rules(&config, config.options()?, &Name::from("node"))
    }

    #[test]
    fn the_original_configuration_counts_ssh_in() {
        let got = rules_of(json!({
            "command": "sudo iptables -L CCHAIN -xnv",
            "regex": "\\s+(?P<counting>[0-9]+)\\s+[0-9]+\\s+ACCEPT",
            "eventTypes": {"counting": "ps:tools:blipp:linux:net:iptables:counting"}
        }))
        .unwrap();
        assert_eq!(got.len(), 1);
        let c = &got[0];
        assert_eq!(
            (c.rule.protocol, c.rule.port_low, c.rule.port_high),
            (6, 22, 22)
        );
        assert_eq!(c.rule.direction, count_direction::IN);
        assert_eq!(c.rule.port_side, count_port::DESTINATION);
        assert_eq!(c.subject.as_ref(), "node");
        assert_eq!(c.packets.as_ref(), ORIGINAL);
    }

    #[test]
    fn rules_become_kernel_rules() {
        let got = rules_of(json!({"rules": [
            {"name": "web", "protocol": "tcp", "port": "8000-8080", "port_of": "either"},
            {"name": "dns-out", "direction": "out", "protocol": 17, "port": 53, "family": "ipv6"},
            {"name": "all-icmp", "protocol": "icmp"}
        ]}))
        .unwrap();
        assert_eq!(got[0].rule.port_side, count_port::EITHER);
        assert_eq!((got[0].rule.port_low, got[0].rule.port_high), (8000, 8080));
        assert_eq!(got[0].subject.as_ref(), "count:web");
        assert_eq!(got[1].rule.direction, count_direction::OUT);
        assert_eq!((got[1].rule.protocol, got[1].rule.family), (17, 6));
        assert_eq!(got[2].rule.port_side, count_port::ANY);
        assert_eq!(got[2].rule.protocol, 1);
        assert_eq!(got[2].packets.as_ref(), PACKETS);
    }

    #[test]
    fn bad_rules_name_the_key_at_fault() {
        for (options, pointer) in [
            (json!({"rules": []}), "/rules"),
            (json!({"rules": [{"name": "a b"}]}), "/rules/0/name"),
            (
                json!({"rules": [{"name": "a"}, {"name": "a"}]}),
                "/rules/1/name",
            ),
            (
                json!({"rules": [{"name": "p", "protocol": "icmp", "port": 1}]}),
                "/rules/0/port",
            ),
        ] {
            let e = rules_of(options.clone()).unwrap_err().to_string();
            assert!(e.contains(pointer), "{options}: {e}");
        }
        for bad in [
            json!({"rules": [{"name": "r", "port": "9-1"}]}),
            json!({"rules": [{"name": "r", "port": 70000}]}),
            json!({"rules": [{"name": "r", "protocol": "tpc"}]}),
            json!({"rules": [{"name": "r", "direction": "both"}]}),
            json!({"rules": [{"name": "r", "ports": 1}]}),
        ] {
            assert!(rules_of(bad.clone()).is_err(), "{bad} accepted");
        }
    }
}
