//! `adaptive.simple_avoid`: measurements that share a resource (a link, a
//! path between two hosts) take turns instead of running at the same time
//! and disturbing each other. Each measurement publishes the slots it will
//! run in (UNIS: the measurement's `scheduled_times`), plans its own
//! around the slots the others published, and runs at the start of each of
//! its slots.
//!
//! Parameters (the original's): `every` (seconds between slot starts when
//! nothing is in the way), `duration` (seconds a run occupies), and
//! `num_to_schedule` (slots per plan, default 10) and `max_wait` (the
//! first slot starts after a random wait of up to this many seconds,
//! default 3, so that measurements that start together do not all plan at
//! once).
//!
//! The plan ([`plan`]) is a pure function of the start, the parameters and
//! the others' slots. It fixes two faults of the original's
//! `build_basic_schedule`: a busy slot that lies within an earlier one no
//! longer moves the plan backwards into it, and a plan never has more
//! than `num_to_schedule` slots. Where the others' slots come from is the
//! [`Reservations`] trait: the UNIS client implements it
//! (`unis::reservations`); without UNIS ([`NoReservations`]) nothing is in
//! the way and the schedule is a plain every-`every` one.
//!
//! Two agents that plan at the same moment cannot see each other's plan.
//! Of two plans that overlap, the one that reached UNIS first stands and
//! the other yields: before each run the slot is checked against the
//! slots that [`Reservations::ahead`] says were published before this
//! plan, and one that overlaps makes the schedule plan again; a slot
//! whose standing is not known yet (its plan was not read back from UNIS)
//! is skipped rather than risked. The original checked once, after
//! publishing, and made both agents move. When another measurement's
//! slots stop counting (it went away), the schedule plans again to use
//! them.

use std::collections::VecDeque;
use std::fmt::Debug;
use std::time::Duration;

use super::slots::Slot;
use crate::sample::Timestamp;

/// The slots other measurements reserved, and where this one's plan goes.
/// The UNIS client implements it over a snapshot that it refreshes: the
/// `scheduled_times` of the other measurements that share one of this
/// probe's `configuration.resources` refs. No method may block: the
/// schedule asks before every run.
pub trait Reservations: Send + Debug {
    /// Every other measurement's slots (any order), to plan around.
    fn busy(&mut self) -> Vec<Slot>;
    /// This measurement's new plan, to be published.
    fn publish(&mut self, plan: &[Slot]);
    /// The slots of the other measurements whose plans were published
    /// before this one's latest plan: those it must yield to. `None` while
    /// that is not known (the plan was not read back yet).
    fn ahead(&mut self) -> Option<Vec<Slot>>;
    /// Whether another measurement's slots stopped counting (its record
    /// outlived its TTL or was deleted) since the last call: the plan may
    /// now take them.
    fn freed(&mut self) -> bool {
        false
    }
}

/// No other measurements: nothing is ever in the way.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoReservations;

impl Reservations for NoReservations {
    fn busy(&mut self) -> Vec<Slot> {
        Vec::new()
    }

    fn publish(&mut self, _plan: &[Slot]) {}

    fn ahead(&mut self) -> Option<Vec<Slot>> {
        Some(Vec::new())
    }
}

/// The parameters of `adaptive.simple_avoid`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Avoid {
    /// Between slot starts when nothing is in the way.
    pub every: Duration,
    /// How long a run occupies the resource.
    pub duration: Duration,
    /// Slots per plan.
    pub num_to_schedule: usize,
    /// Longest random wait before a plan's first slot.
    pub max_wait: Duration,
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// `count` slots of `duration`, `every` apart from `start` on, moved past
/// every `busy` slot they would overlap (a slot that would overlap starts
/// at the end of the busy one instead, and the grid goes on from there).
pub fn plan(
    start: Timestamp,
    every: Duration,
    duration: Duration,
    count: usize,
    busy: &[Slot],
) -> Vec<Slot> {
    let (every, duration) = (micros(every).max(1), micros(duration));
    let mut busy = busy.to_vec();
    busy.sort_unstable();
    let mut out = Vec::with_capacity(count);
    let mut cur = start.0;
    let push = |cur: &mut u64, out: &mut Vec<Slot>| {
        out.push(Slot {
            start: Timestamp(*cur),
            end: Timestamp(cur.saturating_add(duration)),
        });
        *cur = cur.saturating_add(every);
    };
    for b in &busy {
        if out.len() >= count {
            break;
        }
        if b.end.0 <= cur {
            continue;
        }
        while out.len() < count && cur.saturating_add(duration) <= b.start.0 {
            push(&mut cur, &mut out);
        }
        cur = cur.max(b.end.0);
    }
    while out.len() < count {
        push(&mut cur, &mut out);
    }
    out
}

/// The first slot of `plan` that overlaps one of `busy`.
pub fn first_conflict(plan: &[Slot], busy: &[Slot]) -> Option<Slot> {
    plan.iter()
        .copied()
        .find(|p| busy.iter().any(|b| p.overlaps(b)))
}

/// The instants of `adaptive.simple_avoid`.
#[derive(Debug)]
pub struct AvoidInstants {
    params: Avoid,
    rng: fastrand::Rng,
    reservations: Box<dyn Reservations>,
    plan: VecDeque<Slot>,
    last: Timestamp,
    replans: u64,
}

impl AvoidInstants {
    /// A schedule that plans around `reservations`; `rng` draws the waits.
    pub fn new(
        params: Avoid,
        now: Timestamp,
        rng: fastrand::Rng,
        reservations: Box<dyn Reservations>,
    ) -> Self {
        Self {
            params,
            rng,
            reservations,
            plan: VecDeque::new(),
            last: now,
            replans: 0,
        }
    }

    /// Plans made so far (the first one included).
    pub fn plans(&self) -> u64 {
        self.replans
    }

    fn replan(&mut self, now: Timestamp) {
        let wait = (self.rng.f64() * self.params.max_wait.as_secs_f64() * 1e6) as u64;
        // Whole seconds, as UNIS's own date-times are.
        let start = Timestamp(
            now.0
                .saturating_add(wait)
                .div_ceil(1_000_000)
                .saturating_mul(1_000_000),
        );
        let busy = self.reservations.busy();
        let plan = plan(
            start,
            self.params.every,
            self.params.duration,
            self.params.num_to_schedule,
            &busy,
        );
        self.reservations.publish(&plan);
        self.plan = plan.into();
        self.replans += 1;
    }

    /// The start of the next slot given that it is `now`: slots that have
    /// begun are dropped, and a slot that a plan published before this
    /// one's overlaps makes the schedule plan again.
    pub fn next_after(&mut self, now: Timestamp) -> Option<Timestamp> {
        // Two plans at most per call: a fresh plan avoids every busy slot
        // known, so only a race with another agent can make it conflict.
        if self.reservations.freed() && !self.plan.is_empty() {
            tracing::info!("another measurement's slots were freed; planning again");
            self.plan.clear();
        }
        for _ in 0..3 {
            while self.plan.front().is_some_and(|s| s.start < now) {
                self.plan.pop_front();
            }
            let Some(next) = self.plan.front().copied() else {
                self.replan(now);
                continue;
            };
            // Unknown standing: checked again before the run.
            let ahead = self.reservations.ahead().unwrap_or_default();
            if first_conflict(&[next], &ahead).is_some() {
                tracing::info!(slot = ?next, "another measurement took this slot; planning again");
                self.plan.clear();
                self.replan(now);
                continue;
            }
            self.plan.pop_front();
            self.last = next.start;
            return Some(next.start);
        }
        let next = self.plan.pop_front()?;
        self.last = next.start;
        Some(next.start)
    }

    /// Whether the slot starting at `at` (the last one returned) may run
    /// now: no plan published before this one's holds it, and this plan's
    /// standing is known. A slot that may not run is dropped; one that
    /// another plan holds makes the next call plan again.
    pub fn may_run(&mut self, at: Timestamp) -> bool {
        let mine = Slot {
            start: at,
            end: Timestamp(at.0.saturating_add(micros(self.params.duration))),
        };
        match self.reservations.ahead() {
            None => {
                tracing::debug!(slot = ?mine, "this plan was not read back from UNIS yet; the slot is skipped");
                false
            }
            Some(ahead) if first_conflict(&[mine], &ahead).is_some() => {
                tracing::info!(slot = ?mine, "another measurement took this slot; planning again");
                self.plan.clear();
                false
            }
            Some(_) => true,
        }
    }
}

impl Iterator for AvoidInstants {
    type Item = Timestamp;

    /// The planned instants, the clock standing at the last one.
    fn next(&mut self) -> Option<Timestamp> {
        let last = self.last;
        self.next_after(last)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    const T0: u64 = 1_700_000_000_000_000;

    fn t(secs: u64) -> Timestamp {
        Timestamp(T0 + secs * 1_000_000)
    }

    fn slot(a: u64, b: u64) -> Slot {
        Slot {
            start: t(a),
            end: t(b),
        }
    }

    fn starts(plan: &[Slot]) -> Vec<u64> {
        plan.iter().map(|s| (s.start.0 - T0) / 1_000_000).collect()
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn nothing_in_the_way_is_a_grid() {
        let p = plan(t(0), secs(60), secs(5), 4, &[]);
        assert_eq!(
            p,
            [slot(0, 5), slot(60, 65), slot(120, 125), slot(180, 185)]
        );
    }

    #[test]
    fn slots_move_past_busy_ones() {
        // Another measurement holds 100..130 and 170..175.
        let busy = [slot(170, 175), slot(100, 130)];
        let p = plan(t(0), secs(60), secs(5), 5, &busy);
        // 0 and 60 fit; 120 would overlap 100..130: the grid resumes at 130;
        // 190 (after 170..175) and 250 follow.
        assert_eq!(starts(&p), [0, 60, 130, 190, 250]);
        assert_eq!(first_conflict(&p, &busy), None);
        // A slot may end exactly where a busy one starts, and start
        // exactly where one ends.
        let p = plan(t(0), secs(10), secs(5), 3, &[slot(5, 8), slot(12, 14)]);
        assert_eq!(starts(&p), [0, 14, 24]);
    }

    #[test]
    fn the_originals_faults_are_gone() {
        // A busy slot inside an earlier, longer one: the original set the
        // cursor back to its end (20), inside 0..100.
        let busy = [slot(0, 100), slot(10, 20)];
        let p = plan(t(0), secs(30), secs(5), 3, &busy);
        assert_eq!(starts(&p), [100, 130, 160]);
        assert_eq!(first_conflict(&p, &busy), None);
        // Never more than num_to_schedule slots, however many gaps follow.
        let busy: Vec<Slot> = (1..20).map(|i| slot(i * 100, i * 100 + 10)).collect();
        assert_eq!(plan(t(0), secs(20), secs(5), 3, &busy).len(), 3);
        // Busy slots in the past are ignored.
        let p = plan(t(1000), secs(10), secs(5), 2, &[slot(0, 50)]);
        assert_eq!(starts(&p), [1000, 1010]);
    }

    /// A UNIS stand-in: others' slots that the test changes, and what the
    /// schedule published.
    #[derive(Debug, Default)]
    struct Board {
        busy: Arc<Mutex<Vec<Slot>>>,
        published: Arc<Mutex<Vec<Vec<Slot>>>>,
    }

    impl Reservations for Board {
        fn busy(&mut self) -> Vec<Slot> {
            self.busy.lock().unwrap().clone()
        }

        fn publish(&mut self, plan: &[Slot]) {
            self.published.lock().unwrap().push(plan.to_vec());
        }

        fn ahead(&mut self) -> Option<Vec<Slot>> {
            Some(self.busy())
        }
    }

    fn params(n: usize) -> Avoid {
        Avoid {
            every: secs(60),
            duration: secs(5),
            num_to_schedule: n,
            max_wait: secs(3),
        }
    }

    #[test]
    fn runs_at_slot_starts_and_plans_again_when_exhausted() {
        let board = Board::default();
        let (busy, published) = (Arc::clone(&board.busy), Arc::clone(&board.published));
        *busy.lock().unwrap() = vec![slot(50, 70)];
        let mut it = AvoidInstants::new(
            params(3),
            t(0),
            fastrand::Rng::with_seed(1),
            Box::new(board),
        );
        let first: Vec<Timestamp> = it.by_ref().take(3).collect();
        // The random wait is under 3 s and rounded up to a whole second.
        let w = (first[0].0 - T0) / 1_000_000;
        assert!(w <= 3, "waited {w} s");
        assert_eq!(first[1], t(70), "60 + w would overlap 50..70");
        assert_eq!(first[2], t(130));
        assert_eq!(published.lock().unwrap().len(), 1);
        assert_eq!(
            published.lock().unwrap()[0]
                .iter()
                .map(|s| s.start)
                .collect::<Vec<_>>(),
            first
        );
        // Exhausted: a new plan from the last instant, published too.
        let fourth = it.next().unwrap();
        assert!(fourth >= t(130) && fourth <= t(133), "{fourth:?}");
        assert_eq!(published.lock().unwrap().len(), 2);
        assert_eq!(it.plans(), 2);
    }

    #[test]
    fn a_slot_taken_meanwhile_makes_it_plan_again() {
        let board = Board::default();
        let busy = Arc::clone(&board.busy);
        let mut it = AvoidInstants::new(
            params(5),
            t(0),
            fastrand::Rng::with_seed(2),
            Box::new(board),
        );
        let first = it.next_after(t(0)).unwrap();
        // Another agent publishes a plan over our next slot (first + 60).
        let ours = Timestamp(first.0 + 60_000_000);
        let taken = Slot {
            start: ours,
            end: Timestamp(ours.0 + 30_000_000),
        };
        *busy.lock().unwrap() = vec![taken];
        let next = it.next_after(Timestamp(first.0 + 1)).unwrap();
        assert_eq!(it.plans(), 2, "the conflict made it plan again");
        let mut run = Vec::new();
        run.push(next);
        run.extend(it.by_ref().take(3));
        for start in run {
            let mine = Slot {
                start,
                end: Timestamp(start.0 + 5_000_000),
            };
            assert!(!mine.overlaps(&taken), "{mine:?} overlaps {taken:?}");
        }
        assert_eq!(it.plans(), 2);
        // Late: slots whose start has passed are dropped, not run in a burst.
        let now = Timestamp(next.0 + 1_000_000_000);
        let later = it.next_after(now).unwrap();
        assert!(later >= now);
    }

    /// A UNIS stand-in whose plan standing the test sets.
    #[derive(Debug, Default)]
    struct Standing {
        ahead: Arc<Mutex<Option<Vec<Slot>>>>,
        freed: Arc<Mutex<bool>>,
    }

    impl Reservations for Standing {
        fn busy(&mut self) -> Vec<Slot> {
            self.ahead.lock().unwrap().clone().unwrap_or_default()
        }

        fn publish(&mut self, _plan: &[Slot]) {}

        fn ahead(&mut self) -> Option<Vec<Slot>> {
            self.ahead.lock().unwrap().clone()
        }

        fn freed(&mut self) -> bool {
            std::mem::take(&mut *self.freed.lock().unwrap())
        }
    }

    #[test]
    fn a_slot_runs_only_when_its_plan_stands() {
        let standing = Standing::default();
        let (ahead, freed) = (Arc::clone(&standing.ahead), Arc::clone(&standing.freed));
        let mut it = AvoidInstants::new(
            params(5),
            t(0),
            fastrand::Rng::with_seed(4),
            Box::new(standing),
        );
        let first = it.next_after(t(0)).unwrap();
        assert!(!it.may_run(first), "not read back yet: skipped");
        *ahead.lock().unwrap() = Some(Vec::new());
        let second = it.next_after(Timestamp(first.0 + 1)).unwrap();
        assert_eq!(second.0, first.0 + 60_000_000, "the next slot of the plan");
        assert!(it.may_run(second));
        assert_eq!(it.plans(), 1);
        // A plan stamped before ours now holds the next slot: skipped, and
        // the next call plans around it.
        let third = Timestamp(second.0 + 60_000_000);
        let theirs = Slot {
            start: third,
            end: Timestamp(third.0 + 10_000_000),
        };
        *ahead.lock().unwrap() = Some(vec![theirs]);
        assert!(!it.may_run(third));
        let next = it.next_after(third).unwrap();
        assert_eq!(it.plans(), 2);
        assert!(next >= theirs.end, "{next:?} inside {theirs:?}");
        // Freed slots: a new plan at the next call.
        *freed.lock().unwrap() = true;
        it.next_after(Timestamp(next.0 + 1)).unwrap();
        assert_eq!(it.plans(), 3);
    }

    #[test]
    fn without_unis_it_is_every_every() {
        let mut it = AvoidInstants::new(
            params(4),
            t(0),
            fastrand::Rng::with_seed(3),
            Box::new(NoReservations),
        );
        let got: Vec<u64> = it.by_ref().take(8).map(|t| t.0).collect();
        for w in got.windows(2).take(3) {
            assert_eq!(w[1] - w[0], 60_000_000);
        }
    }
}
