//! Per-probe batching: the original BLiPP's `reporting_params` (report every
//! N collections).

use std::sync::Arc;

use super::{Batch, Route};
use crate::sample::Sample;

/// Accumulates one probe's samples.
pub struct Collector {
    probe: Arc<str>,
    route: Arc<Route>,
    every: u32,
    collections: u32,
    samples: Vec<Sample>,
}

impl Collector {
    /// A collector that yields a batch every `every` collections.
    pub fn new(probe: &str, route: Route, every: u32) -> Self {
        Self {
            probe: Arc::from(probe),
            route: Arc::new(route),
            every: every.max(1),
            collections: 0,
            samples: Vec::new(),
        }
    }

    /// The buffer a collection appends to.
    pub fn buffer(&mut self) -> &mut Vec<Sample> {
        &mut self.samples
    }

    /// Marks one collection done; returns a batch when it is time to report.
    pub fn collected(&mut self) -> Option<Batch> {
        self.collections += 1;
        if self.collections >= self.every {
            self.take()
        } else {
            None
        }
    }

    /// Whatever is buffered, e.g. at shutdown.
    pub fn take(&mut self) -> Option<Batch> {
        self.collections = 0;
        if self.samples.is_empty() {
            return None;
        }
        let capacity = self.samples.len();
        Some(Batch {
            probe: Arc::clone(&self.probe),
            route: Arc::clone(&self.route),
            samples: std::mem::replace(&mut self.samples, Vec::with_capacity(capacity)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::{Name, Source, Timestamp, Value};

    #[test]
    fn batches_every_n() {
        let mut c = Collector::new("cpu", Route::default(), 3);
        let s = Sample::new(
            Timestamp(1),
            &Name::from("node"),
            &Name::from("e"),
            Value::Int(1),
            Source::Proc,
        );
        for i in 1..=7 {
            c.buffer().push(s.clone());
            let batch = c.collected();
            assert_eq!(batch.is_some(), i % 3 == 0, "collection {i}");
            if let Some(b) = batch {
                assert_eq!(b.samples.len(), 3);
            }
        }
        assert_eq!(c.take().map(|b| b.samples.len()), Some(1));
        assert!(c.take().is_none());
    }
}
