//! Summaries of repeated measurements: the median, and the spread as the
//! smallest and largest value, so that a reader sees how much runs agree.

use std::fmt;

/// The median and range of one figure over the runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    /// The middle value (the mean of the two middle values for an even count).
    pub median: f64,
    /// The smallest value.
    pub min: f64,
    /// The largest value.
    pub max: f64,
    /// How many runs.
    pub runs: usize,
}

impl Summary {
    /// The summary of `values`, `None` when there are none (or one is NaN).
    pub fn of(values: &[f64]) -> Option<Self> {
        if values.is_empty() || values.iter().any(|v| v.is_nan()) {
            return None;
        }
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            f64::midpoint(sorted[n / 2 - 1], sorted[n / 2])
        };
        Some(Self {
            median,
            min: sorted[0],
            max: sorted[n - 1],
            runs: n,
        })
    }

    /// Shows the summary with `decimals` digits after the point:
    /// `median (min–max)`, or only the median for a single run or runs that
    /// agree to those digits.
    pub fn show(&self, decimals: usize) -> Shown {
        Shown {
            summary: *self,
            decimals,
        }
    }
}

/// A [`Summary`] formatted for a table cell.
pub struct Shown {
    summary: Summary,
    decimals: usize,
}

impl fmt::Display for Shown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Summary {
            median,
            min,
            max,
            runs,
        } = self.summary;
        let d = self.decimals;
        // Runs that all agree to the digits shown have no range to show.
        if runs == 1 || format!("{min:.d$}") == format!("{max:.d$}") {
            write!(f, "{median:.d$}")
        } else {
            write!(f, "{median:.d$} ({min:.d$}–{max:.d$})")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_count_takes_the_middle() {
        let s = Summary::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.runs), (2.0, 1.0, 3.0, 3));
    }

    #[test]
    fn even_count_averages_the_middle_two() {
        let s = Summary::of(&[4.0, 1.0, 2.0, 10.0]).unwrap();
        assert_eq!(s.median, 3.0);
        assert_eq!(s.show(2).to_string(), "3.00 (1.00–10.00)");
    }

    #[test]
    fn nothing_or_nan_has_no_summary() {
        assert_eq!(Summary::of(&[]), None);
        assert_eq!(Summary::of(&[1.0, f64::NAN]), None);
    }

    #[test]
    fn one_run_shows_no_range() {
        assert_eq!(Summary::of(&[0.5]).unwrap().show(1).to_string(), "0.5");
        assert_eq!(
            Summary::of(&[6.0, 6.0, 6.0]).unwrap().show(0).to_string(),
            "6"
        );
        assert_eq!(Summary::of(&[6.0, 6.2]).unwrap().show(0).to_string(), "6");
        assert_eq!(
            Summary::of(&[6.0, 7.0]).unwrap().show(0).to_string(),
            "6 (6–7)"
        );
    }
}
