// Go's side of the sysmon workloads (issue 15): syscall_handoff and
// syscall_handoff_raw. See gort-bench/src/sysmon.rs for the definitions;
// the shape, parameters and timed region are the same:
//  1. the main goroutine arms the watchdog (it stops the blockers 5
//     windows later if the ping-pong cannot finish), starts 4 blockers,
//     each looping on one 1 ms nanosleep, and waits until each has
//     entered its loop;
//  2. it starts the pinger, which starts the ponger (unbuffered channels);
//  3. the pinger times a window (1 s, or n ms): round trips in batches of
//     16, the clock read after each batch, until the window has passed;
//  4. main stops the blockers and waits for them.
//
// syscall_handoff makes the call with syscall.Nanosleep (syscall.Syscall:
// entersyscall/exitsyscall, so sysmon hands the P off); syscall_handoff_raw
// with syscall.RawSyscall, which the runtime is not told about (the P stays
// with the blocker for the whole call).
//
// Both variants' blockers pass a preemption point after each call, as
// gort's call gort::preempt_point: here sysPreemptPoint, a call whose
// prologue checks the stack guard, where a pending preemption request
// (sysmon's, after 10 ms on the P) is honoured. Go needs it for the raw
// variant: syscall.RawSyscall is nosplit assembly and the thread sits in
// the kernel, so async preemption never finds a safe point, and a loop of
// raw calls with nothing else is never preempted (4 such blockers hold
// both Ps forever; the benchmark hangs). With syscall.Nanosleep a
// request is rarely pending there (the P is handed off during the call
// instead), as in gort. The preemption signal may cut a
// raw nanosleep short.
//
// preempt_point is gort only (not here: exits with status 3).
package main

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

func init() { extra = append(extra, sysmonBench) }

const (
	sysBlockers        = 4
	sysCall            = time.Millisecond
	sysWindowMs        = 1000
	sysBatch           = 16
	sysSlowBatch       = 100 * time.Microsecond
	sysWatchdogWindows = 5
)

// sysPreemptPoint honours a pending preemption request of the calling
// goroutine in its prologue (the stack-guard check every split function
// has). Not inlined, and not a leaf: small leaf functions get no check.
//
//go:noinline
func sysPreemptPoint() { sysNop() }

//go:noinline
func sysNop() {}

func sysPingPong(window time.Duration, calls *atomic.Int64) (rts, slow int, ncalls int64, elapsed, worst time.Duration) {
	a, b := make(chan int), make(chan int)
	done := make(chan struct{})
	go func() {
		for v := range a {
			b <- v
		}
		close(done)
	}()
	// One round trip first: the ponger is running.
	a <- 0
	<-b
	calls0 := calls.Load()
	t0 := time.Now()
	deadline := t0.Add(window)
	last := t0
	for {
		for i := 0; i < sysBatch; i++ {
			a <- i
			<-b
		}
		rts += sysBatch
		now := time.Now()
		d := now.Sub(last)
		if d > worst {
			worst = d
		}
		if d > sysSlowBatch {
			slow++
		}
		last = now
		if !now.Before(deadline) {
			break
		}
	}
	elapsed = time.Since(t0)
	ncalls = calls.Load() - calls0
	close(a)
	<-done
	return
}

func syscallHandoff(raw bool, window time.Duration) {
	var stop, fired atomic.Bool
	var calls atomic.Int64
	var started, blockers sync.WaitGroup
	started.Add(sysBlockers)
	blockers.Add(sysBlockers)
	ts := syscall.Timespec{Nsec: int64(sysCall)}
	for i := 0; i < sysBlockers; i++ {
		go func() {
			defer blockers.Done()
			ts := ts
			started.Done()
			for !stop.Load() {
				if raw {
					syscall.RawSyscall(syscall.SYS_NANOSLEEP, uintptr(unsafe.Pointer(&ts)), 0, 0)
				} else {
					syscall.Nanosleep(&ts, nil)
				}
				calls.Add(1)
				sysPreemptPoint()
			}
		}()
	}
	time.AfterFunc(window*sysWatchdogWindows, func() {
		if !stop.Swap(true) {
			fired.Store(true)
		}
	})
	started.Wait()
	type result struct {
		rts, slow      int
		calls          int64
		elapsed, worst time.Duration
	}
	res := make(chan result)
	go func() {
		rts, slow, ncalls, el, worst := sysPingPong(window, &calls)
		res <- result{rts, slow, ncalls, el, worst}
	}()
	r := <-res
	stop.Store(true)
	blockers.Wait()
	if fired.Load() {
		fmt.Fprintln(os.Stderr, "syscall_handoff: the watchdog stopped the blockers: the ping-pong could not finish its window")
	}
	name := "syscall_handoff"
	if raw {
		name += "_raw"
	}
	fmt.Fprintf(os.Stderr, "%s: %d round trips in %v; batches of %d: worst %v, %d over %v; %d blocking calls meanwhile (%.0f/s per blocker)\n",
		name, r.rts, r.elapsed, sysBatch, r.worst, r.slow, sysSlowBatch, r.calls,
		float64(r.calls)/r.elapsed.Seconds()/sysBlockers)
	rts := r.rts
	if rts == 0 {
		rts = 1
	}
	report(per(r.elapsed, rts), "ns/rt")
}

// sysmonBench runs a sysmon workload; false if w is not one of them. n == 0
// means the default window.
func sysmonBench(w string, n int) bool {
	window := time.Duration(sysWindowMs) * time.Millisecond
	if n > 0 {
		window = time.Duration(n) * time.Millisecond
	}
	switch w {
	case "syscall_handoff":
		syscallHandoff(false, window)
	case "syscall_handoff_raw":
		syscallHandoff(true, window)
	default:
		return false
	}
	return true
}
