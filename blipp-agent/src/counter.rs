//! Cumulative kernel counters turned into per-interval deltas: the one place
//! where wraps and resets are told apart.
//!
//! The rule: the probe says how far the counter could plausibly have moved
//! in the interval (`max_plausible`, derived from the elapsed time and the
//! quantity: milliseconds cannot pass faster than the clock times the queue
//! depth, bytes not faster than the link). When a counter reads lower than
//! before, the implied delta of a wrap is `(2^width - prev) + cur`; that is a
//! wrap only if it is plausible and smaller than half the counter's range.
//! An advance beyond the plausible bound, or a drop no wrap explains, is a
//! reset (device re-attached, counters zeroed, CPU unplugged): the
//! caller gets [`Delta::Reset`], emits no rate for that interval and starts
//! again from the new value.

/// How many bits the kernel keeps of a counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Width {
    /// Printed from a 32-bit variable (every millisecond field of
    /// /proc/diskstats on every architecture).
    Bits32,
    /// A 64-bit variable.
    Bits64,
}

impl Width {
    /// The width of a C `unsigned long` on the running kernel's architecture.
    pub const ULONG: Width = if cfg!(target_pointer_width = "64") {
        Width::Bits64
    } else {
        Width::Bits32
    };

    /// Number of distinct values (`2^width`), as u128 to hold 2^64.
    fn modulus(self) -> u128 {
        match self {
            Width::Bits32 => 1 << 32,
            Width::Bits64 => 1 << 64,
        }
    }
}

/// What happened to a counter between two reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delta {
    /// It advanced by this much.
    Advanced(u64),
    /// It wrapped around once and advanced by this much in total.
    Wrapped(u64),
    /// It went backwards in a way no wrap explains.
    Reset,
}

impl Delta {
    /// The advance, unless the counter was reset.
    pub fn value(self) -> Option<u64> {
        match self {
            Delta::Advanced(d) | Delta::Wrapped(d) => Some(d),
            Delta::Reset => None,
        }
    }
}

/// Classifies the change from `prev` to `cur` (see the module docs).
pub fn delta(prev: u64, cur: u64, width: Width, max_plausible: u64) -> Delta {
    if cur >= prev {
        // A jump beyond what the interval allows is a reset to a higher base
        // (or garbage), not an advance.
        let advance = cur - prev;
        return if advance <= max_plausible {
            Delta::Advanced(advance)
        } else {
            Delta::Reset
        };
    }
    let modulus = width.modulus();
    if u128::from(prev) >= modulus || u128::from(cur) >= modulus {
        // A value that does not fit the declared width cannot have wrapped at it.
        return Delta::Reset;
    }
    let implied = modulus - u128::from(prev) + u128::from(cur);
    if implied <= u128::from(max_plausible) && implied < modulus / 2 {
        // `implied < 2^63` here, so it fits.
        Delta::Wrapped(u64::try_from(implied).unwrap_or(u64::MAX))
    } else {
        Delta::Reset
    }
}

/// One counter's last reading.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counter {
    prev: Option<u64>,
}

impl Counter {
    /// Records `cur`; returns the change since the previous reading, or
    /// `None` on the first one.
    pub fn update(&mut self, cur: u64, width: Width, max_plausible: u64) -> Option<Delta> {
        let out = self.prev.map(|prev| delta(prev, cur, width, max_plausible));
        self.prev = Some(cur);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn advance_wrap_reset() {
        assert_eq!(delta(10, 15, Width::Bits32, 100), Delta::Advanced(5));
        assert_eq!(delta(10, 500, Width::Bits64, 100), Delta::Reset);
        // 32-bit ms field wrapping: 2^32 - 10 -> 20 is 30 ms later.
        assert_eq!(
            delta((1 << 32) - 10, 20, Width::Bits32, 1000),
            Delta::Wrapped(30)
        );
        // Same drop on a 64-bit counter: a reset.
        assert_eq!(delta((1 << 32) - 10, 20, Width::Bits64, 1000), Delta::Reset);
        // A 32-bit drop whose implied delta exceeds what the interval allows.
        assert_eq!(delta(1_000_000, 20, Width::Bits32, 1000), Delta::Reset);
        // A value above the declared width is never a wrap.
        assert_eq!(delta(1 << 40, 5, Width::Bits32, u64::MAX), Delta::Reset);
        assert_eq!(delta(u64::MAX - 1, 3, Width::Bits64, 10), Delta::Wrapped(5));
    }

    proptest! {
        /// A counter stepping by bounded increments, with wraps at its width
        /// and random resets: every true step is reported exactly and no
        /// delta ever exceeds the plausible bound.
        #[test]
        fn never_impossible(
            start in any::<u64>(),
            steps in proptest::collection::vec((0u64..5_000, any::<bool>(), 0u64..1_000_000), 1..200),
            wide in any::<bool>(),
        ) {
            let width = if wide { Width::Bits64 } else { Width::Bits32 };
            let modulus = width.modulus();
            let mut value = u64::try_from(u128::from(start) % modulus).unwrap();
            let mut counter = Counter::default();
            counter.update(value, width, 5_000);
            for (step, reset, reset_to) in steps {
                let truth = if reset {
                    value = reset_to;
                    None
                } else {
                    value = u64::try_from((u128::from(value) + u128::from(step)) % modulus).unwrap();
                    Some(step)
                };
                let got = counter.update(value, width, 5_000).unwrap();
                match (got, truth) {
                    (Delta::Advanced(d) | Delta::Wrapped(d), Some(t)) => prop_assert_eq!(d, t),
                    // A reset that happens to look like a small step cannot be
                    // told apart, but it can never produce more than the bound.
                    (Delta::Advanced(d) | Delta::Wrapped(d), None) => prop_assert!(d <= 5_000),
                    (Delta::Reset, Some(_)) => prop_assert!(false, "a plausible step was called a reset"),
                    (Delta::Reset, None) => {}
                }
            }
        }
    }
}
