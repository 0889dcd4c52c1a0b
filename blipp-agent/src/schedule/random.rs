//! `builtins.random`: collections at random intervals between `low` and
//! `high` seconds, which the original BLiPP's sample configuration asked
//! for (`{"low": 10, "high": 60, "distribution": "poisson"}`) and never
//! implemented. Random sampling keeps a probe from locking in phase with
//! periodic activity on the host (cron jobs, other agents) and measures
//! what a fixed grid would always miss.
//!
//! Each gap to the next collection is drawn on its own:
//!
//! - `uniform` (the default): uniformly in `[low, high]`;
//! - `exponential`, or its alias `poisson`: `low` plus an exponentially
//!   distributed wait with mean `(high − low) / 2`, truncated at `high`
//!   (drawn by inverting the truncated distribution, so there is no
//!   rejection loop). Without the bounds, exponential gaps make the
//!   collection instants a Poisson process — memoryless, the sampling RFC
//!   2330 recommends for measurements that must not be predictable; the
//!   floor keeps probes from running back to back and the ceiling bounds
//!   the longest blind spot.

use std::time::Duration;

use crate::sample::Timestamp;

/// How gaps are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Distribution {
    /// Uniform in `[low, high]`.
    Uniform,
    /// `low` + exponential (mean `(high − low) / 2`), truncated at `high`.
    Exponential,
}

impl Distribution {
    /// The distribution a `distribution` parameter names.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "uniform" => Some(Self::Uniform),
            "exponential" | "poisson" => Some(Self::Exponential),
            _ => None,
        }
    }
}

/// The parameters of a random schedule.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Random {
    /// The shortest gap.
    pub low: Duration,
    /// The longest gap.
    pub high: Duration,
    /// How gaps are drawn.
    pub distribution: Distribution,
    /// First collection (default: now).
    pub start: Option<Timestamp>,
    /// No collection after this.
    pub end: Option<Timestamp>,
}

impl Random {
    /// One gap, in µs, from a uniform `u` in `[0, 1)`.
    pub fn gap(&self, u: f64) -> u64 {
        let low = self.low.as_secs_f64();
        let width = self.high.as_secs_f64() - low;
        let extra = match self.distribution {
            Distribution::Uniform => u * width,
            Distribution::Exponential if width > 0.0 => {
                // Inverse CDF of the exponential with rate λ truncated to
                // [0, width]: x = −ln(1 − u·(1 − e^(−λ·width))) / λ.
                let rate = 2.0 / width;
                let mass = -(-rate * width).exp_m1();
                -(-u * mass).ln_1p() / rate
            }
            Distribution::Exponential => 0.0,
        };
        // Rounding must not leave [low, high].
        let secs = (low + extra.clamp(0.0, width)).max(low);
        let micros = (secs * 1e6).round() as u64;
        let (lo, hi) = (self.low.as_micros(), self.high.as_micros());
        u64::try_from(u128::from(micros).clamp(lo, hi)).unwrap_or(u64::MAX)
    }
}

/// The instants of a random schedule.
#[derive(Clone, Debug)]
pub struct RandomInstants {
    params: Random,
    next: Timestamp,
    rng: fastrand::Rng,
}

impl RandomInstants {
    /// Instants from `start` (or `now`) on, gaps drawn with `rng`.
    pub fn new(params: Random, now: Timestamp, rng: fastrand::Rng) -> Self {
        Self {
            next: params.start.unwrap_or(now),
            params,
            rng,
        }
    }

    /// The next instant at or after `now`'s standards: one less than the
    /// longest gap late is collected at once; one later than that (a
    /// suspend) is dropped and the schedule goes on from `now`.
    pub fn next_after(&mut self, now: Timestamp) -> Option<Timestamp> {
        let high = u64::try_from(self.params.high.as_micros()).unwrap_or(u64::MAX);
        if self.next.0.saturating_add(high) < now.0 {
            self.next = now;
        }
        self.next()
    }
}

impl Iterator for RandomInstants {
    type Item = Timestamp;

    fn next(&mut self) -> Option<Timestamp> {
        let t = self.next;
        if self.params.end.is_some_and(|end| t > end) {
            return None;
        }
        let gap = self.params.gap(self.rng.f64());
        self.next = Timestamp(t.0.saturating_add(gap));
        Some(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn params(low: f64, high: f64, distribution: Distribution) -> Random {
        Random {
            low: Duration::from_secs_f64(low),
            high: Duration::from_secs_f64(high),
            distribution,
            start: None,
            end: None,
        }
    }

    fn gaps(p: Random, seed: u64, n: usize) -> Vec<f64> {
        let it = RandomInstants::new(p, Timestamp(1_000_000_000), fastrand::Rng::with_seed(seed));
        let t: Vec<u64> = it.take(n + 1).map(|t| t.0).collect();
        t.windows(2).map(|w| (w[1] - w[0]) as f64 / 1e6).collect()
    }

    #[test]
    fn uniform_gaps_spread_over_the_range() {
        let g = gaps(params(10.0, 60.0, Distribution::Uniform), 7, 10_000);
        let mean = g.iter().sum::<f64>() / g.len() as f64;
        assert!((mean - 35.0).abs() < 1.0, "mean {mean}");
        let below_20 = g.iter().filter(|&&x| x < 20.0).count() as f64 / g.len() as f64;
        assert!((below_20 - 0.2).abs() < 0.02, "{below_20}");
    }

    #[test]
    fn exponential_gaps_follow_the_truncated_law() {
        let g = gaps(params(10.0, 60.0, Distribution::Exponential), 11, 20_000);
        // Extra wait x = gap − 10 is Exp(rate 2/50 = 0.04) truncated to
        // [0, 50]: P(x ≤ 25) = (1 − e^−1) / (1 − e^−2) = 0.7311, and the
        // mean is 1/rate − 50·e^−2 / (1 − e^−2) = 25 − 7.83 = 17.17.
        let below = g.iter().filter(|&&x| x - 10.0 <= 25.0).count() as f64 / g.len() as f64;
        assert!((below - 0.7311).abs() < 0.015, "{below}");
        let mean = g.iter().map(|x| x - 10.0).sum::<f64>() / g.len() as f64;
        assert!((mean - 17.17).abs() < 0.5, "mean {mean}");
        assert_eq!(
            Distribution::from_name("poisson"),
            Some(Distribution::Exponential)
        );
    }

    #[test]
    fn same_seed_same_instants_and_end() {
        let mut p = params(1.0, 2.0, Distribution::Uniform);
        assert_eq!(gaps(p, 3, 50), gaps(p, 3, 50));
        assert_ne!(gaps(p, 3, 50), gaps(p, 4, 50));
        p.start = Some(Timestamp(100_000_000));
        p.end = Some(Timestamp(110_000_000));
        let all: Vec<Timestamp> =
            RandomInstants::new(p, Timestamp(0), fastrand::Rng::with_seed(1)).collect();
        assert_eq!(all[0], Timestamp(100_000_000));
        assert!(all.len() >= 6 && all.len() <= 11, "{all:?}");
        assert!(all.iter().all(|t| t.0 <= 110_000_000));
    }

    #[test]
    fn a_suspend_does_not_burst() {
        let p = params(1.0, 2.0, Distribution::Uniform);
        let mut it = RandomInstants::new(p, Timestamp(0), fastrand::Rng::with_seed(5));
        assert_eq!(it.next_after(Timestamp(0)), Some(Timestamp(0)));
        // An hour later: collect now, then go on from there.
        let now = Timestamp(3_600_000_000);
        assert_eq!(it.next_after(now), Some(now));
        let next = it.next_after(now).unwrap();
        assert!(next.0 >= now.0 + 1_000_000 && next.0 <= now.0 + 2_000_000);
    }

    proptest! {
        #[test]
        fn instants_stay_within_bounds(
            low in 0.0f64..1000.0,
            width in 0.0f64..1000.0,
            exponential in any::<bool>(),
            seed in any::<u64>(),
        ) {
            let dist = if exponential { Distribution::Exponential } else { Distribution::Uniform };
            let p = params(low, low + width, dist);
            let (lo, hi) = (p.low.as_micros() as u64, p.high.as_micros() as u64);
            let it = RandomInstants::new(p, Timestamp(5), fastrand::Rng::with_seed(seed));
            let t: Vec<u64> = it.take(200).map(|t| t.0).collect();
            for w in t.windows(2) {
                let gap = w[1] - w[0];
                prop_assert!(gap >= lo && gap <= hi, "gap {gap} not in [{lo}, {hi}]");
            }
        }

        #[test]
        fn gap_is_bounded_for_any_u(u in 0.0f64..1.0, low in 0.0f64..100.0, width in 0.0f64..100.0) {
            for dist in [Distribution::Uniform, Distribution::Exponential] {
                let p = params(low, low + width, dist);
                let g = p.gap(u);
                prop_assert!(u128::from(g) >= p.low.as_micros() && u128::from(g) <= p.high.as_micros());
            }
        }
    }
}
