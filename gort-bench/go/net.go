// Go's side of the netpoller workloads (tcp_echo, tcp_conns).
package main

import (
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

func init() { extra = append(extra, netBench) }

const tcpEchoClients = 100
const tcpMsg = 64
const tcpConns = 9900

func peakRSS() int64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			f := strings.Fields(l)
			v, _ := strconv.ParseInt(f[1], 10, 64)
			return v * 1024
		}
	}
	return 0
}

func echoConn(c net.Conn) {
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		if n == 0 || err != nil {
			return
		}
		if _, err := c.Write(buf[:n]); err != nil {
			return
		}
	}
}

func echoServer() net.Addr {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				panic(err)
			}
			go echoConn(c)
		}
	}()
	return l.Addr()
}

func netBench(w string, n int) bool {
	switch w {
	case "tcp_echo":
		msgs := 10000
		if n != 0 {
			msgs = n
		}
		addr := echoServer()
		var wg sync.WaitGroup
		t0 := time.Now()
		for i := 0; i < tcpEchoClients; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				c, err := net.Dial("tcp", addr.String())
				if err != nil {
					panic(err)
				}
				msg := make([]byte, tcpMsg)
				for j := range msg {
					msg[j] = byte(i)
				}
				for k := 0; k < msgs; k++ {
					if _, err := c.Write(msg); err != nil {
						panic(err)
					}
					if _, err := io.ReadFull(c, msg); err != nil {
						panic(err)
					}
				}
			}(i)
		}
		wg.Wait()
		report(per(time.Since(t0), tcpEchoClients*msgs), "ns/rt")
	case "tcp_conns", "tcp_conns_ms":
		addr := echoServer()
		t0 := time.Now()
		conns := make([]net.Conn, 0, tcpConns)
		for i := 0; i < tcpConns; i++ {
			c, err := net.Dial("tcp", addr.String())
			if err != nil {
				panic(err)
			}
			conns = append(conns, c)
		}
		msg := make([]byte, tcpMsg)
		for _, c := range conns {
			if _, err := c.Write(msg); err != nil {
				panic(err)
			}
			if _, err := io.ReadFull(c, msg); err != nil {
				panic(err)
			}
		}
		el := time.Since(t0)
		if w == "tcp_conns" {
			report(float64(peakRSS())/1e6, "MB")
		} else {
			report(float64(el.Nanoseconds())/1e6, "ms")
		}
	default:
		return false
	}
	return true
}
