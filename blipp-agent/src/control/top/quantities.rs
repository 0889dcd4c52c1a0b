//! The quantities `blippcmd top` draws: one table, read by blippd (which
//! keeps a short history of exactly these) and by blippcmd (which labels
//! and formats them).
//!
//! Only host-wide figures and per-device ones that an operator watches
//! first are listed: everything else is one `blippcmd tail` away, and a
//! short list keeps blippd's per-sample check to a few string compares.

/// How a quantity's numbers read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// A fraction 0..1, shown as a percentage.
    Fraction,
    /// kB, shown in bytes with a binary prefix.
    Kilobytes,
    /// Bytes per second.
    BytesPerSecond,
    /// Events per second.
    PerSecond,
    /// A number as it is (a load average).
    Plain,
    /// Seconds.
    Seconds,
}

/// Which subjects of an event type are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subjects {
    /// `node` only (not `cpu:<n>`).
    Node,
    /// Every subject (disks, ports, probes), up to blippd's bound.
    Any,
}

/// One quantity.
#[derive(Clone, Copy, Debug)]
pub struct Quantity {
    /// The full event type.
    pub event_type: &'static str,
    /// The short label `top` prints.
    pub label: &'static str,
    /// Its unit, after `counter` is turned into a rate.
    pub unit: Unit,
    /// A cumulative counter: `top` draws its rate between collections.
    pub counter: bool,
    /// Which subjects.
    pub subjects: Subjects,
}

const fn q(
    event_type: &'static str,
    label: &'static str,
    unit: Unit,
    counter: bool,
    subjects: Subjects,
) -> Quantity {
    Quantity {
        event_type,
        label,
        unit,
        counter,
        subjects,
    }
}

/// Every quantity, in the order `top` prints them.
#[rustfmt::skip]
pub const QUANTITIES: &[Quantity] = &[
    q("ps:tools:blipp:linux:cpu:utilization:user", "cpu user", Unit::Fraction, false, Subjects::Node),
    q("ps:tools:blipp:linux:cpu:utilization:system", "cpu system", Unit::Fraction, false, Subjects::Node),
    q("ps:tools:blipp:linux:cpu:utilization:iowait", "cpu iowait", Unit::Fraction, false, Subjects::Node),
    q("ps:tools:blipp:linux:cpu:load:onemin", "load 1m", Unit::Plain, false, Subjects::Node),
    q("ps:tools:blipp:linux:memory:utilization:used", "mem used", Unit::Kilobytes, false, Subjects::Node),
    q("ps:tools:blipp:linux:memory:utilization:available", "mem available", Unit::Kilobytes, false, Subjects::Node),
    q("ps:tools:blipp:linux:memory:utilization:swap:used", "swap used", Unit::Kilobytes, false, Subjects::Node),
    q("ps:tools:blipp:linux:disk:utilization:iops:read", "disk reads", Unit::PerSecond, false, Subjects::Any),
    q("ps:tools:blipp:linux:disk:utilization:iops:write", "disk writes", Unit::PerSecond, false, Subjects::Any),
    q("ps:tools:blipp:linux:disk:utilization:bytes:read", "disk read", Unit::BytesPerSecond, false, Subjects::Any),
    q("ps:tools:blipp:linux:disk:utilization:bytes:write", "disk write", Unit::BytesPerSecond, false, Subjects::Any),
    q("ps:tools:blipp:linux:disk:utilization:busy", "disk busy", Unit::Fraction, false, Subjects::Any),
    q("ps:tools:blipp:linux:network:utilization:bytes:in", "net in", Unit::BytesPerSecond, true, Subjects::Any),
    q("ps:tools:blipp:linux:network:utilization:bytes:out", "net out", Unit::BytesPerSecond, true, Subjects::Any),
    q("ps:tools:blipp:linux:pressure:cpu:some:avg10", "psi cpu", Unit::Fraction, false, Subjects::Node),
    q("ps:tools:blipp:linux:pressure:memory:some:avg10", "psi memory", Unit::Fraction, false, Subjects::Node),
    q("ps:tools:blipp:linux:pressure:io:some:avg10", "psi io", Unit::Fraction, false, Subjects::Node),
    q("ps:tools:blipp:agent:probe:collect_seconds", "collect", Unit::Seconds, false, Subjects::Any),
];

/// The quantity of `event_type` when `subject` is one `top` keeps.
pub fn watched(event_type: &str, subject: &str) -> Option<(usize, &'static Quantity)> {
    QUANTITIES
        .iter()
        .enumerate()
        .find(|(_, q)| q.event_type == event_type)
        .filter(|(_, q)| q.subjects == Subjects::Any || subject == "node")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_only_quantities_skip_other_subjects() {
        let user = "ps:tools:blipp:linux:cpu:utilization:user";
        assert_eq!(watched(user, "node").map(|(i, _)| i), Some(0));
        assert!(watched(user, "cpu:3").is_none());
        assert!(watched("ps:tools:blipp:linux:disk:utilization:busy", "disk:vda").is_some());
        assert!(watched("ps:tools:blipp:linux:cpu:utilization:nice", "node").is_none());
    }

    #[test]
    fn event_types_are_unique() {
        for (i, a) in QUANTITIES.iter().enumerate() {
            assert!(
                QUANTITIES[i + 1..]
                    .iter()
                    .all(|b| b.event_type != a.event_type),
                "{}",
                a.event_type
            );
        }
    }
}
