//! Log-linear latency histograms, filled in the kernel and read by the agent.
//!
//! Values (nanoseconds) below 2^[`GROUPING`] get one bucket each; above,
//! every power of two is split into 2^[`GROUPING`] equal buckets. A value is
//! represented by the midpoint of its bucket, so the relative error is at
//! most 1 / 2^(GROUPING + 1) = 6.25 %. Values from 2^[`MAX_POWER`] ns
//! (68.7 s) up share the last bucket.

/// Sub-buckets per power of two, as a power of two.
pub const GROUPING: u32 = 3;
/// Values at or above 2^MAX_POWER land in the last bucket.
pub const MAX_POWER: u32 = 36;
/// Number of buckets.
pub const BUCKETS: usize = ((MAX_POWER - GROUPING + 1) << GROUPING) as usize;

/// One histogram: a count per bucket.
pub type Buckets = [u64; BUCKETS];

/// The bucket of `value`. Branch-light so that it costs a few instructions
/// in a kernel program.
#[inline(always)]
pub fn bucket(value: u64) -> usize {
    if value >= 1 << MAX_POWER {
        return BUCKETS - 1;
    }
    if value < 1 << GROUPING {
        return value as usize;
    }
    let power = 63 - value.leading_zeros();
    let sub = (value >> (power - GROUPING)) & ((1 << GROUPING) - 1);
    (((power - GROUPING + 1) << GROUPING) as usize) + sub as usize
}

/// The half-open range `[low, high)` of bucket `index`.
pub fn bounds(index: usize) -> (u64, u64) {
    let i = index as u64;
    let g = u64::from(GROUPING);
    if i < 1 << g {
        return (i, i + 1);
    }
    let power = (i >> g) + g - 1;
    let sub = i & ((1 << g) - 1);
    let width = 1u64 << (power - g);
    let low = ((1 << g) + sub) * width;
    (low, low + width)
}

/// The value that stands for bucket `index`: its midpoint.
pub fn midpoint(index: usize) -> u64 {
    let (low, high) = bounds(index);
    low + (high - low) / 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_falls_in_its_bucket() {
        let mut v = 0u64;
        while v < 1 << MAX_POWER {
            let (low, high) = bounds(bucket(v));
            assert!(low <= v && v < high, "{v} not in [{low}, {high})");
            v = v + 1 + v / 7;
        }
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
        assert_eq!(bucket((1 << MAX_POWER) - 1), BUCKETS - 1);
        assert_eq!(bucket(0), 0);
    }

    #[test]
    fn buckets_are_contiguous_and_error_is_bounded() {
        for i in 1..BUCKETS {
            assert_eq!(bounds(i - 1).1, bounds(i).0, "gap before bucket {i}");
        }
        for i in 1..BUCKETS {
            let (low, high) = bounds(i);
            let mid = midpoint(i);
            // Worst case: a value at either edge of the bucket.
            let err = (mid - low).max(high - 1 - mid) as f64 / low as f64;
            assert!(err <= 0.0625 + 1e-9, "bucket {i} error {err}");
        }
    }
}
