//! User side of the counting programs: rule slots shared by every
//! `counting` probe, and each rule's packets and bytes since its probe
//! took the slot.

use std::sync::Mutex;

use aya::maps::{Array, MapData, PerCpuArray};
use blipp_common::net::{CountRule, MAX_COUNT_RULES, Traffic};

use super::{EbpfError, Kernel, ProgramHandle};

/// The counting programs.
pub const COUNT_PROGRAMS: [&str; 2] = ["count_receive", "count_transmit"];

const RULES: &str = "COUNT_RULES";
const COUNTS: &str = "COUNTS";

/// Which rule slots are taken, one bit each: the map is the object's, so
/// shared by every probe of the process.
static TAKEN: Mutex<u32> = Mutex::new(0);

fn map_err(map: &'static str) -> impl Fn(aya::maps::MapError) -> EbpfError {
    move |e| EbpfError::Map {
        map,
        source: Box::new(e),
    }
}

/// The lowest `n` free slots of `taken`, or `None` when fewer are free.
fn free_slots(taken: u32, n: usize) -> Option<Vec<u32>> {
    let free: Vec<u32> = (0..MAX_COUNT_RULES)
        .filter(|i| taken & (1 << i) == 0)
        .take(n)
        .collect();
    (free.len() == n).then_some(free)
}

/// One probe's rules in the kernel: their slots, and the counts the slots
/// held when it took them. Dropping it turns the rules off and frees the
/// slots.
pub struct CountMaps {
    rules: Array<MapData, CountRule>,
    counts: PerCpuArray<MapData, Traffic>,
    slots: Vec<u32>,
    origin: Vec<Traffic>,
    /// The attached programs.
    pub programs: Vec<ProgramHandle>,
}

impl CountMaps {
    /// Attaches the counting programs and writes `rules` into free slots.
    pub fn attach(kernel: &mut Kernel, rules: &[CountRule]) -> Result<Self, EbpfError> {
        let mut programs = Vec::new();
        for p in COUNT_PROGRAMS {
            programs.push(kernel.attach(p)?);
        }
        let rule_map = Array::try_from(kernel.map(RULES)?).map_err(map_err(RULES))?;
        let counts = PerCpuArray::try_from(kernel.map(COUNTS)?).map_err(map_err(COUNTS))?;
        let slots = {
            let mut taken = TAKEN.lock().unwrap_or_else(|e| e.into_inner());
            let slots = free_slots(*taken, rules.len()).ok_or_else(|| {
                EbpfError::Failed(format!(
                    "no room for {} more counting rules ({MAX_COUNT_RULES} in all)",
                    rules.len()
                ))
            })?;
            for s in &slots {
                *taken |= 1 << s;
            }
            slots
        };
        let mut this = Self {
            rules: rule_map,
            counts,
            slots,
            origin: Vec::new(),
            programs,
        };
        for (slot, rule) in this.slots.iter().zip(rules) {
            let rule = CountRule { active: 1, ..*rule };
            this.rules.set(*slot, rule, 0).map_err(map_err(RULES))?;
        }
        // What a slot counted for an earlier owner is not this probe's.
        this.origin = this.raw()?;
        Ok(this)
    }

    /// Each slot's counts summed over the CPUs, as the kernel holds them.
    fn raw(&self) -> Result<Vec<Traffic>, EbpfError> {
        self.slots
            .iter()
            .map(|slot| {
                let per_cpu = self.counts.get(slot, 0).map_err(map_err(COUNTS))?;
                Ok(per_cpu.iter().fold(Traffic::ZERO, |t, c| Traffic {
                    packets: t.packets.wrapping_add(c.packets),
                    bytes: t.bytes.wrapping_add(c.bytes),
                }))
            })
            .collect()
    }

    /// Each rule's packets and bytes since this probe took its slot, in
    /// the order the rules were given, into `out`.
    pub fn totals(&self, out: &mut Vec<Traffic>) -> Result<(), EbpfError> {
        out.clear();
        for (now, origin) in self.raw()?.into_iter().zip(&self.origin) {
            out.push(Traffic {
                packets: now.packets.wrapping_sub(origin.packets),
                bytes: now.bytes.wrapping_sub(origin.bytes),
            });
        }
        Ok(())
    }
}

impl Drop for CountMaps {
    fn drop(&mut self) {
        let mut taken = TAKEN.lock().unwrap_or_else(|e| e.into_inner());
        for slot in &self.slots {
            if let Err(e) = self.rules.set(*slot, CountRule::default(), 0) {
                // The slot stays taken: a rule still counting must not be
                // handed to another probe as if it were fresh.
                tracing::warn!(slot, error = %e, "could not turn a counting rule off");
                continue;
            }
            *taken &= !(1 << slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_the_lowest_free_ones() {
        assert_eq!(free_slots(0, 2), Some(vec![0, 1]));
        assert_eq!(free_slots(0b101, 2), Some(vec![1, 3]));
        assert_eq!(free_slots(0, 0), Some(vec![]));
        assert_eq!(free_slots(u32::MAX >> 16 << 16 | 0x7fff, 1), Some(vec![15]));
        assert_eq!(free_slots(0xffff, 1), None);
        assert_eq!(free_slots(0, MAX_COUNT_RULES as usize + 1), None);
    }
}
