//! Loss of a workload's throughput under a tracer, paired by round: each
//! round runs every side once (in rotating order), and a tracer's loss in a
//! round is measured against the untraced run of the same round, so that
//! drift in the machine's speed over the benchmark cancels out.

use super::stats::Summary;

/// One run: its round, its side (index into the part's sides; side 0 is
/// the run without a tracer) and the workload's throughput.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Run {
    /// Round number.
    pub round: u32,
    /// Side index; 0 is the baseline.
    pub side: usize,
    /// Throughput (ops/s, bits/s, packets/s).
    pub value: f64,
}

/// The throughput of one side over its runs.
pub fn throughput(runs: &[Run], side: usize) -> Option<Summary> {
    let v: Vec<f64> = runs
        .iter()
        .filter(|r| r.side == side)
        .map(|r| r.value)
        .collect();
    Summary::of(&v)
}

/// A side's loss against the baseline of its round, in percent.
pub fn loss(runs: &[Run], side: usize) -> Option<Summary> {
    let base = |round: u32| {
        runs.iter()
            .find(|r| r.round == round && r.side == 0)
            .map(|r| r.value)
    };
    let v: Vec<f64> = runs
        .iter()
        .filter(|r| r.side == side)
        .filter_map(|r| Some((1.0 - r.value / base(r.round)?) * 100.0))
        .collect();
    Summary::of(&v)
}

/// How far the baseline runs lie apart, in percent of their median: a loss
/// smaller than that is noise, whatever its sign.
pub fn noise(runs: &[Run]) -> f64 {
    throughput(runs, 0).map_or(0.0, |s| (s.max - s.min) / s.median * 100.0)
}

/// The order of the sides in round `round`: rotated by one each round.
pub fn order(sides: usize, round: u32) -> impl Iterator<Item = usize> {
    (0..sides).map(move |i| (i + round as usize) % sides)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(round: u32, side: usize, value: f64) -> Run {
        Run { round, side, value }
    }

    #[test]
    fn losses_pair_with_their_own_round() {
        // The machine got twice as fast in round 1; the tracer costs 10 %
        // in both rounds, which only pairing shows.
        let runs = [
            run(0, 0, 100.0),
            run(0, 1, 90.0),
            run(1, 0, 200.0),
            run(1, 1, 180.0),
        ];
        let l = loss(&runs, 1).unwrap();
        assert!((l.median - 10.0).abs() < 1e-9, "{l:?}");
        assert_eq!(l.runs, 2);
        assert!((noise(&runs) - 200.0 / 3.0).abs() < 1e-9);
        assert_eq!(throughput(&runs, 1).unwrap().median, 135.0);
        assert!(loss(&runs, 2).is_none());
    }

    #[test]
    fn a_round_without_its_baseline_has_no_loss() {
        let runs = [run(0, 1, 90.0), run(1, 0, 100.0), run(1, 1, 95.0)];
        let l = loss(&runs, 1).unwrap();
        assert_eq!(l.runs, 1);
        assert!((l.median - 5.0).abs() < 1e-9);
    }

    #[test]
    fn the_order_rotates() {
        assert_eq!(order(3, 0).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(order(3, 1).collect::<Vec<_>>(), [1, 2, 0]);
        assert_eq!(order(3, 5).collect::<Vec<_>>(), [2, 0, 1]);
    }
}
