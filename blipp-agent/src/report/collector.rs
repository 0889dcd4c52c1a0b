//! Per-probe batching: the original BLiPP's `reporting_params` (report every
//! N collections), a report at least every `reporting_interval` seconds
//! and at most `reporting_max_samples` samples per report, whichever comes
//! first; and, with `aggregate`, the summaries of each window for the
//! destinations that take them (see [`super::aggregate`]).

use std::sync::Arc;

use super::aggregate::{AggregateSpec, Aggregator};
use super::{Batch, Route};
use crate::sample::{Sample, Timestamp};

/// When a probe's report goes out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reporting {
    /// Collections per report.
    pub every: u32,
    /// Longest wait, µs, from a report's first collection.
    pub interval: Option<u64>,
    /// Most samples per report.
    pub max_samples: Option<usize>,
}

impl Reporting {
    /// A report every `every` collections, nothing else.
    pub fn every(every: u32) -> Self {
        Self {
            every: every.max(1),
            interval: None,
            max_samples: None,
        }
    }
}

/// Summaries and where they go.
struct Summaries {
    aggregator: Aggregator,
    route: Arc<Route>,
    out: Vec<Sample>,
}

/// Accumulates one probe's samples.
pub struct Collector {
    probe: Arc<str>,
    /// Where raw samples go; `None`: nowhere (every destination takes the
    /// summaries only).
    route: Option<Arc<Route>>,
    reporting: Reporting,
    collections: u32,
    /// When the report being gathered began.
    since: Option<Timestamp>,
    samples: Vec<Sample>,
    /// Where the last collection's samples start in `samples`.
    fed: usize,
    summaries: Option<Summaries>,
}

/// Up to two batches: raw samples, and summaries.
pub type Batches = [Option<Batch>; 2];

impl Collector {
    /// A collector that yields a batch every `every` collections.
    pub fn new(probe: &str, route: Route, every: u32) -> Self {
        Self::with(probe, route, Reporting::every(every), None)
    }

    /// A collector for `route` with `reporting`, and `aggregate`'s
    /// summaries when given.
    pub fn with(
        probe: &str,
        route: Route,
        reporting: Reporting,
        aggregate: Option<Arc<AggregateSpec>>,
    ) -> Self {
        let (raw, summaries) = match aggregate {
            None => (Some(route), None),
            Some(spec) => {
                let to = spec.to;
                let summary_route = Route {
                    stdout: route.stdout && to.stdout,
                    data_file: route.data_file.clone().filter(|_| to.data_file),
                    unis: route.unis && to.ms,
                    data_file_format: route.data_file_format,
                };
                let raw = if spec.keep_raw {
                    route
                } else {
                    Route {
                        stdout: route.stdout && !to.stdout,
                        data_file: route.data_file.clone().filter(|_| !to.data_file),
                        unis: route.unis && !to.ms,
                        data_file_format: route.data_file_format,
                    }
                };
                let somewhere = |r: &Route| r.stdout || r.unis || r.data_file.is_some();
                (
                    Some(raw).filter(somewhere),
                    Some(Summaries {
                        aggregator: Aggregator::new((*spec).clone()),
                        route: Arc::new(summary_route),
                        out: Vec::new(),
                    }),
                )
            }
        };
        Self {
            probe: Arc::from(probe),
            route: raw.map(Arc::new),
            reporting,
            collections: 0,
            since: None,
            samples: Vec::new(),
            fed: 0,
            summaries,
        }
    }

    /// The buffer a collection appends to.
    pub fn buffer(&mut self) -> &mut Vec<Sample> {
        &mut self.samples
    }

    /// Marks one collection, taken at `ts`, done; returns the batches due.
    pub fn collected(&mut self, ts: Timestamp) -> Batches {
        let mut due: Batches = [None, None];
        if let Some(s) = &mut self.summaries {
            s.aggregator
                .collected(ts, &self.samples[self.fed..], &mut s.out);
            if !s.out.is_empty() {
                due[1] = Some(Batch {
                    probe: Arc::clone(&self.probe),
                    route: Arc::clone(&s.route),
                    samples: std::mem::take(&mut s.out),
                });
            }
        }
        if self.route.is_none() {
            // Nothing takes raw samples: they were summarised, no more.
            self.samples.clear();
            self.fed = 0;
            return due;
        }
        self.fed = self.samples.len();
        self.collections += 1;
        let since = *self.since.get_or_insert(ts);
        let r = self.reporting;
        if self.collections >= r.every
            || r.interval
                .is_some_and(|i| ts.0.saturating_sub(since.0) >= i)
            || r.max_samples.is_some_and(|m| self.samples.len() >= m)
        {
            due[0] = self.take_raw();
        }
        due
    }

    fn take_raw(&mut self) -> Option<Batch> {
        self.collections = 0;
        self.since = None;
        self.fed = 0;
        let route = self.route.as_ref()?;
        if self.samples.is_empty() {
            return None;
        }
        let capacity = self.samples.len();
        Some(Batch {
            probe: Arc::clone(&self.probe),
            route: Arc::clone(route),
            samples: std::mem::replace(&mut self.samples, Vec::with_capacity(capacity)),
        })
    }

    /// Whatever is buffered, and the open window's summaries, e.g. at
    /// shutdown.
    pub fn take(&mut self) -> Batches {
        let mut due: Batches = [self.take_raw(), None];
        if let Some(s) = &mut self.summaries {
            s.aggregator.finish(&mut s.out);
            if !s.out.is_empty() {
                due[1] = Some(Batch {
                    probe: Arc::clone(&self.probe),
                    route: Arc::clone(&s.route),
                    samples: std::mem::take(&mut s.out),
                });
            }
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::aggregate::AggregateSpec;
    use crate::sample::{Name, Source, Value};
    use serde_json::json;

    fn sample(ts: u64, v: f64) -> Sample {
        Sample::new(
            Timestamp(ts),
            &Name::from("node"),
            &Name::from("e"),
            Value::Float(v),
            Source::Proc,
        )
    }

    #[test]
    fn batches_every_n() {
        let mut c = Collector::new("cpu", Route::default(), 3);
        for i in 1..=7 {
            c.buffer().push(sample(i, 1.0));
            let [raw, summaries] = c.collected(Timestamp(i));
            assert!(summaries.is_none());
            assert_eq!(raw.is_some(), i % 3 == 0, "collection {i}");
            if let Some(b) = raw {
                assert_eq!(b.samples.len(), 3);
            }
        }
        let [raw, _] = c.take();
        assert_eq!(raw.map(|b| b.samples.len()), Some(1));
        assert!(c.take()[0].is_none());
    }

    #[test]
    fn reports_go_out_by_time_or_size_whichever_comes_first() {
        let reporting = Reporting {
            every: 100,
            interval: Some(10_000_000),
            max_samples: Some(4),
        };
        let mut c = Collector::with("cpu", Route::default(), reporting, None);
        let mut sizes = Vec::new();
        for s in 0..12u64 {
            // Two samples per collection, one collection a second.
            c.buffer().push(sample(s * 1_000_000, 1.0));
            c.buffer().push(sample(s * 1_000_000, 2.0));
            if let [Some(b), _] = c.collected(Timestamp(s * 1_000_000)) {
                sizes.push(b.samples.len());
            }
        }
        assert_eq!(sizes, [4, 4, 4, 4, 4, 4], "the size cap");
        let reporting = Reporting {
            every: 100,
            interval: Some(3_000_000),
            max_samples: None,
        };
        let mut c = Collector::with("cpu", Route::default(), reporting, None);
        let mut at = Vec::new();
        for s in 0..10u64 {
            c.buffer().push(sample(s * 1_000_000, 1.0));
            if let [Some(_), _] = c.collected(Timestamp(s * 1_000_000)) {
                at.push(s);
            }
        }
        assert_eq!(at, [3, 7], "every 3 s from each report's first collection");
    }

    /// The MS gets the summaries only, the data file every raw sample.
    #[test]
    fn summaries_and_raw_samples_go_to_their_own_destinations() {
        let route = Route {
            stdout: false,
            data_file: Some("/var/lib/blipp/cpu.jsonl".into()),
            unis: true,
            ..Route::default()
        };
        let spec = AggregateSpec::from_json(&json!({"window": {"collections": 3},
            "summaries": [{"match": "*", "stats": ["max"]}], "to": ["ms"]}))
        .unwrap();
        let mut c = Collector::with("cpu", route, Reporting::every(1), Some(Arc::new(spec)));
        let mut raw = Vec::new();
        let mut summaries = Vec::new();
        for (i, v) in [1.0, 7.0, 3.0, 2.0].into_iter().enumerate() {
            c.buffer().push(sample(i as u64, v));
            let [r, s] = c.collected(Timestamp(i as u64));
            raw.extend(r);
            summaries.extend(s);
        }
        assert_eq!(raw.len(), 4);
        assert!(
            raw.iter()
                .all(|b| !b.route.unis && b.route.data_file.is_some())
        );
        assert_eq!(summaries.len(), 1);
        let s = &summaries[0];
        assert!(s.route.unis && s.route.data_file.is_none());
        assert_eq!(s.samples[0].value, Value::Float(7.0));
        assert_eq!(&*s.samples[0].event_type, "e:max");
        // The open window at shutdown: [2.0].
        let [_, last] = c.take();
        assert_eq!(last.unwrap().samples[0].value, Value::Float(2.0));
    }
}
