// Go's side of the garbage collector workloads (issue 6); see
// gort-bench/src/gc.rs for the definitions. Registered with bench.go's
// dispatch (the extra list) below.
package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"syscall"
	"time"
)

// nivcsw is the calling thread's count of involuntary context switches.
func nivcsw() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru)
	return ru.Nivcsw
}

type gcObj struct {
	v int
	p *gcObj
}

// gcCyc is one node of gc_pressure's two-object cycles.
type gcCyc struct {
	v int
	p *gcCyc
}

type gcList struct {
	v    int
	next *gcList
}

// gcBench runs a GC workload; false if w is not one of them. n == 0 means
// the default size.
func init() { extra = append(extra, gcBench) }

func gcBench(w string, n int) bool {
	if n == 0 {
		n = 1_000_000
	}
	switch w {
	case "finalizers", "cleanups":
		var ran atomic.Int64
		t0 := time.Now()
		for i := 0; i < n; i++ {
			x := &gcObj{v: i}
			if w == "finalizers" {
				runtime.SetFinalizer(x, func(*gcObj) { ran.Add(1) })
			} else {
				runtime.AddCleanup(x, func(int) { ran.Add(1) }, i)
			}
		}
		last := time.Now()
		runtime.GC()
		for ran.Load() < int64(n) {
			time.Sleep(100 * time.Microsecond)
			if time.Since(last) > 20*time.Millisecond {
				runtime.GC()
				last = time.Now()
			}
		}
		report(per(time.Since(t0), n), "ns/obj")
		return true
	case "gc_pressure":
		secs := n
		if secs == 1_000_000 {
			secs = 10
		}
		if os.Getenv("GOMEMLIMIT") == "" {
			debug.SetMemoryLimit(100 << 20)
		}
		d := time.Duration(secs) * time.Second
		t0 := time.Now()
		iters := 0
		for {
			for k := 0; k < 1024; k++ {
				a := &gcCyc{v: iters}
				b := &gcCyc{v: iters, p: a}
				a.p = b
				iters++
			}
			if time.Since(t0) >= d {
				break
			}
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		fmt.Fprintf(os.Stderr, "gc_pressure: %d cycles allocated, %d collections\n", iters, ms.NumGC)
		report(float64(peakRSS())/1e6, "MB")
		return true
	case "gc_cycle", "gc_pause", "gc_pause_wall":
		var head *gcList
		for i := 0; i < n; i++ {
			head = &gcList{v: i, next: head}
		}
		runtime.GC()
		var running, measuring, started atomic.Bool
		var maxGap, maxWall atomic.Int64
		running.Store(true)
		done := make(chan int)
		go func(h *gcList) {
			// Stay on one thread so RUSAGE_THREAD is this goroutine's.
			runtime.LockOSThread()
			prev := time.Now()
			prevCs := nivcsw()
			sum := 0
			for running.Load() {
				x := &gcObj{v: sum, p: &gcObj{v: 1}}
				sum += x.v + h.v + x.p.v
				now := time.Now()
				cs := nivcsw()
				if measuring.Load() {
					g := int64(now.Sub(prev))
					if g > maxWall.Load() {
						maxWall.Store(g)
					}
					if cs == prevCs && g > maxGap.Load() {
						maxGap.Store(g)
					}
				}
				prev = now
				prevCs = cs
				started.Store(true)
			}
			done <- sum
		}(head)
		for !started.Load() {
			runtime.Gosched()
		}
		measuring.Store(true)
		t0 := time.Now()
		runtime.GC()
		el := time.Since(t0)
		measuring.Store(false)
		running.Store(false)
		<-done
		runtime.KeepAlive(head)
		switch w {
		case "gc_cycle":
			report(float64(el.Nanoseconds())/1e6, "ms")
		case "gc_pause":
			report(float64(maxGap.Load())/1e3, "us")
		default:
			report(float64(maxWall.Load())/1e3, "us")
		}
		return true
	}
	return false
}
