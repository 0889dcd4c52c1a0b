//! The rule "no per-sample allocation", measured: with every allocation of
//! this test binary counted, a collection of series the store already
//! holds, and a scrape into a buffer of the last scrape's size, allocate
//! nothing, whatever the number of series.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use blipp::report::prometheus::exposition::{self, Format};
use blipp::report::prometheus::store::Store;
use blipp::sample::{Name, Sample, Source, Timestamp, Value};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator, counting.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// `disks` disks' worth of samples: counters, gauges, percentiles, a text.
fn samples(disks: usize, ts: u64) -> Vec<Sample> {
    let et = |s: &str| Name::from(format!("ps:tools:blipp:linux:disk:{s}"));
    let types = [
        (et("requests:read"), false),
        (et("time:io"), false),
        (et("utilization:busy"), true),
        (et("latency:read:total:p99"), true),
    ];
    let mut out = Vec::new();
    for d in 0..disks {
        let subject = Name::from(format!("disk:vd{d}"));
        for (t, float) in &types {
            let v = if *float {
                Value::Float(ts as f64 / 7.0)
            } else {
                Value::Int(ts * 1000 + d as u64)
            };
            out.push(Sample::new(Timestamp(ts), &subject, t, v, Source::Proc));
        }
        out.push(Sample::new(
            Timestamp(ts),
            &Name::from("process:nginx"),
            &Name::from("ps:tools:blipp:linux:process:state"),
            Value::Text(Name::from("S")),
            Source::Proc,
        ));
    }
    out
}

#[test]
fn collections_and_scrapes_allocate_nothing_per_sample() {
    for disks in [10, 1000] {
        let store = Store::default();
        let probe = store.register("disk");
        probe.collected(Timestamp(1), &samples(disks, 1), true);
        let mut buf = Vec::new();
        store.read(|v| exposition::encode(&v, Format::Text, &mut buf));
        let size = buf.len();
        for format in [Format::Text, Format::OpenMetrics] {
            let next = samples(disks, 2);
            let mut out = Vec::with_capacity(size * 2);
            let before = ALLOCATIONS.load(Ordering::Relaxed);
            probe.collected(Timestamp(2), &next, true);
            let collected = ALLOCATIONS.load(Ordering::Relaxed) - before;
            store.read(|v| exposition::encode(&v, format, &mut out));
            let scraped = ALLOCATIONS.load(Ordering::Relaxed) - before - collected;
            assert_eq!(
                (collected, scraped),
                (0, 0),
                "{disks} disks, {format:?}: allocations in a collection, in a scrape"
            );
            assert!(out.len() > size / 2);
        }
    }
}
