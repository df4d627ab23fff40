//! loom models of the own-only M (`find_own`, `give_p_away`, `stopm`'s
//! `mown` list): a locked thread's M, or one that leaves the scheduler
//! once its goroutines are done. The real idle protocol on loom threads
//! (see `loom_idle.rs`); a lost wake-up leaves every thread blocked, which
//! loom reports as a deadlock.

use super::model;
use crate::loom::shutdown;
use crate::rt::model::{
    acquirep_here, become_m, bind, m_id, make_own_only, new_g, new_sched, place, ran_on,
    runq_put_here, schedule, start_m, stopm, take_p, wait_ran,
};
use crate::rt::ready_g;

/// A locked goroutine is readied (from a plain thread: into its M's inbox)
/// while its M, with nothing runnable, gives its only P away and goes to
/// sleep on `mown`: the M either sees the goroutine before it lets go, or
/// is woken by the push and takes the P back (`idle_p_or_wait`). Either
/// way the goroutine runs, on its own M.
#[test]
fn locked_goroutine_readied_while_its_m_gives_the_p_away() {
    model(|| {
        let s = new_sched(1);
        let p = take_p(s);
        let g = new_g(1);
        let m = start_m(s, move |s, m| {
            acquirep_here(m, p);
            // Its locked goroutine ran here and parked.
            make_own_only(m, 1, 1, false);
            schedule(s, m)
        });
        bind(g, m);
        ready_g(g);
        assert_eq!(wait_ran(1), [1]);
        assert_eq!(ran_on(), [m_id(m)]);
        shutdown(|| ());
    });
}

/// A fresh goroutine queued (from a plain thread: the global queue) while
/// the only P is held by an own-only M with nothing to run, which then
/// leaves the scheduler (its locked goroutine ended while locked): the M
/// must not run it, and must not take the P with it -- another M runs it.
#[test]
fn fresh_goroutine_never_runs_on_an_exiting_locked_m() {
    model(|| {
        let s = new_sched(1);
        let p = take_p(s);
        let m = start_m(s, move |s, m| {
            acquirep_here(m, p);
            make_own_only(m, 0, 0, true);
            schedule(s, m); // returns: the M leaves
        });
        runq_put_here(s, new_g(1), true);
        assert_eq!(wait_ran(1), [1]);
        assert_ne!(ran_on(), [m_id(m)], "a fresh goroutine ran on a locked M");
        shutdown(|| ());
    });
}

/// As above, but the own-only M stays (its locked goroutine is parked): a
/// fresh goroutine queued meanwhile runs on another M, which the locked M
/// starts for it when it gives its P away (or `wakep` does).
#[test]
fn fresh_goroutine_runs_elsewhere_while_a_locked_goroutine_waits() {
    model(|| {
        let s = new_sched(1);
        let p = take_p(s);
        let m = start_m(s, move |s, m| {
            acquirep_here(m, p);
            make_own_only(m, 1, 1, false);
            schedule(s, m)
        });
        runq_put_here(s, new_g(1), true);
        assert_eq!(wait_ran(1), [1]);
        assert_ne!(ran_on(), [m_id(m)], "a fresh goroutine ran on a locked M");
        shutdown(|| ());
    });
}

/// Two Ms with a P each run their schedulers: the giver, with two
/// goroutines parked on others, has a fresh goroutine queued, which it
/// gives to the taker's P (`place_fresh`: the taker has none); the taker
/// is first made own-only and leaving if `leaving`. Returns the taker's
/// id once the goroutine ran.
fn give_to_a_second_m(leaving: bool) -> u64 {
    let s = new_sched(2);
    let (pa, pb) = (take_p(s), take_p(s));
    let taker = start_m(s, move |s, m| {
        acquirep_here(m, pb);
        if leaving {
            make_own_only(m, 0, 0, true);
        }
        schedule(s, m); // (returns if leaving: the M leaves)
    });
    let g = new_g(1);
    start_m(s, move |s, m| {
        acquirep_here(m, pa);
        make_own_only(m, 0, 2, false);
        runq_put_here(s, g, false);
        schedule(s, m)
    });
    assert_eq!(wait_ran(1), [1]);
    m_id(taker)
}

/// A fresh goroutine given to another M's P while that M turns own-only
/// and leaves the scheduler: the gift is fresh work on its P, so the M
/// gives the P to another M for it (or the giver takes it back). It runs,
/// and not on the own-only M.
#[test]
fn fresh_goroutine_given_to_an_m_turning_own_only_runs_elsewhere() {
    model(|| {
        let taker = give_to_a_second_m(true);
        assert_ne!(ran_on(), [taker], "a fresh goroutine ran on an own-only M");
        shutdown(|| ());
    });
}

/// A fresh goroutine given to another M's P while that M finds nothing
/// else to run and lets go of the P to sleep: it sees the gift before it
/// lets go, or an M is woken for the P (`recheck_queues`, the giver's
/// `wakep`). The goroutine runs.
#[test]
fn fresh_goroutine_given_to_an_m_going_to_sleep_runs() {
    model(|| {
        give_to_a_second_m(false);
        shutdown(|| ());
    });
}

/// The giver keeps its P busy (it never looks for work again, so it never
/// takes its gift back) while the P it gave a fresh goroutine to is let go
/// of by its M, which found nothing to run: the M sees the gift before it
/// lets go, or the giver's `wakep` after its push, or the M's
/// `recheck_queues` after it, starts an M for the P. The goroutine runs.
#[test]
fn fresh_goroutine_given_to_a_p_being_let_go_of_runs() {
    model(|| {
        let s = new_sched(2);
        let (pa, pb) = (take_p(s), take_p(s));
        start_m(s, move |s, m| {
            acquirep_here(m, pb);
            schedule(s, m)
        });
        let ma = become_m(s, pa);
        make_own_only(ma, 0, 2, false);
        if place(s, new_g(1)) {
            assert_eq!(wait_ran(1), [1]);
        }
        shutdown(|| ());
    });
}

/// A burst queued on the spawner's P while the M woken for the other P
/// (by the burst's first `wakep`) is still on its way to it: the spawner
/// counts the burst and gives that P a fresh goroutine (`place_fresh`),
/// which the woken M finds on its P once it takes it. The goroutine runs.
#[test]
fn fresh_goroutine_given_to_an_m_still_waking_runs() {
    give_to_an_m_still_waking(false);
}

/// As above, the M woken being one asleep without a P (`stopm`), which the
/// burst's `wakep` hands the P through `nextp` (or a new one, if it is not
/// asleep yet).
#[test]
fn fresh_goroutine_given_to_an_idle_m_being_woken_runs() {
    give_to_an_m_still_waking(true);
}

/// The spawner, holding one of two Ps, queues a burst of two (the first
/// `wakep` starts an M for the other P, a new one or, with `idle_m`, one
/// that went to sleep without a P) and places a third fresh goroutine; if
/// it gave it to the waking M's P, the goroutine runs.
fn give_to_an_m_still_waking(idle_m: bool) {
    model(move || {
        let s = new_sched(2);
        let pa = take_p(s);
        if idle_m {
            start_m(s, |s, m| {
                stopm(s, m);
                schedule(s, m)
            });
        }
        become_m(s, pa);
        runq_put_here(s, new_g(2), false);
        runq_put_here(s, new_g(3), false);
        if place(s, new_g(1)) {
            let mut n = 1;
            while !wait_ran(n).contains(&1) {
                n += 1;
            }
        }
        shutdown(|| ());
    });
}

/// One P, two Ms with a goroutine each (not locked: `find_runnable`'s
/// path): M A holds the P, its goroutine parked on another; M B's
/// goroutine is readied, so B waits for the P. A, with nothing to run,
/// lets go of the P to B and, its own goroutine likely back soon, watches
/// its inbox without a P before sleeping (`stopm`'s inbox watch), while
/// this thread readies A's goroutine. Both goroutines run, each on its own
/// M.
#[test]
fn goroutine_readied_while_its_m_watches_without_a_p_runs() {
    model(|| {
        let s = new_sched(1);
        let p = take_p(s);
        let (ga, gb) = (new_g(1), new_g(2));
        let mb = start_m(s, |s, m| {
            stopm(s, m);
            schedule(s, m)
        });
        bind(gb, mb);
        ready_g(gb);
        let ma = start_m(s, move |s, m| {
            acquirep_here(m, p);
            make_own_only(m, 0, 1, false);
            schedule(s, m)
        });
        bind(ga, ma);
        ready_g(ga);
        let ran = wait_ran(2);
        let on = ran_on();
        for (g, m) in [(1, ma), (2, mb)] {
            let i = ran.iter().position(|&x| x == g).expect("a goroutine ran");
            assert_eq!(on[i], m_id(m), "goroutine {g} ran on another M");
        }
        shutdown(|| ());
    });
}
