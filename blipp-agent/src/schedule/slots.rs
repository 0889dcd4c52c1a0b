//! Time slots (`{"start": ..., "end": ...}`, RFC 3339 date-times as UNIS
//! stores a measurement's `scheduled_times`) and `builtins.scheduled`:
//! collections every `every` seconds inside each slot, as the original
//! BLiPP ran them — the first at the slot's start (or at once when the
//! slot has begun), the next `every` later, none at or after its end.

use std::time::Duration;

use serde_json::Value;

use crate::rfc3339;
use crate::sample::Timestamp;

/// A half-open time slot `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Slot {
    /// First instant inside.
    pub start: Timestamp,
    /// First instant after.
    pub end: Timestamp,
}

impl Slot {
    /// Whether the two slots share an instant.
    pub fn overlaps(&self, other: &Slot) -> bool {
        self.start < other.end && other.start < self.end
    }

    /// `{"start": ..., "end": ...}` as UNIS stores it.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "start": rfc3339::format(self.start),
            "end": rfc3339::format(self.end),
        })
    }
}

/// Reads a list of slots; the error names the offending value.
pub fn parse_slots(value: &Value) -> Result<Vec<Slot>, (Value, String)> {
    let list = value.as_array().ok_or_else(|| {
        (
            value.clone(),
            "a list of {\"start\", \"end\"} time slots".to_owned(),
        )
    })?;
    list.iter()
        .map(|item| {
            let time = |key: &str| {
                let text = item.get(key).and_then(Value::as_str).ok_or_else(|| {
                    (
                        item.clone(),
                        format!("scheduled_times: each slot needs a {key} date-time"),
                    )
                })?;
                rfc3339::parse(text).map_err(|e| (item.clone(), format!("scheduled_times: {e}")))
            };
            let slot = Slot {
                start: time("start")?,
                end: time("end")?,
            };
            if slot.end <= slot.start {
                return Err((
                    item.clone(),
                    "scheduled_times: a slot must end after it starts".to_owned(),
                ));
            }
            Ok(slot)
        })
        .collect()
}

/// The instants of `builtins.scheduled`.
#[derive(Clone, Debug)]
pub struct SlotInstants {
    /// Sorted by start.
    slots: Vec<Slot>,
    index: usize,
    every: u64,
    /// The earliest the next instant may be (the last one + every).
    next: Option<Timestamp>,
}

impl SlotInstants {
    /// Instants every `every` inside each of `slots`.
    pub fn new(mut slots: Vec<Slot>, every: Duration) -> Self {
        slots.sort_unstable();
        Self {
            slots,
            index: 0,
            every: u64::try_from(every.as_micros()).unwrap_or(u64::MAX).max(1),
            next: None,
        }
    }

    /// The next instant given that it is `now`: a late one is collected at
    /// once, slots that have ended are skipped, and the instants stay in
    /// order when slots overlap.
    pub fn next_after(&mut self, now: Timestamp) -> Option<Timestamp> {
        while let Some(slot) = self.slots.get(self.index) {
            let t = self.next.unwrap_or(slot.start).max(slot.start).max(now);
            if t < slot.end {
                self.next = Some(Timestamp(t.0.saturating_add(self.every)));
                return Some(t);
            }
            self.index += 1;
        }
        None
    }
}

impl Iterator for SlotInstants {
    type Item = Timestamp;

    /// The planned instants, without a clock.
    fn next(&mut self) -> Option<Timestamp> {
        self.next_after(Timestamp(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn s(secs: u64) -> Timestamp {
        Timestamp(1_398_945_600_000_000 + secs * 1_000_000)
    }

    fn secs(t: Timestamp) -> u64 {
        (t.0 - 1_398_945_600_000_000) / 1_000_000
    }

    #[test]
    fn every_inside_each_slot() {
        let slots = parse_slots(&json!([
            {"start": "2014-05-01T12:01:00Z", "end": "2014-05-01T12:01:10Z"},
            {"start": "2014-05-01T12:00:00Z", "end": "2014-05-01T12:00:07Z"},
        ]))
        .unwrap();
        let got: Vec<u64> = SlotInstants::new(slots, Duration::from_secs(3))
            .map(secs)
            .collect();
        assert_eq!(got, [0, 3, 6, 60, 63, 66, 69]);
    }

    #[test]
    fn late_and_overlapping() {
        let slots = vec![
            Slot {
                start: s(0),
                end: s(10),
            },
            Slot {
                start: s(5),
                end: s(20),
            },
            Slot {
                start: s(30),
                end: s(40),
            },
        ];
        let mut it = SlotInstants::new(slots, Duration::from_secs(4));
        // Started late, inside the first slot: at once.
        assert_eq!(it.next_after(s(2)).map(secs), Some(2));
        assert_eq!(it.next_after(s(2)).map(secs), Some(6));
        // The first slot ends at 10: 10 belongs to the second one.
        assert_eq!(it.next_after(s(7)).map(secs), Some(10));
        // A long stall: the rest of the second slot is gone.
        assert_eq!(it.next_after(s(25)).map(secs), Some(30));
        assert_eq!(it.next_after(s(31)).map(secs), Some(34));
        assert_eq!(it.next_after(s(39)).map(secs), Some(39));
        assert_eq!(it.next_after(s(39)), None);
    }

    #[test]
    fn bad_slots() {
        for bad in [
            json!({}),
            json!([{"start": "2014-05-01T12:00:00Z"}]),
            json!([{"start": "2014-05-01T12:00:00Z", "end": "2014-05-01T11:00:00Z"}]),
            json!([{"start": "yesterday", "end": "2014-05-01T11:00:00Z"}]),
        ] {
            assert!(parse_slots(&bad).is_err(), "{bad}");
        }
        let slot = Slot {
            start: s(0),
            end: s(1),
        };
        assert_eq!(parse_slots(&json!([slot.to_json()])).unwrap(), [slot]);
    }
}
