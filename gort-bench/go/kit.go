// Issue 19's workloads (gort's twins: gort-bench/src/kit.rs).
package main

import (
	"context"
	"sync"
	"time"
)

func init() { extra = append(extra, kitBench) }

// egroup is golang.org/x/sync/errgroup's Group as that package writes it
// (WaitGroup, first error once, WithCancelCause), for a build without
// modules: the bench builds with GO111MODULE=off and no network.
type egroup struct {
	wg      sync.WaitGroup
	errOnce sync.Once
	err     error
	cancel  func(error)
}

func egWithContext(ctx context.Context) (*egroup, context.Context) {
	ctx, cancel := context.WithCancelCause(ctx)
	return &egroup{cancel: cancel}, ctx
}

func (g *egroup) Go(f func() error) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		if err := f(); err != nil {
			g.errOnce.Do(func() {
				g.err = err
				if g.cancel != nil {
					g.cancel(g.err)
				}
			})
		}
	}()
}

func (g *egroup) Wait() error {
	g.wg.Wait()
	if g.cancel != nil {
		g.cancel(g.err)
	}
	return g.err
}

func kitBench(w string, n int) bool {
	def := func(d int) int {
		if n == 0 {
			return d
		}
		return n
	}
	switch w {
	case "context_cancel":
		n := def(1000000)
		parent, stop := context.WithCancel(context.Background())
		t0 := time.Now()
		for i := 0; i < n; i++ {
			_, cancel := context.WithCancel(parent)
			cancel()
		}
		el := time.Since(t0)
		stop()
		report(per(el, n), "ns/op")
	case "errgroup_fanout":
		rounds := def(200)
		t0 := time.Now()
		for r := 0; r < rounds; r++ {
			g, _ := egWithContext(context.Background())
			for i := 0; i < 1000; i++ {
				g.Go(func() error { return nil })
			}
			if err := g.Wait(); err != nil {
				panic(err)
			}
		}
		report(per(time.Since(t0), rounds), "ns/round")
	default:
		return false
	}
	return true
}
