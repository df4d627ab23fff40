//! loom models of the idle protocol (`rt/idle.rs`, `rt/sources.rs`): the
//! real `wakep`/`startm`/`stopm`/`release_and_sleep`/`sleep_idle`/`ready_g`/
//! `note_deadline`/`poll_sources` on loom threads, with goroutine
//! descriptors that are queued and dequeued but not executed (`rt/model.rs`:
//! an M "runs" a goroutine by recording it). A lost wake-up leaves every
//! model thread blocked, which loom reports as a deadlock.

use super::{model, model_with_preemptions};
use crate::loom::{exit_if_shutdown, shutdown};
use crate::rt::model::{
    acquirep_here, add_source, become_m, bind, new_g, new_sched, next_deadline, poll_sources,
    release_and_sleep, runq_put_here, schedule, set_next_deadline, start_m, startm, stopm, take_p,
    wait_ran,
};
use crate::rt::{note_deadline, ready_g};
use crate::Source;
use loom::sync::{Condvar, Mutex};
use std::collections::VecDeque;
use std::sync::Arc;

/// A G queued while the only M gives up the only P: the M either sees it
/// before it lets go of the P, or whoever queued it (`wakep`) finds the idle
/// P and hands it, with the M, back. The queuer is a thread without a P (a
/// timer firing on an idle M, a plain thread), so the G goes to the global
/// queue.
#[test]
fn ready_racing_the_last_m_going_idle() {
    model(|| {
        let s = new_sched(1);
        // The only M starts with the only P and finds nothing to run.
        startm(s, false);
        let g = new_g(1);
        runq_put_here(s, g, true);
        assert_eq!(wait_ran(1), [1]);
        shutdown(|| ());
    });
}

/// Bug 2 (`release_and_sleep`'s run-queue re-check, found by golang_proc.rs
/// test_spawn_while_ms_park): an M that holds a P and runs a goroutine
/// spawns a G onto its own P (`runq_put_here`: into `runnext`, then
/// `wakep`), while the other M, holding the other P and *not* spinning,
/// has found nothing and drops its P (`release_and_sleep` -> `stopm`). A
/// spawner whose `wakep` loads `npidle` before `put_p` raised it wakes
/// nobody; the dropping M must then see the G when it re-checks every P's
/// run queue after `put_p` and call `wakep`, which hands its own P back to
/// it, spinning, so it steals the G. The spawner stays busy (it never looks at
/// its queue again), so nobody else would run the G; a lost G leaves every
/// thread blocked (loom: "deadlock").
///
/// The pair: the dropping M's SeqCst `npidle` RMW in `put_p`, then its
/// run-queue loads (`is_empty`); the spawner's `runnext` swap, then its
/// SeqCst `npidle` load in `wakep`.
///
/// It found a real gap: with the spawner's `runnext` swap `AcqRel`, no
/// SeqCst fence ordered it before `wakep`'s load, and loom let the spawner
/// read `npidle == 0` while the dropping M read an empty queue (store
/// buffering; x86's `xchg` and AArch64's `swpal` happened to order it in
/// hardware, C11 does not). The swap is `SeqCst` now (same instruction).
/// Shown to catch the bug: deleting the re-check loop from
/// `release_and_sleep`, or restoring its pre-fix `else if was_spinning`
/// guard, makes loom report the deadlock
/// (`deadlock; threads = [(Id(0), Blocked(..)), (Id(1), Blocked(..)),
/// (Id(2), Blocked(..))]`), as does weakening the swap back to `AcqRel`.
#[test]
fn spawn_racing_a_non_spinning_m_dropping_its_p() {
    model(|| {
        let s = new_sched(2);
        let pa = take_p(s);
        let pb = take_p(s);
        // The other M: holds its P, is not spinning, and has found nothing.
        start_m(s, move |s, m| {
            acquirep_here(m, pb);
            release_and_sleep(s, m);
            schedule(s, m)
        });
        // This thread is the spawner's M, busy with a goroutine of `pa`.
        become_m(s, pa);
        runq_put_here(s, new_g(1), true);
        assert_eq!(wait_ran(1), [1]);
        shutdown(|| ());
    });
}

/// A sleep that `open` ends (once per open): the stand-in sources' wait.
struct Gate {
    woken: Mutex<bool>,
    cv: Condvar,
}

impl Gate {
    fn new() -> Gate {
        Gate {
            woken: Mutex::new(false),
            cv: Condvar::new(),
        }
    }
    fn wait(&self) {
        let mut w = self.woken.lock().unwrap();
        while !*w {
            w = self.cv.wait(w).unwrap();
        }
        *w = false;
        drop(w);
        exit_if_shutdown();
    }
    fn open(&self) {
        *self.woken.lock().unwrap() = true;
        self.cv.notify_all();
    }
}

/// A blocking source (the netpoller's stand-in): `block` waits until
/// `wake`; it has no deadlines.
struct Blocking(Gate);

impl Source for Blocking {
    fn poll(&self, _now: i64) -> Option<i64> {
        None
    }
    fn blocks(&self) -> bool {
        true
    }
    fn block(&self, _until: Option<i64>) {
        self.0.wait();
    }
    fn wake(&self) {
        self.0.open();
    }
}

/// A goroutine bound to an M is readied (into the M's inbox) from another
/// thread while that M, without a P, goes to block inside the blocking
/// source (`sleep_idle`): the M stores `in_source` before it re-checks its
/// inbox, the waker checks `in_source` after its push (the SeqCst Dekker
/// pair), so either the M sees the goroutine or the waker wakes the source.
/// The M must not stay blocked with a goroutine in its inbox.
#[test]
fn inbox_ready_racing_an_m_entering_the_source() {
    ready_while_the_m_blocks_in(|| Blocking(Gate::new()), |src| src.wake());
}

/// The model of the two inbox races: an M with no P and nothing to run
/// goes idle (stopm -> sleep_idle -> the source `make` builds) while this
/// thread readies a goroutine bound to it; `wake` gets the M out at the
/// end.
fn ready_while_the_m_blocks_in<S: Source>(make: fn() -> S, wake: fn(&S)) {
    model(move || {
        let s = new_sched(1);
        let src = Arc::new(make());
        add_source(s, src.clone());
        let g = new_g(1);
        let m = start_m(s, |s, m| {
            stopm(s, m);
            schedule(s, m)
        });
        // `g` ran on that M and parked; this thread readies it.
        bind(g, m);
        ready_g(g);
        assert_eq!(wait_ran(1), [1]);
        shutdown(|| wake(&src));
    });
}

/// A source with a wait of each M's own (the netpoller's per-M epoll
/// instance's stand-in): `block_own` waits until `wake_own`.
struct Own(Gate);

impl Source for Own {
    fn poll(&self, _now: i64) -> Option<i64> {
        None
    }
    fn blocks(&self) -> bool {
        true
    }
    fn has_own(&self) -> bool {
        true
    }
    fn block_own(&self, _until: Option<i64>) {
        self.0.wait();
    }
    fn wake_own(&self, _m: u64) {
        self.0.open();
    }
}

/// As `inbox_ready_racing_an_m_entering_the_source`, for an M that blocks
/// in its own wait (`own_wait`): it stores `in_own` before it re-checks
/// its inbox, and `wake_m` checks `in_own` after the push. Shown to catch
/// the bug: dropping the inbox re-check from `own_wait` makes loom report
/// the deadlock.
#[test]
fn inbox_ready_racing_an_m_entering_its_own_wait() {
    ready_while_the_m_blocks_in(|| Own(Gate::new()), |src| src.wake_own(0));
}

/// A timer source: `live` timers and, earliest first, timers `stopped`
/// since the scheduler last looked (by threads the model leaves out). A poll
/// discards the earliest stopped one (as a timer heap drops the stopped
/// timer it finds at its top) and reports the earliest timer left, so each
/// poll reports a later deadline than the one before while stopped timers
/// remain: `poll_sources` then raises `next_deadline` once per round.
struct Timers {
    /// (stopped, live), under one lock: fewer loom operations.
    heap: Mutex<(VecDeque<i64>, Vec<i64>)>,
}

impl Source for Timers {
    fn poll(&self, _now: i64) -> Option<i64> {
        let mut h = self.heap.lock().unwrap();
        h.0.pop_front();
        h.0.iter().chain(&h.1).copied().min()
    }
}

/// `note_deadline`'s fetch_min racing `poll_sources` raising the next
/// deadline, while a timer at `when` is added: the deadline noted
/// concurrently is never lost (the word ends at most at `when`, so an M
/// polls by then). `next_deadline` starts at 100, the earliest of `raises`
/// stopped timers (100, 200, ...); the next live one is at
/// `100 * (raises + 1)`, so the poller raises the word in each of its first
/// `raises` rounds.
///
/// The pair: `poll_sources` loads the word (`seen`), polls, and raises it by
/// CAS from `seen`; the noter pushes its timer, then `fetch_min`s the word.
/// A `when` between the round's `seen` and the raised value leaves the word
/// unchanged when noted (only a re-poll after the raise can find it); a
/// `when` below `seen` lowers the word (the raise's CAS must then fail).
fn deadline_race(raises: i64, when: i64) {
    model(move || {
        let s = new_sched(1);
        let _p = take_p(s); // this thread's M is busy: no M to start
        let stopped = (1..=raises).map(|i| 100 * i).collect();
        let timers = Arc::new(Timers {
            heap: Mutex::new((stopped, vec![100 * (raises + 1)])),
        });
        add_source(s, timers.clone());
        set_next_deadline(s, 100);
        let poller = loom::thread::spawn(move || {
            poll_sources(crate::rt::sched());
        });
        timers.heap.lock().unwrap().1.push(when);
        note_deadline(s, when);
        poller.join().unwrap();
        assert!(next_deadline(s) <= when, "deadline {when} lost");
    });
}

/// One raise (100 -> 200), `when` = 150 between: the re-poll after the raise
/// finds the timer.
#[test]
fn note_deadline_racing_a_raise_between() {
    deadline_race(1, 150);
}

/// One raise (100 -> 200), `when` = 50 below: the raise's CAS fails. Passes
/// with the CAS mutated into a plain store too: the next round's re-poll
/// finds the timer (the timer is pushed before it is noted).
#[test]
fn note_deadline_racing_a_raise_below() {
    deadline_race(1, 50);
}

/// Four raises (100 -> 200 -> 300 -> 400 -> 500), as many as
/// `poll_sources` makes rounds (4), so no re-poll follows the last one:
/// `when` = 350 is below the last round's `seen` (400), and a note landing
/// between that round's load and its CAS lowers the word, which only the
/// failing CAS keeps. Before the last round stopped raising, it caught the
/// mutation of that CAS into a plain `store(next, SeqCst)` ("deadline 350
/// lost": the store overwrote 350 with 500); now it checks that the last
/// round's `fetch_min` keeps the note. (If `poll_sources`' bound of 4
/// rounds changes, `raises` must follow it.)
#[test]
fn note_deadline_racing_the_last_raise_below() {
    deadline_race(4, 350);
}

/// Four raises as above, `when` = 450 between the last round's `seen` (400)
/// and its raise (500): noted between that round's load and CAS, it leaves
/// the word at 400, the CAS succeeds, and no round re-polls: the word ends
/// at 500 and nobody polls at 450. It failed ("deadline 450 lost") until
/// `poll_sources`' last round stopped raising: its comment's "the next
/// round's poll sees it" had no next round after the fourth. Now every
/// raise is followed by a re-poll, so the raising CAS is belt and braces:
/// the CAS-to-store mutation is caught by no model any more (a re-poll
/// finds the timer whose note the store overwrote).
#[test]
fn note_deadline_racing_the_last_raise_between() {
    deadline_race(4, 450);
}

/// A timer heap that another M is running (`try_run` skips it: the
/// runner publishes its next deadline itself): while `running`, a poll
/// reports only `far` (the other heaps' earliest); after, `near` too. It
/// notes whether the M `keeper` (the one under test) has polled and seen
/// `near`.
struct SkippedHeap {
    /// (running, the keeper saw `near`), under one lock.
    st: Mutex<(bool, bool)>,
    cv: Condvar,
    keeper: Mutex<Option<loom::thread::ThreadId>>,
    near: i64,
    far: i64,
}

impl Source for SkippedHeap {
    fn poll(&self, _now: i64) -> Option<i64> {
        let mut st = self.st.lock().unwrap();
        if st.0 {
            return Some(self.far);
        }
        if *self.keeper.lock().unwrap() == Some(loom::thread::current().id()) {
            st.1 = true;
            self.cv.notify_all();
        }
        Some(self.near)
    }
}

/// An idle M polls while another M runs a timer heap, so its poll skips
/// that heap and raises the next deadline to `far`; it goes to keep time
/// until then. The runner finishes, and its own poll lowers the deadline
/// to the heap's next timer (`near`): that lowering must wake the
/// timekeeper (or the timekeeper, taking the role, must see it), or it
/// sleeps until `far` with nobody keeping `near` (the runner, failing to
/// take the role, sleeps with no deadline). golang_time's timer tests
/// stalled 30 s in about 1 run of 13 this way. Here the keeper must poll again
/// and see `near`; a lost wake-up leaves it asleep and this thread waiting
/// (loom: deadlock). Shown to catch the bug: with `poll_sources` lowering
/// the word by a plain `fetch_min` (no wake), loom reports the deadlock.
#[test]
fn a_poll_lowering_the_deadline_wakes_the_timekeeper() {
    model(|| {
        let s = new_sched(1);
        let _p = take_p(s); // this thread is the runner's M, with the only P
                            // An hour and two on the model clock (0 now).
        let heap = Arc::new(SkippedHeap {
            st: Mutex::new((true, false)),
            cv: Condvar::new(),
            keeper: Mutex::new(None),
            near: 3_600_000_000_000,
            far: 7_200_000_000_000,
        });
        add_source(s, heap.clone());
        set_next_deadline(s, i64::MAX);
        let h2 = heap.clone();
        let m = start_m(s, move |s, m| {
            *h2.keeper.lock().unwrap() = Some(loom::thread::current().id());
            stopm(s, m);
            schedule(s, m)
        });
        let _ = m;
        // The runner finishes the heap and polls.
        heap.st.lock().unwrap().0 = false;
        poll_sources(s);
        let mut st = heap.st.lock().unwrap();
        while !st.1 {
            st = heap.cv.wait(st).unwrap();
        }
        drop(st);
        shutdown(|| ());
    });
}

/// A blocking source with timers (the netpoller's stand-in when it keeps
/// time: `block` sleeps until `until` or a `wake`). It notes whether an M
/// blocked in it with a deadline no later than `near`.
struct TimedBlocking {
    timers: Mutex<Vec<i64>>,
    gate: Gate,
    /// An M blocked until `near` or earlier.
    kept: Mutex<bool>,
    cv: Condvar,
    near: i64,
}

impl Source for TimedBlocking {
    fn poll(&self, _now: i64) -> Option<i64> {
        self.timers.lock().unwrap().iter().copied().min()
    }
    fn blocks(&self) -> bool {
        true
    }
    fn block(&self, until: Option<i64>) {
        if until.is_some_and(|u| u <= self.near) {
            *self.kept.lock().unwrap() = true;
            self.cv.notify_all();
        }
        self.gate.wait();
    }
    fn wake(&self) {
        self.gate.open();
    }
}

/// A timer noted (`note_deadline`) while the only idle M goes to block in
/// the blocking source until a later deadline: the noter lowers the word,
/// then looks at `source_blocked` (and wakes the source if set); the M sets
/// `source_blocked`, then must look at the word again, or it blocks until
/// the later deadline with nobody to wake it (the noter, finding no M in
/// the source, unparked the M's parker, which does not end a block in the
/// source). Shown to catch the bug: without the word's re-check in
/// `sleep_idle`'s blocking path, loom reports the deadlock.
#[test]
fn a_deadline_noted_while_the_m_enters_the_blocking_source() {
    model(|| {
        let s = new_sched(1);
        let _p = take_p(s); // this thread's M is busy, with the only P
        let near = 3_600_000_000_000; // an hour on the model clock (0 now)
        let src = Arc::new(TimedBlocking {
            timers: Mutex::new(vec![near + 3_600_000_000_000]),
            gate: Gate::new(),
            kept: Mutex::new(false),
            cv: Condvar::new(),
            near,
        });
        add_source(s, src.clone());
        set_next_deadline(s, i64::MAX);
        start_m(s, |s, m| {
            stopm(s, m);
            schedule(s, m)
        });
        src.timers.lock().unwrap().push(near);
        note_deadline(s, near);
        let mut kept = src.kept.lock().unwrap();
        while !*kept {
            kept = src.cv.wait(kept).unwrap();
        }
        drop(kept);
        shutdown(|| src.wake());
    });
}

/// A timer source whose one `near` timer is reported at its first sighting
/// and fired at the second (the models have no clock to speak of: "a poll
/// later" stands for "once it is due"); `far` stays armed.
struct DueOnSecondLook {
    /// (near armed, sightings, fired), under one lock.
    st: Mutex<(bool, u32, bool)>,
    cv: Condvar,
    near: i64,
    far: i64,
}

impl Source for DueOnSecondLook {
    fn poll(&self, _now: i64) -> Option<i64> {
        let mut st = self.st.lock().unwrap();
        if !st.0 {
            return Some(self.far);
        }
        st.1 += 1;
        if st.1 >= 2 {
            st.0 = false;
            st.2 = true;
            self.cv.notify_all();
            return Some(self.far);
        }
        Some(self.near)
    }
}

/// A timer noted while one of two idle Ms takes the timekeeper role: the
/// noter lowers the word, finds no timekeeper yet, and wakes the idle M
/// queued last — the other one, which polls, finds the role taken and
/// sleeps with no deadline. The M that took the role must read the word
/// again after its CAS, or it keeps time until the deadline it read
/// before (`far`, which never comes here) and the timer is lost. Shown to
/// catch the bug: without that re-read, loom reports the deadlock. It
/// needs three preemptions (both Ms stopped between their poll and their
/// CAS, one of them past the noter's look); at three, it also found a
/// timekeeper woken early without a token (a stale futex wake) spinning
/// toward `far` — `sleep_idle` now spins only the last 25 µs.
#[test]
fn a_deadline_noted_while_another_m_takes_the_timekeeper_role() {
    model_with_preemptions(3, || {
        let s = new_sched(1);
        let _p = take_p(s); // this thread's M is busy, with the only P
                            // On the model clock (0 now): `near` is due, `far` an hour away.
        let src = Arc::new(DueOnSecondLook {
            st: Mutex::new((false, 0, false)),
            cv: Condvar::new(),
            near: 0,
            far: 3_600_000_000_000,
        });
        add_source(s, src.clone());
        set_next_deadline(s, i64::MAX);
        for _ in 0..2 {
            start_m(s, |s, m| {
                stopm(s, m);
                schedule(s, m)
            });
        }
        src.st.lock().unwrap().0 = true;
        note_deadline(s, src.near);
        let mut st = src.st.lock().unwrap();
        while !st.2 {
            st = src.cv.wait(st).unwrap();
        }
        drop(st);
        shutdown(|| ());
    });
}
