// Go's side of the HTTP workloads (issue 20; gort-bench/src/http.rs has
// the definitions): net/http serving "Hello, World!\n" on 127.0.0.1,
// loaded by wrk (one thread, N connections, 10 s) as a child process.
// http_hello_c<N> reports ns per request (1e9 / Requests/sec),
// http_hello_c<N>_p99 the 99th-percentile latency in µs; each prints the
// other as an ALSO line (one wrk run gives both). Without wrk on PATH it
// exits 3 (not applicable).
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

func init() { extra = append(extra, httpBench) }

func httpBench(w string, n int) bool {
	rest, ok := strings.CutPrefix(w, "http_hello_c")
	if !ok {
		return false
	}
	conns, p99 := strings.CutSuffix(rest, "_p99")
	c, err := strconv.Atoi(conns)
	if err != nil || c <= 0 {
		return false
	}
	wrk, err := exec.LookPath("wrk")
	if err != nil {
		fmt.Fprintln(os.Stderr, "no wrk on PATH: the HTTP workloads need it (apt-get install wrk)")
		os.Exit(3)
	}
	secs := 10
	if n != 0 {
		secs = n
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	hello := []byte("Hello, World!\n")
	go http.Serve(l, http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "text/plain")
		rw.Write(hello)
	}))
	out, err := exec.Command(wrk, "-t1", fmt.Sprintf("-c%d", c), fmt.Sprintf("-d%ds", secs),
		"--latency", "http://"+l.Addr().String()+"/").Output()
	os.Stderr.Write(out)
	if err != nil {
		panic(fmt.Sprint("wrk failed: ", err))
	}
	rps, p99us := parseWrk(string(out))
	if rps <= 0 || p99us < 0 {
		panic("cannot read wrk's output")
	}
	ns := 1e9 / rps
	base := "http_hello_c" + conns
	if p99 {
		report(p99us, "us")
		fmt.Printf("ALSO %s %.1f ns/req\n", base, ns)
	} else {
		report(ns, "ns/req")
		fmt.Printf("ALSO %s_p99 %.1f us\n", base, p99us)
	}
	return true
}

// parseWrk reads Requests/sec and the 99% line of wrk's --latency output
// (-1 for either if missing).
func parseWrk(text string) (rps, p99us float64) {
	rps, p99us = -1, -1
	for _, l := range strings.Split(text, "\n") {
		l = strings.TrimSpace(l)
		if v, ok := strings.CutPrefix(l, "Requests/sec:"); ok {
			if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
				rps = f
			}
		} else if v, ok := strings.CutPrefix(l, "99%"); ok {
			v = strings.TrimSpace(v)
			i := strings.IndexFunc(v, func(r rune) bool { return r >= 'a' && r <= 'z' })
			if i < 0 {
				continue
			}
			f, err := strconv.ParseFloat(v[:i], 64)
			scale := map[string]float64{"us": 1, "ms": 1e3, "s": 1e6, "m": 60e6, "h": 3600e6}[v[i:]]
			if err == nil && scale > 0 {
				p99us = f * scale
			}
		}
	}
	return
}
