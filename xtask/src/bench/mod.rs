//! `cargo xtask bench`: blipp's cost, measured and printed (never asserted).
//! Each benchmark is a module with a clap `Args` type and a `run`; adding
//! one is a module and a row in [`Bench`].

mod disk;

use anyhow::Result;
use clap::Subcommand;

/// The benchmarks.
#[derive(Subcommand)]
pub enum Bench {
    /// fio 4k random reads (direct I/O) on a tmpfs-backed loop device,
    /// without and with blippd's eBPF disk probe, alternating: IOPS ratio
    /// and kernel nanoseconds per completion.
    Disk(disk::Args),
}

/// Runs one benchmark.
pub fn run(bench: &Bench) -> Result<()> {
    match bench {
        Bench::Disk(args) => disk::run(args),
    }
}

/// The median of `v` (sorted in place); 0 when empty.
pub fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&mut []), 0.0);
    }
}
