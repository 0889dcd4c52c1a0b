//! The latest value of every series, as the probes collected them on their
//! own schedules: the scrape endpoint serialises what is here and never
//! makes a probe collect.
//!
//! Each probe's task hands every collection over once ([`Store::collected`]:
//! one lock, a catalog lookup per sample, no allocation once its series
//! exist). A series belongs to the first probe that reported it, so two
//! probes measuring one quantity (a `disk` probe from eBPF beside another
//! from /proc) give one series, not two alternating ones. Counters are
//! served as the counter module judged them: a wrap (the value fell and
//! the probe did not flag a reset) is undone by adding the counter's range,
//! so that Prometheus does not take it for a reset; a flagged reset is
//! served as the new, lower value, which Prometheus reads as a reset.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

use super::catalog::{Catalog, SeriesId};
use super::names::Kind;
use crate::sample::{Sample, Timestamp};

/// The process's store, set once when the scrape endpoint is configured;
/// probe tasks feed it while it is set.
pub static STORE: OnceLock<Store> = OnceLock::new();

/// A series its probe has not reported for this many of its collections
/// and for [`STALE_AFTER_US`] is no longer served (a removed disk).
const STALE_COLLECTIONS: u64 = 64;

/// See [`STALE_COLLECTIONS`]: ten minutes, so that a probe that reports a
/// quantity only every few minutes (`port`'s `refresh`) keeps it.
const STALE_AFTER_US: u64 = 600_000_000;

/// Index of a probe task in the store.
pub type ProbeId = u32;

#[derive(Clone, Copy, Debug)]
struct Slot {
    /// The value served (unit converted, wraps undone).
    value: f64,
    /// The value as the probe gave it (unit converted).
    raw: f64,
    /// What undoes the wraps seen so far.
    offset: f64,
    ts: Timestamp,
    owner: ProbeId,
    /// The owner's collection that last reported it.
    generation: u64,
}

#[derive(Debug)]
struct ProbeEntry {
    name: Box<str>,
    /// Stopped probes own nothing and are not served.
    running: bool,
    generation: u64,
    last_success: Option<Timestamp>,
}

#[derive(Debug, Default)]
struct Inner {
    catalog: Catalog,
    slots: Vec<Option<Slot>>,
    /// Series of each family, in the order they appeared.
    by_family: Vec<Vec<SeriesId>>,
    probes: Vec<ProbeEntry>,
}

/// The latest samples, shared by the probe tasks and the endpoint.
#[derive(Debug, Default)]
pub struct Store {
    inner: Mutex<Inner>,
    /// The size of the last exposition, so that the next one's buffer is
    /// allocated once.
    size: AtomicUsize,
}

/// What the encoders see of one series.
#[derive(Clone, Copy, Debug)]
pub struct Point {
    /// The value.
    pub value: f64,
    /// When it was collected.
    pub ts: Timestamp,
}

/// Read access to the store while it is locked, for the encoders.
pub struct View<'a>(&'a Inner);

impl View<'_> {
    /// The catalog (families, series, labels).
    pub fn catalog(&self) -> &Catalog {
        &self.0.catalog
    }

    /// The series of family `family` that are served, with their points.
    pub fn series(&self, family: u32) -> impl Iterator<Item = (SeriesId, Point)> + '_ {
        let inner = self.0;
        inner
            .by_family
            .get(family as usize)
            .into_iter()
            .flatten()
            .filter_map(move |&id| {
                let slot = inner.slots.get(id as usize).copied().flatten()?;
                let owner = &inner.probes[slot.owner as usize];
                let behind = owner.generation.saturating_sub(slot.generation);
                let stale = behind > STALE_COLLECTIONS
                    && Timestamp::now().0.saturating_sub(slot.ts.0) > STALE_AFTER_US;
                (owner.running && !stale).then_some((
                    id,
                    Point {
                        value: slot.value,
                        ts: slot.ts,
                    },
                ))
            })
    }

    /// Every probe task the store knows, running or not, with the time
    /// of its last successful collection.
    pub fn probes(&self) -> impl Iterator<Item = (&str, bool, Option<Timestamp>)> + '_ {
        self.0
            .probes
            .iter()
            .map(|p| (&*p.name, p.running, p.last_success))
    }
}

impl Store {
    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.inner.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The size of the last exposition, and some room to grow.
    pub fn size_hint(&self) -> usize {
        self.size.load(Ordering::Relaxed) + 4096
    }

    /// Records the size of an exposition.
    pub fn set_size_hint(&self, bytes: usize) {
        self.size.store(bytes, Ordering::Relaxed);
    }

    /// A probe task starts: what it hands its collections to, until it is
    /// dropped. A probe restarted under the same name takes its old entry
    /// back.
    pub fn register(&self, name: &str) -> Registration<'_> {
        Registration {
            store: self,
            id: self.add(name),
        }
    }

    fn add(&self, name: &str) -> ProbeId {
        self.with(|s| {
            if let Some(i) = s.probes.iter().position(|p| &*p.name == name) {
                s.probes[i].running = true;
                return i as ProbeId;
            }
            s.probes.push(ProbeEntry {
                name: name.into(),
                running: true,
                generation: 0,
                last_success: None,
            });
            (s.probes.len() - 1) as ProbeId
        })
    }

    fn stopped(&self, probe: ProbeId) {
        self.with(|s| {
            if let Some(p) = s.probes.get_mut(probe as usize) {
                p.running = false;
            }
        });
    }

    fn collected(&self, probe: ProbeId, ts: Timestamp, samples: &[Sample], ok: bool) {
        self.with(|s| {
            let Some(entry) = s.probes.get_mut(probe as usize) else {
                return;
            };
            entry.generation += 1;
            let generation = entry.generation;
            if ok {
                entry.last_success = Some(ts);
            }
            for sample in samples {
                s.update(probe, generation, sample);
            }
        });
    }

    /// Reads the store, locked, for as long as `f` runs.
    pub fn read<T>(&self, f: impl FnOnce(View<'_>) -> T) -> T {
        self.with(|s| f(View(s)))
    }
}

/// A running probe task's place in the store. Dropping it (the task
/// ended) stops its series from being served; another probe may then take
/// them over.
pub struct Registration<'a> {
    store: &'a Store,
    id: ProbeId,
}

impl Registration<'_> {
    /// One collection at `ts`: its samples, and whether it succeeded.
    pub fn collected(&self, ts: Timestamp, samples: &[Sample], ok: bool) {
        self.store.collected(self.id, ts, samples, ok);
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.store.stopped(self.id);
    }
}

impl Inner {
    fn update(&mut self, probe: ProbeId, generation: u64, sample: &Sample) {
        let Some(found) = self.catalog.lookup(sample) else {
            return;
        };
        let id = found.series as usize;
        let family = self.catalog.series(found.series).family;
        if self.slots.len() <= id {
            self.slots.resize(id + 1, None);
            let fam = family as usize;
            if self.by_family.len() <= fam {
                self.by_family.resize_with(fam + 1, Vec::new);
            }
            self.by_family[fam].push(found.series);
        }
        let counter = self.catalog.family(family).kind == Kind::Counter;
        let factor = self.catalog.family(family).unit.factor();
        let slot = self.slots[id];
        let owned_elsewhere = slot.is_some_and(|s| {
            s.owner != probe && self.probes.get(s.owner as usize).is_some_and(|p| p.running)
        });
        if owned_elsewhere {
            return;
        }
        let value = found.value;
        let offset = match slot {
            Some(prev) if prev.owner == probe && counter && !sample.reset => {
                if value < prev.raw {
                    // A wrap: the counter module would have flagged
                    // anything else.
                    let range = if prev.raw <= f64::from(u32::MAX) * factor {
                        2f64.powi(32)
                    } else {
                        2f64.powi(64)
                    };
                    prev.offset + range * factor
                } else {
                    prev.offset
                }
            }
            _ => 0.0,
        };
        self.slots[id] = Some(Slot {
            value: value + offset,
            raw: value,
            offset,
            ts: sample.ts,
            owner: probe,
            generation,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::{Name, Source, Value};

    fn sample(ts: u64, subject: &str, et: &str, v: Value) -> Sample {
        Sample::new(
            Timestamp(ts),
            &Name::from(subject),
            &Name::from(et),
            v,
            Source::Proc,
        )
    }

    fn served(store: &Store) -> Vec<(String, f64)> {
        store.read(|v| {
            let mut out = Vec::new();
            for (f, family) in v.catalog().families().iter().enumerate() {
                for (id, p) in v.series(f as u32) {
                    out.push((
                        format!("{}{}", family.sample_name(), v.catalog().series(id).text),
                        p.value,
                    ));
                }
            }
            out
        })
    }

    const TIME: &str = "ps:tools:blipp:linux:disk:time:io";

    #[test]
    fn wraps_are_undone_and_resets_drop() {
        let store = Store::default();
        let p = store.register("disk");
        let at = |ts, v: u64, reset| {
            p.collected(
                Timestamp(ts),
                &[sample(ts, "disk:vda", TIME, Value::Int(v)).with_reset(reset)],
                true,
            );
        };
        at(1, 4_294_967_000, false);
        at(2, 704, false); // wrapped: 2^32 - 4_294_967_000 + 704 = 1000 ms more
        let got = served(&store);
        assert_eq!(
            got[0].0,
            r#"blipp_disk_time_io_seconds_total{device="vda"}"#
        );
        assert!((got[0].1 - 4_294_968.0).abs() < 1e-6, "{got:?}");
        at(3, 5, true); // reset: the value drops
        assert!((served(&store)[0].1 - 0.005).abs() < 1e-12);
    }

    #[test]
    fn one_owner_per_series_and_stopped_probes_are_not_served() {
        let store = Store::default();
        let a = store.register("disk_ebpf");
        let b = store.register("disk_proc");
        let et = "ps:tools:blipp:linux:disk:requests:read";
        a.collected(
            Timestamp(1),
            &[sample(1, "disk:vda", et, Value::Int(10))],
            true,
        );
        b.collected(
            Timestamp(1),
            &[sample(1, "disk:vda", et, Value::Int(99_999))],
            true,
        );
        assert_eq!(
            served(&store),
            [(
                r#"blipp_disk_requests_read_total{device="vda"}"#.to_owned(),
                10.0
            )]
        );
        drop(a);
        assert!(served(&store).is_empty());
        b.collected(
            Timestamp(2),
            &[sample(2, "disk:vda", et, Value::Int(100_000))],
            true,
        );
        assert_eq!(served(&store)[0].1, 100_000.0);
        let probes: Vec<_> =
            store.read(|v| v.probes().map(|(n, r, t)| (n.to_owned(), r, t)).collect());
        assert_eq!(
            probes,
            [
                ("disk_ebpf".to_owned(), false, Some(Timestamp(1))),
                ("disk_proc".to_owned(), true, Some(Timestamp(2)))
            ]
        );
    }
}
