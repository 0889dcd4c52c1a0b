//! The slots that `adaptive.simple_avoid` plans around, kept in UNIS: each
//! such probe publishes its plan as its measurement's `scheduled_times`
//! and reads the `scheduled_times` of the measurements that share one of
//! its `configuration.resources` refs.
//!
//! The schedules are pure and must not wait on the network, so they talk
//! to a [`Board`]: a snapshot of what UNIS last answered, and the plans
//! waiting to be written. The UNIS task writes the plans (a `PUT` of the
//! measurement's `scheduled_times` and `ttl`) as soon as one is published
//! and renews them half way through their TTL, and reads the others' in
//! one `GET` for every probe at each poll and after each write.
//!
//! A measurement's slots stop counting once its record is older than its
//! `ttl` (its `ts` plus `ttl` seconds lies in the past): an agent that went
//! away stops renewing them. A record without `ttl` (the original BLiPP
//! wrote none) counts until its slots end.
//!
//! Of two plans that overlap, the one whose record UNIS stamped first (its
//! `ts`, then its id) stands: every agent reads the same order, so exactly
//! one yields. A plan's order is only known once it has been read back
//! after its write; until then [`Reservations::ahead`] says so. A
//! measurement that leaves the answer (its TTL ran out) frees its slots:
//! the probes that shared a ref with it plan again.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::Notify;

use crate::sample::Timestamp;
use crate::schedule::avoid::Reservations;
use crate::schedule::slots::{Slot, parse_slots};

/// One measurement's slots, as last read from UNIS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reserved {
    /// The measurement's id.
    pub id: String,
    /// Its `configuration.resources` refs.
    pub refs: BTreeSet<String>,
    /// Its `scheduled_times`.
    pub slots: Vec<Slot>,
    /// When UNIS last stamped the record (µs).
    pub ts: u64,
}

/// Whether the record's slots still count at `now`: its `ts` (µs) plus
/// its `ttl` (s) is later than `now`, or it has no `ttl`.
pub fn alive(record: &Value, now: Timestamp) -> bool {
    let Some(ttl) = record.get("ttl").and_then(Value::as_f64) else {
        return true;
    };
    let ts = record.get("ts").and_then(Value::as_u64).unwrap_or(0);
    let ttl_us = (ttl.max(0.0) * 1e6) as u64;
    ts.saturating_add(ttl_us) > now.0
}

/// The `ref`s of a measurement configuration's (or a probe's)
/// `resources`.
pub fn resource_refs(configuration: &Value) -> BTreeSet<String> {
    configuration
        .get("resources")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| r.get("ref").and_then(Value::as_str))
        .map(str::to_owned)
        .collect()
}

/// The measurements of a `GET /measurements` whose slots count at `now`;
/// a record whose `scheduled_times` do not parse is left out.
pub fn parse(records: &[Value], now: Timestamp) -> Vec<Reserved> {
    records
        .iter()
        .filter(|r| alive(r, now))
        .filter_map(|r| {
            let id = r.get("id").and_then(Value::as_str)?;
            let slots = match r.get("scheduled_times") {
                None | Some(Value::Null) => Vec::new(),
                Some(v) => match parse_slots(v) {
                    Ok(s) => s,
                    Err((value, why)) => {
                        tracing::debug!(measurement = id, %value, %why, "scheduled_times ignored");
                        return None;
                    }
                },
            };
            Some(Reserved {
                id: id.to_owned(),
                refs: r
                    .get("configuration")
                    .map(resource_refs)
                    .unwrap_or_default(),
                slots,
                ts: r.get("ts").and_then(Value::as_u64).unwrap_or(0),
            })
        })
        .collect()
}

/// The slots of the measurements other than `own` that share one of
/// `refs`.
pub fn busy_for(records: &[Reserved], refs: &BTreeSet<String>, own: Option<&str>) -> Vec<Slot> {
    others(records, refs, own)
        .flat_map(|r| r.slots.iter().copied())
        .collect()
}

/// Of [`busy_for`], the slots of the plans stamped before `own`'s (its
/// `ts`, then its id); all of them when `own` is not among `records`.
pub fn ahead_for(records: &[Reserved], refs: &BTreeSet<String>, own: Option<&str>) -> Vec<Slot> {
    let mine = own.and_then(|id| records.iter().find(|r| r.id == id));
    others(records, refs, own)
        .filter(|r| mine.is_none_or(|m| (r.ts, &r.id) < (m.ts, &m.id)))
        .flat_map(|r| r.slots.iter().copied())
        .collect()
}

fn others<'a>(
    records: &'a [Reserved],
    refs: &'a BTreeSet<String>,
    own: Option<&'a str>,
) -> impl Iterator<Item = &'a Reserved> {
    records
        .iter()
        .filter(move |r| Some(r.id.as_str()) != own && !r.refs.is_disjoint(refs))
}

/// What the board knows of UNIS.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Standing {
    /// Nothing read yet: no slot's standing is known.
    #[default]
    Unknown,
    /// The last read succeeded.
    Live,
    /// UNIS failed: the probes go on with the slots last read.
    Down,
}

/// One probe's plan.
#[derive(Debug)]
struct Entry {
    token: u64,
    refs: BTreeSet<String>,
    plan: Vec<Slot>,
    /// Bumped by each new plan.
    version: u64,
    /// The version last written to UNIS, and when.
    written: u64,
    written_at: Option<Instant>,
    /// The version written before the last read.
    read: u64,
    /// Its measurement's id, once read.
    measurement: Option<String>,
    /// Another measurement sharing a ref is gone since it last asked.
    freed: bool,
}

#[derive(Debug, Default)]
struct State {
    standing: Standing,
    records: Vec<Reserved>,
    probes: HashMap<String, Entry>,
    tokens: u64,
}

#[derive(Debug, Default)]
struct Inner {
    state: Mutex<State>,
    /// Woken when a plan waits to be written.
    wake: Notify,
}

/// The snapshot shared by the UNIS task and the schedules.
#[derive(Clone, Debug, Default)]
pub struct Board {
    inner: Arc<Inner>,
}

/// A plan to write: (probe, version, slots).
pub type Due = (String, u64, Vec<Slot>);

impl Board {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves a consistent snapshot.
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The reservations of probe `probe`, which shares `refs`; replaces
    /// any earlier ones of that name (a restarted probe plans anew).
    pub fn join(&self, probe: &str, refs: BTreeSet<String>) -> ProbeReservations {
        let mut s = self.state();
        s.tokens += 1;
        let token = s.tokens;
        s.probes.insert(
            probe.to_owned(),
            Entry {
                token,
                refs,
                plan: Vec::new(),
                version: 0,
                written: 0,
                written_at: None,
                read: 0,
                measurement: None,
                freed: false,
            },
        );
        ProbeReservations {
            board: self.clone(),
            probe: probe.to_owned(),
            token,
        }
    }

    /// Whether any probe plans around others.
    pub fn wanted(&self) -> bool {
        !self.state().probes.is_empty()
    }

    /// The probes that do, and every ref they share, sorted.
    pub fn probes_and_refs(&self) -> (Vec<String>, Vec<String>) {
        let s = self.state();
        let refs: BTreeSet<&String> = s.probes.values().flat_map(|e| &e.refs).collect();
        (
            s.probes.keys().cloned().collect(),
            refs.into_iter().cloned().collect(),
        )
    }

    /// The plans to write at `now`: new ones, and those written more than
    /// `renew` ago whose last slot has not ended.
    pub fn due(&self, now: Instant, renew: Duration, wall: Timestamp) -> Vec<Due> {
        self.state()
            .probes
            .iter()
            .filter(|(_, e)| {
                e.version > e.written
                    || (e.written_at.is_some_and(|t| now.duration_since(t) >= renew)
                        && e.plan.last().is_some_and(|s| s.end > wall))
            })
            .map(|(p, e)| (p.clone(), e.version, e.plan.clone()))
            .collect()
    }

    /// Plan `version` of `probe` was written at `at`.
    pub fn written(&self, probe: &str, version: u64, at: Instant) {
        if let Some(e) = self.state().probes.get_mut(probe)
            && e.written <= version
        {
            e.written = version;
            e.written_at = Some(at);
        }
    }

    /// The version of each probe's plan written so far: taken before a
    /// read, handed to [`Board::read`].
    pub fn written_versions(&self) -> HashMap<String, u64> {
        self.state()
            .probes
            .iter()
            .map(|(p, e)| (p.clone(), e.written))
            .collect()
    }

    /// What UNIS answered: the measurements, each probe's own measurement
    /// id, and the versions written before the request went out.
    pub fn read(
        &self,
        records: Vec<Reserved>,
        own: &HashMap<String, String>,
        before: &HashMap<String, u64>,
    ) {
        let mut s = self.state();
        s.standing = Standing::Live;
        let old = std::mem::replace(&mut s.records, records);
        let gone: Vec<Reserved> = old
            .into_iter()
            .filter(|o| !s.records.iter().any(|r| r.id == o.id))
            .collect();
        for (probe, e) in &mut s.probes {
            e.measurement = own.get(probe).cloned();
            if !busy_for(&gone, &e.refs, e.measurement.as_deref()).is_empty() {
                e.freed = true;
            }
            if let Some(v) = before.get(probe) {
                e.read = e.read.max(*v);
            }
        }
    }

    /// UNIS did not answer or refused.
    pub fn failed(&self) {
        let mut s = self.state();
        if s.standing == Standing::Live || s.standing == Standing::Unknown {
            s.standing = Standing::Down;
        }
    }

    /// Completes when a plan waits to be written.
    pub async fn published(&self) {
        self.inner.wake.notified().await;
    }
}

/// One probe's [`Reservations`] on the board.
#[derive(Debug)]
pub struct ProbeReservations {
    board: Board,
    probe: String,
    token: u64,
}

impl ProbeReservations {
    fn with<T>(&self, f: impl FnOnce(&State, &Entry) -> T) -> Option<T> {
        let s = self.board.state();
        let e = s
            .probes
            .get(&self.probe)
            .filter(|e| e.token == self.token)?;
        Some(f(&s, e))
    }
}

impl Reservations for ProbeReservations {
    fn busy(&mut self) -> Vec<Slot> {
        self.with(|s, e| busy_for(&s.records, &e.refs, e.measurement.as_deref()))
            .unwrap_or_default()
    }

    fn publish(&mut self, plan: &[Slot]) {
        {
            let mut s = self.board.state();
            let Some(e) = s
                .probes
                .get_mut(&self.probe)
                .filter(|e| e.token == self.token)
            else {
                return;
            };
            e.plan = plan.to_vec();
            e.version += 1;
        }
        self.board.inner.wake.notify_one();
    }

    fn ahead(&mut self) -> Option<Vec<Slot>> {
        self.with(|s, e| match s.standing {
            Standing::Unknown => None,
            Standing::Down => Some(busy_for(&s.records, &e.refs, e.measurement.as_deref())),
            Standing::Live => (e.read >= e.version)
                .then(|| ahead_for(&s.records, &e.refs, e.measurement.as_deref())),
        })
        .flatten()
    }

    fn freed(&mut self) -> bool {
        self.take_freed()
    }
}

impl ProbeReservations {
    fn take_freed(&self) -> bool {
        let mut s = self.board.state();
        s.probes
            .get_mut(&self.probe)
            .filter(|e| e.token == self.token)
            .is_some_and(|e| std::mem::take(&mut e.freed))
    }
}

impl Drop for ProbeReservations {
    fn drop(&mut self) {
        let mut s = self.board.state();
        if s.probes
            .get(&self.probe)
            .is_some_and(|e| e.token == self.token)
        {
            s.probes.remove(&self.probe);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const T0: u64 = 1_800_000_000_000_000;

    fn t(secs: u64) -> Timestamp {
        Timestamp(T0 + secs * 1_000_000)
    }

    fn slot(a: u64, b: u64) -> Slot {
        Slot {
            start: t(a),
            end: t(b),
        }
    }

    fn refs(r: &[&str]) -> BTreeSet<String> {
        r.iter().map(|s| (*s).to_owned()).collect()
    }

    fn record(id: &str, refs: &[&str], slots: &[Slot], ts: u64, ttl: Option<u64>) -> Value {
        let mut m = json!({
            "id": id,
            "ts": ts,
            "configuration": {"resources": refs.iter().map(|r| json!({"ref": r})).collect::<Vec<_>>()},
            "scheduled_times": slots.iter().map(Slot::to_json).collect::<Vec<_>>(),
        });
        if let Some(ttl) = ttl {
            m["ttl"] = json!(ttl);
        }
        m
    }

    #[test]
    fn slots_stop_counting_after_the_ttl() {
        let r = record("a", &["link"], &[slot(100, 110)], t(10).0, Some(30));
        assert!(alive(&r, t(39)));
        assert!(!alive(&r, t(40)), "ts + ttl reached");
        assert_eq!(parse(std::slice::from_ref(&r), t(39)).len(), 1);
        assert!(parse(&[r], t(41)).is_empty());
        // The original wrote no ttl: its slots count until they end.
        let old = record("o", &["link"], &[slot(100, 110)], t(0).0, None);
        assert!(alive(&old, t(1_000_000)));
        // A record whose slots do not parse is left out, the rest kept.
        let mut bad = record("b", &["link"], &[], t(10).0, None);
        bad["scheduled_times"] = json!([{"start": "yesterday"}]);
        let got = parse(&[bad, old], t(20));
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].id, "o");
        assert_eq!(got[0].refs, refs(&["link"]));
    }

    #[test]
    fn others_sharing_a_ref_are_merged_and_the_first_stamped_stands() {
        let records = parse(
            &[
                record("mine", &["link", "path"], &[slot(0, 5)], 200, None),
                record("early", &["path"], &[slot(10, 15)], 100, None),
                record("late", &["link"], &[slot(20, 25)], 300, None),
                record("tie", &["link"], &[slot(30, 35)], 200, None),
                record("apart", &["elsewhere"], &[slot(40, 45)], 50, None),
            ],
            t(0),
        );
        let mine = refs(&["link", "path"]);
        let mut busy = busy_for(&records, &mine, Some("mine"));
        busy.sort();
        assert_eq!(busy, [slot(10, 15), slot(20, 25), slot(30, 35)]);
        // Stamped earlier, or at the same µs with a smaller id.
        let mut ahead = ahead_for(&records, &mine, Some("mine"));
        ahead.sort();
        assert_eq!(ahead, [slot(10, 15)]);
        let tie = refs(&["link"]);
        let mut ahead = ahead_for(&records, &tie, Some("tie"));
        ahead.sort();
        assert_eq!(ahead, [slot(0, 5)], "mine < tie at the same ts");
        // Not read back: every other one stands before it.
        assert_eq!(ahead_for(&records, &tie, Some("unknown")).len(), 3);
    }

    fn mine_again() -> Value {
        record("m", &["link"], &[slot(0, 5)], 60, None)
    }

    #[test]
    fn a_plans_standing_is_known_once_read_back_after_its_write() {
        let board = Board::default();
        let mut r = board.join("p", refs(&["link"]));
        assert_eq!(r.ahead(), None, "nothing read yet");
        r.publish(&[slot(0, 5)]);
        let now = Instant::now();
        let due = board.due(now, Duration::from_secs(10), t(0));
        assert_eq!(due, [("p".to_owned(), 1, vec![slot(0, 5)])]);
        // A read that went out before the write does not tell.
        let before = board.written_versions();
        board.written("p", 1, now);
        let own = HashMap::from([("p".to_owned(), "m".to_owned())]);
        let other = record("o", &["link"], &[slot(3, 8)], 50, None);
        let mine = record("m", &["link"], &[slot(0, 5)], 60, None);
        board.read(parse(&[other.clone(), mine.clone()], t(0)), &own, &before);
        assert_eq!(r.ahead(), None);
        board.read(parse(&[other, mine], t(0)), &own, &board.written_versions());
        assert_eq!(r.ahead(), Some(vec![slot(3, 8)]), "o was stamped first");
        assert_eq!(r.busy(), [slot(3, 8)]);
        // Written: due again only for renewal, while its slots last.
        assert!(board.due(now, Duration::from_secs(10), t(0)).is_empty());
        let later = now + Duration::from_secs(10);
        assert_eq!(board.due(later, Duration::from_secs(10), t(0)).len(), 1);
        assert!(board.due(later, Duration::from_secs(10), t(5)).is_empty());
        // o went away (its TTL ran out): its slots are freed once.
        assert!(!r.freed());
        board.read(
            parse(&[mine_again()], t(0)),
            &own,
            &board.written_versions(),
        );
        assert!(r.freed());
        assert!(!r.freed());
        assert!(r.busy().is_empty());
        // UNIS down: the slots last read count.
        board.failed();
        assert_eq!(r.ahead(), Some(vec![]));
        // A restarted probe replaces the old one, whose drop leaves it.
        let r2 = board.join("p", refs(&["link"]));
        drop(r);
        assert!(board.wanted());
        drop(r2);
        assert!(!board.wanted());
    }
}
