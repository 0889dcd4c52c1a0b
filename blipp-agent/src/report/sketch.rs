//! Quantiles of a window's values with bounded memory and a stated error:
//! a log-bucketed sketch (the DDSketch construction). A value `x > 0` goes
//! to bucket `ceil(log_γ x)` with `γ = (1 + α) / (1 − α)`; a quantile is
//! read as the bucket's midpoint `2γ^i / (γ + 1)`, which is within a
//! relative error `α` of the true value of that rank. Negative values
//! have their own buckets, zero its own count.
//!
//! Buckets are kept dense over the range of indices seen (a `Vec` that
//! grows at either end), which the values of one series in one window
//! keep narrow; past [`MAX_BUCKETS`] the lowest buckets are merged into
//! one (their quantiles lose the bound; the high ones, which maxima and
//! p99 read, keep it). `clear` keeps the allocation, so steady state
//! allocates nothing per sample.

/// Relative accuracy of every quantile read: 1 %.
pub const ALPHA: f64 = 0.01;

/// Most buckets per sign (at 1 %, a range of about 1e-17 to 1e17).
pub const MAX_BUCKETS: usize = 4096;

/// Counts per bucket index over a contiguous range.
#[derive(Clone, Debug, Default)]
struct Store {
    /// Index of `counts[0]`.
    offset: i32,
    counts: Vec<u64>,
    total: u64,
}

impl Store {
    fn add(&mut self, index: i32) {
        if self.counts.is_empty() {
            self.offset = index;
            self.counts.push(0);
        }
        if index < self.offset {
            let grow = (self.offset - index) as usize;
            if self.counts.len() + grow > MAX_BUCKETS {
                // Collapse: values below the kept range count in its
                // lowest bucket.
                self.counts[0] += 1;
                self.total += 1;
                return;
            }
            self.counts.splice(0..0, std::iter::repeat_n(0, grow));
            self.offset = index;
        }
        let at = (index - self.offset) as usize;
        if at >= self.counts.len() {
            let want = at + 1;
            if want > MAX_BUCKETS {
                // Keep the high end: merge the lowest buckets.
                let drop = want - MAX_BUCKETS;
                let merged: u64 = self.counts.drain(..drop.min(self.counts.len())).sum();
                if let Some(first) = self.counts.first_mut() {
                    *first += merged;
                } else {
                    self.counts.push(merged);
                }
                self.offset += drop as i32;
                return self.add(index);
            }
            self.counts.resize(want, 0);
        }
        self.counts[at] += 1;
        self.total += 1;
    }

    /// The index holding the `rank`-th value (0-based), from the lowest.
    fn index_of(&self, rank: u64) -> Option<i32> {
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen > rank {
                return Some(self.offset + i as i32);
            }
        }
        None
    }

    fn clear(&mut self) {
        self.counts.clear();
        self.total = 0;
    }
}

/// The sketch of one series' values in one window.
#[derive(Clone, Debug, Default)]
pub struct Sketch {
    positive: Store,
    negative: Store,
    zeros: u64,
}

fn gamma() -> f64 {
    (1.0 + ALPHA) / (1.0 - ALPHA)
}

fn index(x: f64) -> i32 {
    (x.ln() / gamma().ln()).ceil() as i32
}

fn value(i: i32) -> f64 {
    let g = gamma();
    2.0 * g.powi(i) / (g + 1.0)
}

impl Sketch {
    /// Adds a value (non-finite values are not values and are skipped).
    pub fn add(&mut self, x: f64) {
        if !x.is_finite() {
            return;
        }
        if x > 0.0 {
            self.positive.add(index(x));
        } else if x < 0.0 {
            self.negative.add(index(-x));
        } else {
            self.zeros += 1;
        }
    }

    /// How many values it holds.
    pub fn count(&self) -> u64 {
        self.positive.total + self.negative.total + self.zeros
    }

    /// The `q`-quantile (0 to 1): the value of rank `floor(q (n − 1))`,
    /// within [`ALPHA`] relative; `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * (n - 1) as f64).floor() as u64;
        let negatives = self.negative.total;
        if rank < negatives {
            // The negatives from the most negative: the highest indices
            // of the mirrored store first.
            let from_top = negatives - 1 - rank;
            return self.negative.index_of(from_top).map(|i| -value(i));
        }
        let rank = rank - negatives;
        if rank < self.zeros {
            return Some(0.0);
        }
        self.positive.index_of(rank - self.zeros).map(value)
    }

    /// Empties it, keeping its memory.
    pub fn clear(&mut self) {
        self.positive.clear();
        self.negative.clear();
        self.zeros = 0;
    }

    /// Bytes of buckets it holds now.
    pub fn footprint(&self) -> usize {
        (self.positive.counts.capacity() + self.negative.counts.capacity()) * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn exact(values: &mut [f64], q: f64) -> f64 {
        values.sort_by(f64::total_cmp);
        values[(q * (values.len() - 1) as f64).floor() as usize]
    }

    #[test]
    fn quantiles_of_known_values() {
        let mut s = Sketch::default();
        assert_eq!(s.quantile(0.5), None);
        for i in 1..=100 {
            s.add(f64::from(i));
        }
        for (q, want) in [
            (0.0, 1.0),
            (0.5, 50.0),
            (0.9, 90.0),
            (0.99, 99.0),
            (1.0, 100.0),
        ] {
            let got = s.quantile(q).unwrap();
            assert!((got - want).abs() <= want * ALPHA, "q{q}: {got} vs {want}");
        }
        s.clear();
        for x in [-5.0, 0.0, 0.0, 3.0] {
            s.add(x);
        }
        assert!((s.quantile(0.0).unwrap() + 5.0).abs() <= 5.0 * ALPHA);
        assert_eq!(s.quantile(0.4), Some(0.0));
        assert!((s.quantile(1.0).unwrap() - 3.0).abs() <= 3.0 * ALPHA);
    }

    #[test]
    fn wide_ranges_keep_the_high_end_exact_within_alpha() {
        let mut s = Sketch::default();
        // 1e-300 to 1e300: more buckets than allowed.
        for e in -300..=300 {
            s.add(10f64.powi(e));
        }
        let top = s.quantile(1.0).unwrap();
        assert!((top - 1e300).abs() <= 1e300 * ALPHA, "{top}");
        assert!(s.footprint() <= 2 * MAX_BUCKETS * 8 + 64);
    }

    proptest! {
        #[test]
        fn within_the_stated_error(
            mut values in proptest::collection::vec(-1e9f64..1e9, 1..300),
            q in 0.0f64..=1.0,
        ) {
            let mut s = Sketch::default();
            for v in &values {
                s.add(*v);
            }
            let got = s.quantile(q).unwrap();
            let want = exact(&mut values, q);
            prop_assert!((got - want).abs() <= want.abs() * ALPHA + 1e-12, "{got} vs {want}");
        }
    }
}
