//! A series as a line of block characters, one per time slot.

/// The eight heights, lowest first.
const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// `points` (µs, value; oldest first) between `now_us - span_us` and
/// `now_us` drawn in `width` slots: each slot shows the last value that
/// fell in it, scaled between the lowest and highest value shown; a slot
/// without a value is a space (no collection then: unknown, not zero). A
/// flat series is drawn at the lowest height.
pub fn sparkline(points: &[(u64, f64)], now_us: u64, span_us: u64, width: usize) -> String {
    if width == 0 || span_us == 0 {
        return String::new();
    }
    let start = now_us.saturating_sub(span_us);
    let mut slots: Vec<Option<f64>> = vec![None; width];
    for &(ts, v) in points {
        if ts < start || ts > now_us || !v.is_finite() {
            continue;
        }
        // Slot i holds (start + i·span/width, start + (i+1)·span/width]:
        // a point taken now is in the last one.
        let offset =
            u128::from((ts - start).saturating_sub(1)) * width as u128 / u128::from(span_us);
        let i = usize::try_from(offset).unwrap_or(width).min(width - 1);
        slots[i] = Some(v);
    }
    let (lo, hi) = slots
        .iter()
        .flatten()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    slots
        .iter()
        .map(|slot| match slot {
            None => ' ',
            Some(_) if hi <= lo => BARS[0],
            Some(v) => {
                let level = ((v - lo) / (hi - lo) * (BARS.len() - 1) as f64).round();
                BARS[(level as usize).min(BARS.len() - 1)]
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000;

    #[test]
    fn a_rising_series_rises() {
        let points: Vec<(u64, f64)> = (0..8).map(|i| ((i + 1) * S, i as f64)).collect();
        assert_eq!(sparkline(&points, 8 * S, 8 * S, 8), "▁▂▃▄▅▆▇█");
    }

    #[test]
    fn gaps_and_old_points_are_blank() {
        let points = [(1, 5.0), (50 * S, 1.0), (59 * S, 3.0)];
        // 60 s in 6 slots of 10 s: 50 s ends slot 4, 59 s is in slot 5.
        assert_eq!(sparkline(&points, 60 * S, 60 * S, 6), "█   ▁▅");
        let points = [(10 * S, 1.0), (35 * S, 3.0), (55 * S, 2.0), (59 * S, 1.0)];
        // 55 s and 59 s share the last slot: the later one is drawn.
        assert_eq!(sparkline(&points, 60 * S, 60 * S, 6), "▁  █ ▁");
        assert_eq!(sparkline(&[], 60 * S, 60 * S, 4), "    ");
        // Points before the window are not drawn.
        assert_eq!(sparkline(&[(S, 9.0)], 100 * S, 60 * S, 3), "   ");
    }

    #[test]
    fn flat_series_and_odd_widths() {
        let points: Vec<(u64, f64)> = (0..60).map(|i| (i * S, 0.5)).collect();
        assert_eq!(sparkline(&points, 60 * S, 60 * S, 5), "▁▁▁▁▁");
        assert_eq!(sparkline(&points, 60 * S, 60 * S, 0), "");
        assert_eq!(sparkline(&points, 60 * S, 60 * S, 100).chars().count(), 100);
        assert_eq!(sparkline(&[(S, f64::NAN)], 2 * S, 2 * S, 2), "  ");
    }
}
