// Go's side of `cargo xtask bench`. Built by xtask with $GO (or go on PATH):
// go build -o target/bench/go-bench gort-bench/go/*.go
package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

func report(v float64, unit string) { fmt.Printf("RESULT %.1f %s\n", v, unit) }

func per(d time.Duration, n int) float64 { return float64(d.Nanoseconds()) / float64(n) }

func rss() int64 {
	b, _ := os.ReadFile("/proc/self/statm")
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	p, _ := strconv.ParseInt(f[1], 10, 64)
	return p * 4096
}

// profiled turns on the profile a workload name's suffix asks for (issue
// 18's profiling-overhead variants) and returns the base workload's name
// and what stops the profile once the workload reported.
func profiled(w string) (string, func()) {
	switch {
	case strings.HasSuffix(w, "_mprof"):
		runtime.SetMutexProfileFraction(1)
		return strings.TrimSuffix(w, "_mprof"), func() {}
	case strings.HasSuffix(w, "_bprof"):
		runtime.SetBlockProfileRate(1)
		return strings.TrimSuffix(w, "_bprof"), func() {}
	case strings.HasSuffix(w, "_cpuprof"):
		if err := pprof.StartCPUProfile(io.Discard); err != nil {
			panic(err)
		}
		return strings.TrimSuffix(w, "_cpuprof"), pprof.StopCPUProfile
	}
	return w, func() {}
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: go-bench <workload> [n]")
		os.Exit(2)
	}
	w, stop := profiled(os.Args[1])
	defer stop()
	n := 0
	if len(os.Args) > 2 {
		n, _ = strconv.Atoi(os.Args[2])
	}
	def := func(d int) int {
		if n == 0 {
			return d
		}
		return n
	}
	switch w {
	case "spawn_join":
		n := def(1000000)
		var wg sync.WaitGroup
		wg.Add(n)
		t0 := time.Now()
		for i := 0; i < n; i++ {
			go func() { wg.Done() }()
		}
		wg.Wait()
		report(per(time.Since(t0), n), "ns/task")
	case "park_pingpong":
		n := def(1000000)
		a, b := make(chan int), make(chan int)
		go func() {
			for i := 0; i < n; i++ {
				b <- <-a
			}
		}()
		t0 := time.Now()
		for i := 0; i < n; i++ {
			a <- i
			<-b
		}
		report(per(time.Since(t0), n), "ns/roundtrip")
	case "parked_mem":
		n := def(100000)
		go func() {}()
		rss0 := rss()
		var wg sync.WaitGroup
		wg.Add(n)
		gate := make(chan struct{})
		for i := 0; i < n; i++ {
			go func() { wg.Done(); <-gate }()
		}
		wg.Wait()
		time.Sleep(50 * time.Millisecond)
		rss1 := rss()
		close(gate)
		report(float64(rss1-rss0)/float64(n), "bytes/goroutine")
	case "mutex_uncontended":
		n := def(10000000)
		var m sync.Mutex
		x := 0
		t0 := time.Now()
		for i := 0; i < n; i++ {
			m.Lock()
			x++
			m.Unlock()
		}
		report(per(time.Since(t0), n), "ns/op")
	case "mutex_contended":
		perG := def(100000)
		var m sync.Mutex
		var wg sync.WaitGroup
		x := 0
		t0 := time.Now()
		for g := 0; g < 64; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < perG; i++ {
					m.Lock()
					x++
					m.Unlock()
				}
			}()
		}
		wg.Wait()
		report(per(time.Since(t0), 64*perG), "ns/op")
	case "rwmutex_read":
		perG := def(1000000)
		var l sync.RWMutex
		var wg sync.WaitGroup
		x := 0
		t0 := time.Now()
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sum := 0
				for i := 0; i < perG; i++ {
					if i%1000 == 0 {
						l.Lock()
						x++
						l.Unlock()
					} else {
						l.RLock()
						sum += x
						l.RUnlock()
					}
				}
				_ = sum
			}()
		}
		wg.Wait()
		report(per(time.Since(t0), 8*perG), "ns/op")
	case "waitgroup":
		n := def(10000000)
		var wg sync.WaitGroup
		t0 := time.Now()
		for i := 0; i < n; i++ {
			wg.Add(1)
			wg.Done()
		}
		wg.Wait()
		report(per(time.Since(t0), n), "ns/op")
	case "cond_broadcast":
		rounds := def(1000)
		const waiters = 1000
		var mu sync.Mutex
		goCond, doneCond := sync.NewCond(&mu), sync.NewCond(&mu)
		round, arrived := 0, 0
		var wg sync.WaitGroup
		for i := 0; i < waiters; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for r := 1; r <= rounds; r++ {
					mu.Lock()
					for round < r {
						goCond.Wait()
					}
					arrived++
					if arrived == waiters {
						doneCond.Signal()
					}
					mu.Unlock()
				}
			}()
		}
		t0 := time.Now()
		for r := 1; r <= rounds; r++ {
			mu.Lock()
			round, arrived = r, 0
			goCond.Broadcast()
			for arrived < waiters {
				doneCond.Wait()
			}
			mu.Unlock()
		}
		el := time.Since(t0)
		wg.Wait()
		report(per(el, rounds), "ns/round")
	case "pool":
		perG := def(10000000)
		var p sync.Pool
		p.New = func() any { return new(int) }
		var wg sync.WaitGroup
		t0 := time.Now()
		for g := 0; g < 2; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				x := new(int)
				for i := 0; i < perG; i++ {
					p.Put(x)
					x = p.Get().(*int)
				}
			}()
		}
		wg.Wait()
		report(per(time.Since(t0), 2*perG), "ns/op")
	case "chan_buffered":
		n := def(10000000)
		c := make(chan int, 1024)
		t0 := time.Now()
		go func() {
			for i := 0; i < n; i++ {
				c <- i
			}
			close(c)
		}()
		s := 0
		for v := range c {
			s += v
		}
		if s != n*(n-1)/2 {
			panic("bad sum")
		}
		report(per(time.Since(t0), n), "ns/msg")
	case "chan_mpmc":
		n := def(10000000)
		c := make(chan int, 1024)
		t0 := time.Now()
		var pw, cw sync.WaitGroup
		for p := 0; p < 4; p++ {
			pw.Add(1)
			go func() {
				defer pw.Done()
				for i := 0; i < n/4; i++ {
					c <- i
				}
			}()
		}
		go func() { pw.Wait(); close(c) }()
		var got [4]int
		for k := 0; k < 4; k++ {
			cw.Add(1)
			go func(k int) {
				defer cw.Done()
				for range c {
					got[k]++
				}
			}(k)
		}
		cw.Wait()
		if got[0]+got[1]+got[2]+got[3] != n/4*4 {
			panic("lost messages")
		}
		report(per(time.Since(t0), n), "ns/msg")
	case "chan_pingpong":
		n := def(1000000)
		a, b := make(chan int), make(chan int)
		go func() {
			for v := range a {
				b <- v
			}
		}()
		t0 := time.Now()
		for i := 0; i < n; i++ {
			a <- i
			<-b
		}
		report(per(time.Since(t0), n), "ns/rt")
	case "locked_pingpong":
		// chan_pingpong with the echoing goroutine locked to its thread.
		n := def(1000000)
		a, b := make(chan int), make(chan int)
		go func() {
			runtime.LockOSThread()
			for v := range a {
				b <- v
			}
		}()
		t0 := time.Now()
		for i := 0; i < n; i++ {
			a <- i
			<-b
		}
		report(per(time.Since(t0), n), "ns/rt")
	case "select2":
		n := def(10000000)
		a, b := make(chan int, 1024), make(chan int, 1024)
		t0 := time.Now()
		go func() {
			for i := 0; i < n/2; i++ {
				a <- i
			}
		}()
		go func() {
			for i := 0; i < n/2; i++ {
				b <- i
			}
		}()
		s := 0
		for i := 0; i < n/2*2; i++ {
			select {
			case v := <-a:
				s += v
			case v := <-b:
				s += v
			}
		}
		_ = s
		report(per(time.Since(t0), n), "ns/msg")
	case "timer_churn":
		n := def(1000000)
		t0 := time.Now()
		ts := make([]*time.Timer, n)
		for i := range ts {
			ts[i] = time.AfterFunc(time.Hour, func() {})
		}
		for _, t := range ts {
			if !t.Stop() {
				panic("timer fired")
			}
		}
		report(per(time.Since(t0), n), "ns/timer")
	case "sleep_many":
		n := def(100000)
		var wg sync.WaitGroup
		t0 := time.Now()
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				time.Sleep(10 * time.Millisecond)
			}()
		}
		wg.Wait()
		report(float64(time.Since(t0).Nanoseconds())/1e6, "ms")
	case "sleep_accuracy":
		n := def(1000)
		over := make([]float64, n)
		for i := range over {
			t0 := time.Now()
			time.Sleep(time.Millisecond)
			over[i] = float64(time.Since(t0).Nanoseconds())/1e3 - 1000
		}
		sort.Float64s(over)
		report(over[n/2], "us")
	default:
		// Workloads in the other files of this directory (net.go, gc.go).
		for _, more := range extra {
			if more(w, n) {
				return
			}
		}
		fmt.Fprintln(os.Stderr, "unknown workload", os.Args[1])
		os.Exit(3)
	}
}

// extra holds the workload dispatchers of the other files; each registers
// itself in an init function and returns false for names it does not know.
var extra []func(w string, n int) bool
