//! Cumulative kernel counters turned into per-interval deltas: the one place
//! where wraps and resets are told apart, for every probe.
//!
//! # The rule
//!
//! Every counter has a width, the number of bits the kernel keeps of it:
//!
//! | counter | width |
//! |---|---|
//! | /proc/diskstats millisecond fields (read, write, discard, flush, io, weighted ms) | 32 bits on every architecture (printed from `unsigned int`) |
//! | /proc/diskstats completed, merged, sectors | the kernel's `unsigned long`: 32 or 64 bits |
//! | /proc/net/dev, /proc/net/snmp Tcp and Udp | `unsigned long` (32-bit kernels: many drivers keep 32-bit stats) |
//! | /proc/stat CPU ticks | 64 bits |
//!
//! and a plausible speed, a [`Bound`]: how far it can advance per second
//! at most (milliseconds of I/O time no faster than the clock times the
//! deepest queue, requests no faster than any device completes them, CPU
//! ticks no faster than `USER_HZ` per CPU), plus a constant slack for the
//! jitter between the clock and the kernel's own accounting.
//!
//! Between two reads `prev` and `cur`:
//! - `cur >= prev`: an advance of `cur - prev` if that is within the bound;
//!   a jump beyond it is a **reset** (the counter restarted from another
//!   base, or the value is garbage).
//! - `cur < prev`: a **wrap** if the implied advance `2^width - prev + cur`
//!   is within the bound *and* below half the counter's range (a counter
//!   cannot have gone round more than once unnoticed); otherwise a
//!   **reset** (device re-attached, interface re-created, counters zeroed,
//!   CPU unplugged). A value that does not fit the declared width is never
//!   a wrap.
//!
//! On a reset the caller marks the counter's sample (`reset: true`), emits
//! no rate for that interval, and continues from the new value. An
//! interval's rate is therefore always `delta / seconds` with
//! `0 <= delta <= bound`: never negative and never beyond what the
//! quantity can physically do.
//!
//! Quantities read as values rather than counters (load averages, memory
//! sizes) have their plausible ranges next door, in [`crate::plausible`].

/// How many bits the kernel keeps of a counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Width {
    /// Printed from a 32-bit variable (every millisecond field of
    /// /proc/diskstats on every architecture; `unsigned long` on 32-bit
    /// kernels).
    Bits32,
    /// A 64-bit variable.
    Bits64,
}

impl Width {
    /// The width of a C `unsigned long` on the architecture this agent was
    /// built for; [`Width::kernel_ulong`] asks the running kernel instead.
    pub const ULONG: Width = if cfg!(target_pointer_width = "64") {
        Width::Bits64
    } else {
        Width::Bits32
    };

    /// The width of `unsigned long` for a kernel whose `uname -m` is
    /// `machine`. The kernel's word size is what matters, not the agent's:
    /// a 32-bit agent on a 64-bit kernel reads 64-bit counters.
    pub fn ulong_of_machine(machine: &str) -> Width {
        const WIDE: [&str; 9] = [
            "x86_64",
            "aarch64",
            "ppc64",
            "s390x",
            "riscv64",
            "mips64",
            "sparc64",
            "loongarch64",
            "alpha",
        ];
        if WIDE.iter().any(|w| machine.starts_with(w)) || machine == "ia64" {
            Width::Bits64
        } else if machine.is_empty() {
            Width::ULONG
        } else {
            Width::Bits32
        }
    }

    /// The running kernel's `unsigned long` width (from `uname(2)`; the
    /// agent's own when that fails).
    pub fn kernel_ulong() -> Width {
        crate::host::uname().map_or(Width::ULONG, |u| Width::ulong_of_machine(&u.machine))
    }

    /// Number of distinct values (`2^width`), as u128 to hold 2^64.
    fn modulus(self) -> u128 {
        match self {
            Width::Bits32 => 1 << 32,
            Width::Bits64 => 1 << 64,
        }
    }
}

/// How fast a quantity can plausibly advance.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bound {
    /// Largest advance per second.
    pub per_second: f64,
    /// Added to every interval's bound: clock jitter, rounding to ticks.
    pub slack: u64,
}

impl Bound {
    /// A bound of `per_second` plus `slack`.
    pub const fn new(per_second: f64, slack: u64) -> Self {
        Self { per_second, slack }
    }

    /// The largest plausible advance over `seconds` (saturating).
    pub fn over(self, seconds: f64) -> u64 {
        // `as` saturates float-to-int conversions (NaN gives 0).
        let moved = (self.per_second * seconds.max(0.0)) as u64;
        moved.saturating_add(self.slack)
    }
}

/// What happened to a counter between two reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delta {
    /// It advanced by this much.
    Advanced(u64),
    /// It wrapped around once and advanced by this much in total.
    Wrapped(u64),
    /// It went backwards, or jumped forwards, in a way no wrap explains.
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
    /// `None` on the first one. After a reset the new value is the base.
    pub fn update(&mut self, cur: u64, width: Width, max_plausible: u64) -> Option<Delta> {
        let out = self.prev.map(|prev| delta(prev, cur, width, max_plausible));
        self.prev = Some(cur);
        out
    }

    /// [`Counter::update`] with the bound of `seconds`; `None` for the
    /// seconds means the first reading of the probe.
    pub fn observe(
        &mut self,
        cur: u64,
        width: Width,
        bound: Bound,
        seconds: Option<f64>,
    ) -> Observed {
        let delta = match seconds {
            Some(s) => self.update(cur, width, bound.over(s)),
            None => {
                self.prev = Some(cur);
                None
            }
        };
        Observed { delta }
    }

    /// Forgets the previous reading (the next one is a first reading).
    pub fn clear(&mut self) {
        self.prev = None;
    }
}

/// The outcome of one [`Counter::observe`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// `None` on a first reading.
    pub delta: Option<Delta>,
}

impl Observed {
    /// The counter was reset: its sample is marked and no rate is emitted.
    pub fn is_reset(self) -> bool {
        self.delta == Some(Delta::Reset)
    }

    /// The advance over the interval, when there is one to trust.
    pub fn advance(self) -> Option<u64> {
        self.delta.and_then(Delta::value)
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
        // Even an unbounded quantity cannot wrap more than half its range.
        assert_eq!(delta(1 << 31, 0, Width::Bits32, u64::MAX), Delta::Reset);
        assert_eq!(
            delta((1 << 31) + 1, 0, Width::Bits32, u64::MAX),
            Delta::Wrapped((1 << 31) - 1)
        );
    }

    #[test]
    fn machine_widths() {
        assert_eq!(Width::ulong_of_machine("x86_64"), Width::Bits64);
        assert_eq!(Width::ulong_of_machine("aarch64"), Width::Bits64);
        assert_eq!(Width::ulong_of_machine("ppc64le"), Width::Bits64);
        assert_eq!(Width::ulong_of_machine("i686"), Width::Bits32);
        assert_eq!(Width::ulong_of_machine("armv7l"), Width::Bits32);
        assert_eq!(Width::ulong_of_machine("mips"), Width::Bits32);
        let here = std::fs::read_to_string("/proc/sys/kernel/arch").ok();
        if let Some(arch) = here {
            assert_eq!(
                Width::kernel_ulong(),
                Width::ulong_of_machine(arch.trim()),
                "uname agrees with /proc/sys/kernel/arch"
            );
        }
    }

    #[test]
    fn observe_first_reading_and_reset() {
        let bound = Bound::new(100.0, 10);
        assert_eq!(bound.over(2.0), 210);
        assert_eq!(bound.over(f64::NAN), 10);
        let mut c = Counter::default();
        assert_eq!(c.observe(50, Width::Bits64, bound, None).delta, None);
        let o = c.observe(250, Width::Bits64, bound, Some(2.0));
        assert_eq!((o.advance(), o.is_reset()), (Some(200), false));
        let o = c.observe(10, Width::Bits64, bound, Some(2.0));
        assert_eq!((o.advance(), o.is_reset()), (None, true));
        let o = c.observe(20, Width::Bits64, bound, Some(1.0));
        assert_eq!(o.advance(), Some(10), "counts again from the new base");
    }

    /// One step of a simulated counter: how far it truly moved, or a reset
    /// to an arbitrary value.
    #[derive(Clone, Debug)]
    enum Step {
        Advance(u64),
        ResetTo(u64),
    }

    /// Steps of a counter that advances at most `max_step` per interval
    /// (less than half its range: a counter that goes round more than that
    /// between two reads cannot be measured by any reader), with occasional
    /// resets to any value of the width.
    fn steps(max_step: u64, modulus: u128) -> impl Strategy<Value = Vec<(Step, f64)>> {
        let top = u64::try_from(modulus - 1).unwrap_or(u64::MAX);
        let step = prop_oneof![
            8 => (0..=max_step).prop_map(Step::Advance),
            1 => (0..=top).prop_map(Step::ResetTo),
            1 => (0u64..1000).prop_map(Step::ResetTo),
        ];
        proptest::collection::vec((step, 0.5f64..30.0), 1..200)
    }

    /// Drives a counter of `width` through `steps` at a plausible speed of
    /// `per_second`: every true advance is reported exactly, and no
    /// reported advance (hence no rate) is negative or beyond the bound.
    fn check_width(width: Width, start: u64, steps: Vec<(Step, f64)>, per_second: f64) {
        let modulus = width.modulus();
        let bound = Bound::new(per_second, 0);
        let mut value = u64::try_from(u128::from(start) % modulus).unwrap();
        let mut counter = Counter::default();
        assert_eq!(counter.observe(value, width, bound, None).delta, None);
        for (step, seconds) in steps {
            let limit = bound.over(seconds);
            let truth = match step {
                Step::Advance(d) => {
                    let d = d.min(limit);
                    value = u64::try_from((u128::from(value) + u128::from(d)) % modulus).unwrap();
                    Some(d)
                }
                Step::ResetTo(v) => {
                    value = v;
                    None
                }
            };
            let got = counter.observe(value, width, bound, Some(seconds));
            let rate = got.advance().map(|d| d as f64 / seconds);
            if let Some(r) = rate {
                assert!(r >= 0.0, "negative rate {r}");
                assert!(
                    r <= per_second * 1.000_001,
                    "rate {r} beyond {per_second}/s"
                );
            }
            match (got.delta, truth) {
                (Some(Delta::Advanced(d) | Delta::Wrapped(d)), Some(t)) => assert_eq!(d, t),
                (Some(Delta::Reset), Some(t)) => {
                    panic!("a plausible step of {t} was called a reset")
                }
                // A reset that happens to look like a plausible step cannot be
                // told apart; it still yields no more than the bound.
                (Some(Delta::Advanced(d) | Delta::Wrapped(d)), None) => assert!(d <= limit),
                (Some(Delta::Reset), None) => {}
                (None, _) => panic!("no delta after the first reading"),
            }
        }
    }

    proptest! {
        /// 32-bit millisecond fields: io time advancing up to 1000 ms/s with
        /// 5% jitter, wrapping at 2^32 about every 49 days of I/O time.
        #[test]
        fn bits32_ms_fields(start in any::<u64>(), steps in steps(40_000, 1 << 32)) {
            check_width(Width::Bits32, start, steps, 1050.0);
        }

        /// 32-bit weighted time: up to 65536 requests in flight, so it can
        /// wrap within hours.
        #[test]
        fn bits32_weighted_ms(start in any::<u64>(), steps in steps((1 << 31) - 1, 1 << 32)) {
            check_width(Width::Bits32, start, steps, 65536.0 * 1000.0);
        }

        /// 32-bit `unsigned long` byte counters of a fast link.
        #[test]
        fn bits32_ulong_bytes(start in any::<u64>(), steps in steps((1 << 31) - 1, 1 << 32)) {
            check_width(Width::Bits32, start, steps, 2e11);
        }

        /// 64-bit counters (sectors, requests, CPU ticks) starting anywhere,
        /// including just below 2^64.
        #[test]
        fn bits64_counters(
            start in prop_oneof![any::<u64>(), (u64::MAX - 1_000_000)..=u64::MAX],
            steps in steps(1 << 40, 1 << 64),
        ) {
            check_width(Width::Bits64, start, steps, 128.0 * 1024.0 * 1024.0 * 1024.0);
        }
    }
}
