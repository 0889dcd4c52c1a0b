//! One kernel timer for every probe's next instant.
//!
//! Probes on the same schedule are due within microseconds of each other.
//! With a tokio timer each, every collection re-armed its own timer, and
//! each re-arm woke the time driver (an eventfd write per probe per tick);
//! tokio's wheel also wakes twice for a timer a second away (once to move
//! it down from its coarse level). Here one timerfd, armed on the wall
//! clock for the instants that fall within [`COALESCE_US`] of the
//! earliest, wakes the process once per shared instant: never before an
//! instant, at most `COALESCE_US` after it (tokio's own granularity).
//! The timer repeats at the step between its last two instants, so probes
//! on a steady interval cost no system call to set it again.

use std::io;
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::sample::Timestamp;

/// How much later than its instant a probe may be woken so that it shares
/// a wakeup with the probes due just after it.
const COALESCE_US: u64 = 1_000;

/// Where probes wait for their instants. Cloned into every probe's task.
#[derive(Clone)]
pub struct Alarms {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    /// Tells the timer task that the plan may have moved earlier.
    rearm: Notify,
}

#[derive(Default)]
struct State {
    next_id: u64,
    waiting: Vec<Waiting>,
    /// The instant the timer is set for.
    armed: Option<Timestamp>,
}

struct Waiting {
    id: u64,
    at: Timestamp,
    waker: Waker,
}

impl State {
    /// When the timer should fire: the latest instant within
    /// [`COALESCE_US`] of the earliest one waiting.
    fn plan(&self) -> Option<Timestamp> {
        let earliest = self.waiting.iter().map(|w| w.at).min()?;
        let window = earliest.0.saturating_add(COALESCE_US);
        self.waiting
            .iter()
            .map(|w| w.at)
            .filter(|at| at.0 <= window)
            .max()
    }

    /// Wakes (and forgets) every waiter whose instant is not after `now`;
    /// how many.
    fn wake_due(&mut self, now: Timestamp) -> usize {
        let before = self.waiting.len();
        self.waiting.retain(|w| {
            let due = w.at <= now;
            if due {
                w.waker.wake_by_ref();
            }
            !due
        });
        before - self.waiting.len()
    }
}

/// Stops the timer task when the run ends.
pub struct TimerTask(JoinHandle<()>);

impl Drop for TimerTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Alarms {
    /// Makes the timer and starts its task on the current runtime. Without
    /// a timerfd (none left, or a sandbox refuses it) the task waits with
    /// tokio sleeps instead, which costs more wakeups but is just as
    /// correct.
    pub fn start() -> (Self, TimerTask) {
        // SAFETY: the OwnedFd moves into the AsyncFd, so the descriptor stays
        // open and the same for as long as it is registered.
        let registered = timerfd().and_then(|fd| {
            unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
                .map_err(io::Error::from)
        });
        let timer = registered
            .inspect_err(
                |e| tracing::warn!(error = %e, "no timerfd: the probes wait on tokio sleeps"),
            )
            .ok();
        Self::start_with(timer)
    }

    fn start_with(timer: Option<AsyncFd<OwnedFd>>) -> (Self, TimerTask) {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            rearm: Notify::new(),
        });
        let task = tokio::spawn(run(Arc::clone(&shared), timer));
        (Self { shared }, TimerTask(task))
    }

    /// Waits until the wall clock reaches `at`.
    pub async fn until(&self, at: Timestamp) {
        Wait {
            shared: &self.shared,
            at,
            id: None,
        }
        .await;
    }
}

fn until_now(at: Timestamp) -> Duration {
    Duration::from_micros(at.0.saturating_sub(Timestamp::now().0))
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // The state stays consistent whatever panicked while holding it: every
    // change is one Vec operation or one field store.
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One probe waiting for `at`.
struct Wait<'a> {
    shared: &'a Shared,
    at: Timestamp,
    id: Option<u64>,
}

impl std::future::Future for Wait<'_> {
    type Output = ();

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<()> {
        if Timestamp::now() >= self.at {
            self.leave();
            return Poll::Ready(());
        }
        let at = self.at;
        let mut state = lock(&self.shared.state);
        let id = match self.id {
            Some(id) => id,
            None => {
                let id = state.next_id;
                state.next_id += 1;
                id
            }
        };
        match state.waiting.iter_mut().find(|w| w.id == id) {
            Some(w) => w.waker.clone_from(cx.waker()),
            // New, or woken while the wall clock stepped back: wait again.
            None => state.waiting.push(Waiting {
                id,
                at,
                waker: cx.waker().clone(),
            }),
        }
        let moved = state.plan() != state.armed;
        drop(state);
        self.id = Some(id);
        if moved {
            self.shared.rearm.notify_one();
        }
        Poll::Pending
    }
}

impl Wait<'_> {
    fn leave(&mut self) {
        if let Some(id) = self.id.take() {
            lock(&self.shared.state).waiting.retain(|w| w.id != id);
        }
    }
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        self.leave();
    }
}

/// The timer task: sets the timer for the plan, wakes who is due when it
/// fires, and sets it again when a new instant comes before the plan.
/// Without a timer (none could be made, or it failed), it sleeps until the
/// plan with tokio instead.
async fn run(shared: Arc<Shared>, mut timer: Option<AsyncFd<OwnedFd>>) {
    let mut set = Setting::default();
    loop {
        let (plan, woke) = {
            let mut state = lock(&shared.state);
            let woke = state.wake_due(Timestamp::now());
            state.armed = state.plan();
            (state.armed, woke)
        };
        if let Some(fd) = &timer
            && set.stale(plan, woke)
        {
            let wanted = set.towards(plan);
            match arm(fd.get_ref(), wanted) {
                Ok(()) => set = wanted,
                Err(e) => {
                    // Cannot happen with the values arm() builds.
                    tracing::error!(error = %e, "cannot set the probes' timer: they wait on tokio sleeps from now on");
                    timer = None;
                }
            }
        }
        let fired = async {
            match &timer {
                Some(fd) => fd.readable().await.map(|mut guard| {
                    // Reading consumes the expiry count, after which the
                    // descriptor stays unreadable until the next expiry (an
                    // empty read, set again before it was read, changes
                    // nothing); clearing here saves the read that would
                    // only learn that.
                    let expiries = read_expiries(guard.get_inner()).unwrap_or(0);
                    guard.clear_ready();
                    expiries
                }),
                None => std::future::pending().await,
            }
        };
        let slept = async {
            match (&timer, plan) {
                (None, Some(at)) => tokio::time::sleep(until_now(at)).await,
                _ => std::future::pending().await,
            }
        };
        tokio::select! {
            result = fired => match result {
                Ok(expiries) => set.fired(expiries),
                Err(e) => {
                    tracing::error!(error = %e, "the probes' timer failed: they wait on tokio sleeps from now on");
                    timer = None;
                }
            },
            () = shared.rearm.notified() => {}
            () = slept => {}
        }
    }
}

/// What the timer is set to: its next expiry and the step it repeats at,
/// and the expiry that passed last, which the next step is measured from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Setting {
    next: Option<Timestamp>,
    /// Microseconds; 0 fires once.
    every: u64,
    last: Option<Timestamp>,
}

/// Steps longer than this are not repeated: a probe that waits that long
/// is rare, and its next step is unlikely to be the same.
const MAX_REPEAT_US: u64 = 3_600_000_000;

impl Setting {
    /// The setting for `plan`, repeating at the step from the last expiry,
    /// so that the instant after `plan`, when it comes as often, needs no
    /// new setting.
    fn towards(self, plan: Option<Timestamp>) -> Self {
        let every = match (self.last, plan) {
            (Some(last), Some(at)) if at > last && at.0 - last.0 <= MAX_REPEAT_US => at.0 - last.0,
            _ => 0,
        };
        Self {
            next: plan,
            every: if plan.is_some() { every } else { 0 },
            last: self.last,
        }
    }

    /// Whether the timer must be set again for `plan`, with `woke` probes
    /// just woken.
    fn stale(&self, plan: Option<Timestamp>, woke: usize) -> bool {
        match plan {
            Some(_) => plan != self.next,
            // Nobody waits. The probes just woken wait again in a moment,
            // most often for the instant the timer repeats at: it is left
            // as it is, and stopped once it fires for nobody.
            None => self.next.is_some() && woke == 0,
        }
    }

    /// Accounts for `expiries` (as read from the timer): a repeating
    /// timer has moved on by as many steps, a one-shot one is spent. The
    /// kernel moves a repeating timer past the moment of the read in
    /// whole steps and counts them, so this matches its next expiry.
    fn fired(&mut self, expiries: u64) {
        let Some(next) = self.next.filter(|_| expiries > 0) else {
            return;
        };
        let step = |n: u64| Timestamp(next.0.saturating_add(self.every.saturating_mul(n)));
        self.last = Some(step(expiries - 1));
        self.next = (self.every > 0).then(|| step(expiries));
    }
}

fn timerfd() -> io::Result<OwnedFd> {
    // SAFETY: plain system call with constant arguments.
    let fd = unsafe {
        libc::timerfd_create(libc::CLOCK_REALTIME, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC)
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just created and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

// The libc crate marks musl's `time_t` deprecated ahead of musl's move to a
// 64-bit `time_t` on 32-bit targets; only its bounds are used here, which
// follow whatever width the target has.
#[allow(
    deprecated,
    reason = "time_t is deprecated on musl targets only, for a width change this code follows"
)]
fn timespec(micros: u64) -> libc::timespec {
    libc::timespec {
        tv_sec: libc::time_t::try_from(micros / 1_000_000).unwrap_or(libc::time_t::MAX),
        // Below 10^9: fits every c_long.
        tv_nsec: ((micros % 1_000_000) * 1_000) as libc::c_long,
    }
}

/// Sets the timer to fire at the wall-clock instant `set.next` and every
/// `set.every` after, or disarms it.
fn arm(timer: &OwnedFd, set: Setting) -> io::Result<()> {
    // All zero disarms, so an instant at the epoch (long past anyway) is
    // set a microsecond later.
    let micros = set.next.map_or(0, |at| at.0.max(1));
    let spec = libc::itimerspec {
        it_interval: timespec(set.every),
        it_value: timespec(micros),
    };
    // SAFETY: `spec` is a valid itimerspec for the call's duration; the old
    // value is not asked for.
    let rc = unsafe {
        libc::timerfd_settime(
            timer.as_raw_fd(),
            libc::TFD_TIMER_ABSTIME,
            &spec,
            std::ptr::null_mut(),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The times the timer expired since the last read; 0 when it has not.
fn read_expiries(fd: &OwnedFd) -> io::Result<u64> {
    let mut count = [0u8; 8];
    // SAFETY: reads at most 8 bytes into an 8-byte buffer.
    let n = unsafe { libc::read(fd.as_raw_fd(), count.as_mut_ptr().cast(), count.len()) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::WouldBlock {
            Ok(0)
        } else {
            Err(e)
        };
    }
    Ok(if n == 8 { u64::from_ne_bytes(count) } else { 0 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn waiting(ats: &[u64]) -> State {
        State {
            next_id: ats.len() as u64,
            waiting: ats
                .iter()
                .enumerate()
                .map(|(i, &at)| Waiting {
                    id: i as u64,
                    at: Timestamp(at),
                    waker: Waker::noop().clone(),
                })
                .collect(),
            armed: None,
        }
    }

    #[test]
    fn plan_takes_the_latest_instant_near_the_earliest() {
        assert_eq!(waiting(&[]).plan(), None);
        assert_eq!(waiting(&[5_000]).plan(), Some(Timestamp(5_000)));
        // 5 000, 5 400 and 6 000 share a wakeup; 6 001 is a later one.
        assert_eq!(
            waiting(&[6_001, 5_400, 5_000, 6_000, 90_000]).plan(),
            Some(Timestamp(6_000))
        );
    }

    #[test]
    fn wake_due_forgets_only_the_due() {
        let mut s = waiting(&[10, 20, 30]);
        assert_eq!(s.wake_due(Timestamp(20)), 2);
        let left: Vec<u64> = s.waiting.iter().map(|w| w.at.0).collect();
        assert_eq!(left, [30]);
    }

    /// The settings the timer task makes for a run of plans, one expiry
    /// each: how many it had to set. Between an expiry and the next plan
    /// the woken probe is collecting, and nobody waits.
    fn sets_for(plans: &[u64]) -> usize {
        let mut set = Setting::default();
        let mut sets = 0;
        for &plan in plans {
            let plan = Some(Timestamp(plan));
            if set.stale(plan, 0) {
                set = set.towards(plan);
                sets += 1;
            }
            set.fired(1);
            if set.stale(None, 1) {
                set = set.towards(None);
                sets += 1;
            }
        }
        sets
    }

    #[test]
    fn a_steady_interval_sets_the_timer_twice() {
        // The first instant is one-shot; the second sets the step; the
        // timer then moves on by itself.
        assert_eq!(
            sets_for(&[1_000_000, 2_000_000, 3_000_000, 4_000_000, 5_000_000]),
            2
        );
        // A change of pace sets it again, once.
        assert_eq!(
            sets_for(&[1_000_000, 2_000_000, 3_000_000, 3_500_000, 4_000_000]),
            3
        );
        // Irregular instants set it every time.
        assert_eq!(sets_for(&[10, 30, 35, 90]), 4);
    }

    #[test]
    fn expiries_move_a_repeating_timer_and_spend_a_one_shot_one() {
        let mut set = Setting::default().towards(Some(Timestamp(100)));
        assert_eq!(set.every, 0);
        set.fired(0);
        assert_eq!(set.next, Some(Timestamp(100)), "no expiry, no change");
        set.fired(1);
        assert_eq!((set.next, set.last), (None, Some(Timestamp(100))));
        let mut set = set.towards(Some(Timestamp(150)));
        assert_eq!(set.every, 50);
        // Three expiries read at once (the process was late): the last
        // one was at 250, the next is at 300.
        set.fired(3);
        assert_eq!(
            (set.next, set.last),
            (Some(Timestamp(300)), Some(Timestamp(250)))
        );
        // Nobody waiting: left running while the woken probes collect,
        // stopped when it fired for nobody, and then not repeating.
        assert!(!set.stale(None, 2));
        assert!(set.stale(None, 0));
        assert_eq!(set.towards(None).every, 0);
        assert!(!set.towards(None).stale(None, 0));
        // Going back (the wall clock stepped back) or far ahead: one-shot.
        assert_eq!(set.towards(Some(Timestamp(200))).every, 0);
        assert_eq!(
            set.towards(Some(Timestamp(250 + MAX_REPEAT_US + 1))).every,
            0
        );
    }

    /// The kernel's next expiry of `fd`, as a wall-clock instant.
    fn kernel_next(fd: &OwnedFd) -> Timestamp {
        // SAFETY: an all-zero itimerspec is a valid value to overwrite.
        let mut now: libc::itimerspec = unsafe { std::mem::zeroed() };
        // SAFETY: `now` is a valid itimerspec to write into.
        let rc = unsafe { libc::timerfd_gettime(fd.as_raw_fd(), &mut now) };
        assert_eq!(rc, 0, "{}", io::Error::last_os_error());
        let left = Duration::new(now.it_value.tv_sec as u64, now.it_value.tv_nsec as u32);
        Timestamp(Timestamp::now().0 + u64::try_from(left.as_micros()).unwrap())
    }

    #[test]
    fn the_kernel_repeats_the_timer_where_setting_expects_it() {
        let fd = timerfd().unwrap();
        let start = after(Duration::from_millis(20));
        let set = Setting {
            next: Some(start),
            every: 20_000,
            last: None,
        };
        arm(&fd, set).unwrap();
        // Read late, after three expiries or more.
        std::thread::sleep(Duration::from_millis(75));
        let expiries = read_expiries(&fd).unwrap();
        let mut tracked = set;
        tracked.fired(expiries);
        assert!(expiries >= 3, "{expiries} expiries in 75 ms at 20 ms");
        let next = tracked.next.unwrap();
        assert_eq!(next.0, start.0 + expiries * 20_000);
        // gettime rounds to the microsecond both ways and time passes
        // between the two clock reads.
        let kernel = kernel_next(&fd);
        assert!(
            kernel.0.abs_diff(next.0) < 1_000,
            "the kernel fires next at {kernel:?}, Setting expects {next:?}"
        );
        assert_eq!(read_expiries(&fd).unwrap(), 0, "nothing new yet");
    }

    fn after(d: Duration) -> Timestamp {
        Timestamp(Timestamp::now().0 + u64::try_from(d.as_micros()).unwrap())
    }

    #[tokio::test]
    async fn probes_due_together_wake_together_never_early() {
        let (alarms, _task) = Alarms::start();
        let base = after(Duration::from_millis(50));
        let waits = (0..4u64).map(|i| {
            let alarms = alarms.clone();
            let at = Timestamp(base.0 + i * 200);
            async move {
                alarms.until(at).await;
                let woke = Timestamp::now();
                assert!(woke >= at, "woken at {woke:?}, before {at:?}");
                woke
            }
        });
        let woke = tokio::time::timeout(Duration::from_secs(10), futures_join(waits))
            .await
            .expect("a wait never ended");
        let last = Timestamp(base.0 + 600);
        for w in woke {
            // One wakeup for the four: the first waited for the last.
            assert!(w >= last, "woken at {w:?}, before the group's {last:?}");
            assert!(
                w.0 - last.0 < 500_000,
                "woken at {w:?}, long after {last:?}"
            );
        }
        assert!(lock(&alarms.shared.state).waiting.is_empty());
    }

    #[tokio::test]
    async fn an_earlier_instant_sets_the_timer_again() {
        let (alarms, _task) = Alarms::start();
        let late = alarms.clone();
        let far = tokio::spawn(async move { late.until(after(Duration::from_secs(30))).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let started = Instant::now();
        alarms.until(after(Duration::from_millis(50))).await;
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the near instant waited for the far one"
        );
        assert!(!far.is_finished());
        far.abort();
    }

    #[tokio::test]
    async fn a_dropped_wait_leaves_nothing_behind() {
        let (alarms, _task) = Alarms::start();
        let at = after(Duration::from_secs(30));
        let wait = tokio::time::timeout(Duration::from_millis(20), alarms.until(at)).await;
        assert!(wait.is_err());
        assert!(lock(&alarms.shared.state).waiting.is_empty());
    }

    #[tokio::test]
    async fn past_instants_do_not_wait() {
        let (alarms, _task) = Alarms::start();
        let started = Instant::now();
        alarms.until(Timestamp(1)).await;
        alarms.until(Timestamp::now()).await;
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[tokio::test]
    async fn without_a_timerfd_waits_are_tokio_sleeps() {
        let (alarms, _task) = Alarms::start_with(None);
        let near = after(Duration::from_millis(30));
        let far = Timestamp(near.0 + 40_000);
        let late = alarms.clone();
        let far_wait = tokio::spawn(async move {
            late.until(far).await;
            Timestamp::now()
        });
        let limit = Duration::from_secs(10);
        tokio::time::timeout(limit, alarms.until(near))
            .await
            .expect("the near wait never ended");
        assert!(Timestamp::now() >= near);
        let woke = tokio::time::timeout(limit, far_wait)
            .await
            .expect("the far wait never ended");
        assert!(woke.unwrap() >= far);
        assert!(lock(&alarms.shared.state).waiting.is_empty());
    }

    async fn futures_join<F: std::future::Future<Output = Timestamp> + Send + 'static>(
        futures: impl Iterator<Item = F>,
    ) -> Vec<Timestamp> {
        let handles: Vec<_> = futures.map(tokio::spawn).collect();
        let mut out = Vec::new();
        for h in handles {
            out.push(h.await.unwrap());
        }
        out
    }
}
