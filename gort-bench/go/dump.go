// Go's side of the goroutine-dump workloads (issue 16): stack_dump and
// stack_dump_warm. See gort-bench/src/dump.rs for the definitions; the
// shape, parameters and timed region are the same:
//  1. the main goroutine starts n (default 10,000) goroutines; goroutine i
//     calls chain i%4, four //go:noinline functions deep, the last of
//     which receives from one shared unbuffered channel nobody sends on;
//  2. it waits until every one is parked (the /sched/goroutines/waiting
//     metric has grown by n), then 20 ms more;
//  3. (stack_dump_warm only) one runtime.Stack(buf, true), untimed and
//     checked;
//  4. the timed runtime.Stack(buf, true): buf is 64 MiB, allocated and
//     touched before (a full buffer fails the run: no timed retry);
//  5. the dump is checked: >= n "goroutine " headers, n of them in
//     [chan receive], n*4 lines naming a chain function; a failed check
//     ends the process with status 1, the reason on stderr's last line;
//  6. the channel is closed and every goroutine waited for.
//
// Go's symbol tables (pclntab) are in memory from the start, so the two
// figures differ little here; gort's first dump parses the binary's DWARF.
package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"time"
)

func init() { extra = append(extra, dumpBench) }

const (
	dumpGoroutines = 10000
	dumpChains     = 4
	dumpDepth      = 4
	dumpBufSize    = 64 << 20
	dumpChainFn    = "main.dumpChain"
	dumpParkLimit  = 60 * time.Second
	dumpSettle     = 20 * time.Millisecond
)

// The chains: each function calls the next and adds its own constant, as
// gort's do; the last receives.

//go:noinline
func dumpChainA1(ch chan struct{}) int { return dumpChainA2(ch) + 11 }

//go:noinline
func dumpChainA2(ch chan struct{}) int { return dumpChainA3(ch) + 12 }

//go:noinline
func dumpChainA3(ch chan struct{}) int { return dumpChainA4(ch) + 13 }

//go:noinline
func dumpChainA4(ch chan struct{}) int { <-ch; return 1 + 14 }

//go:noinline
func dumpChainB1(ch chan struct{}) int { return dumpChainB2(ch) + 21 }

//go:noinline
func dumpChainB2(ch chan struct{}) int { return dumpChainB3(ch) + 22 }

//go:noinline
func dumpChainB3(ch chan struct{}) int { return dumpChainB4(ch) + 23 }

//go:noinline
func dumpChainB4(ch chan struct{}) int { <-ch; return 1 + 24 }

//go:noinline
func dumpChainC1(ch chan struct{}) int { return dumpChainC2(ch) + 31 }

//go:noinline
func dumpChainC2(ch chan struct{}) int { return dumpChainC3(ch) + 32 }

//go:noinline
func dumpChainC3(ch chan struct{}) int { return dumpChainC4(ch) + 33 }

//go:noinline
func dumpChainC4(ch chan struct{}) int { <-ch; return 1 + 34 }

//go:noinline
func dumpChainD1(ch chan struct{}) int { return dumpChainD2(ch) + 41 }

//go:noinline
func dumpChainD2(ch chan struct{}) int { return dumpChainD3(ch) + 42 }

//go:noinline
func dumpChainD3(ch chan struct{}) int { return dumpChainD4(ch) + 43 }

//go:noinline
func dumpChainD4(ch chan struct{}) int { <-ch; return 1 + 44 }

var dumpChainEntry = [dumpChains]func(chan struct{}) int{dumpChainA1, dumpChainB1, dumpChainC1, dumpChainD1}

// dumpWaiting is the runtime's count of waiting goroutines; ok is false if
// this Go has no such metric (before Go 1.26).
func dumpWaiting() (n uint64, ok bool) {
	s := []metrics.Sample{{Name: "/sched/goroutines/waiting:goroutines"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0, false
	}
	return s[0].Value.Uint64(), true
}

// dumpCheck ends the process (status 1) if the dump falls short (see the
// file comment); else it returns the header, parked and chain-frame counts.
func dumpCheck(what string, dump []byte, n int) (headers, parked, frames int) {
	for _, l := range strings.Split(string(dump), "\n") {
		if strings.HasPrefix(l, "goroutine ") {
			headers++
			if strings.Contains(l, " [chan receive") {
				parked++
			}
		} else if strings.Contains(l, dumpChainFn) {
			frames++
		}
	}
	why := ""
	switch {
	case headers < n:
		why = fmt.Sprintf("%d goroutine headers, expected >= %d", headers, n)
	case parked < n:
		why = fmt.Sprintf("%d goroutines in [chan receive], expected >= %d (not all parked?)", parked, n)
	case frames < n*dumpDepth:
		why = fmt.Sprintf("%d frames name a chain function (%s), expected >= %d (%d x %d)", frames, dumpChainFn, n*dumpDepth, n, dumpDepth)
	}
	if why != "" {
		head := dump
		if len(head) > 3000 {
			head = head[:3000]
		}
		fmt.Fprintf(os.Stderr, "%s: the dump starts:\n%s\n...\n", what, head)
		fmt.Fprintf(os.Stderr, "%s: bad dump: %s\n", what, why)
		os.Exit(1)
	}
	return
}

// dumpTimed is one runtime.Stack(buf, true), timed; a full buffer ends the
// process.
func dumpTimed(what string, buf []byte) ([]byte, time.Duration) {
	t0 := time.Now()
	k := runtime.Stack(buf, true)
	el := time.Since(t0)
	if k >= len(buf) {
		fmt.Fprintf(os.Stderr, "%s: bad dump: the %d-byte buffer is full\n", what, len(buf))
		os.Exit(1)
	}
	return buf[:k], el
}

func stackDump(what string, warm bool, n int) {
	ch := make(chan struct{})
	var done sync.WaitGroup
	base, metric := dumpWaiting()
	done.Add(n)
	for i := 0; i < n; i++ {
		f := dumpChainEntry[i%dumpChains]
		go func() {
			defer done.Done()
			f(ch)
		}()
	}
	// Every goroutine parked before the clock starts.
	if metric {
		t0 := time.Now()
		for {
			w, _ := dumpWaiting()
			if w >= base+uint64(n) {
				break
			}
			if time.Since(t0) > dumpParkLimit {
				fmt.Fprintf(os.Stderr, "%s: only %d of %d goroutines waiting after %v\n", what, w-base, n, dumpParkLimit)
				os.Exit(1)
			}
			time.Sleep(time.Millisecond)
		}
	} else {
		fmt.Fprintf(os.Stderr, "%s: no /sched/goroutines/waiting metric in %s; waiting 1 s instead\n", what, runtime.Version())
		time.Sleep(time.Second)
	}
	time.Sleep(dumpSettle)
	buf := make([]byte, dumpBufSize)
	for i := 0; i < len(buf); i += 4096 {
		buf[i] = 1
	}
	if warm {
		d, first := dumpTimed(what, buf)
		dumpCheck(what, d, n)
		fmt.Fprintf(os.Stderr, "%s: first dump (untimed) %v\n", what, first)
	}
	d, el := dumpTimed(what, buf)
	headers, parked, frames := dumpCheck(what, d, n)
	fmt.Fprintf(os.Stderr, "%s: %d goroutines (%d in chan receive), %d chain frames, %d bytes; dump %v\n",
		what, headers, parked, frames, len(d), el)
	// Release them all and wait.
	close(ch)
	done.Wait()
	report(float64(el.Nanoseconds())/1e6, "ms")
}

// dumpBench runs a dump workload; false if w is not one of them. n == 0
// means the default count.
func dumpBench(w string, n int) bool {
	if n == 0 {
		n = dumpGoroutines
	}
	switch w {
	case "stack_dump":
		stackDump(w, false, n)
	case "stack_dump_warm":
		stackDump(w, true, n)
	default:
		return false
	}
	return true
}
