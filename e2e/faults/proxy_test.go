package faults

import (
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// proxies carry every TCP connection between nodes (Raft and forwarded
// HTTP): each node's namespace redirects (iptables DNAT) its connections to
// a peer's Raft or HTTP port to a proxy of this process, listening on the
// bridge, which forwards them to the peer. The proxies add a one-way delay
// when told to. The kernel has no netem qdisc, hence this.
type proxies struct {
	delay    atomic.Int64 // nanoseconds, each way
	accepted atomic.Int64
	mu       sync.Mutex
	lns      []net.Listener
	conns    map[net.Conn]struct{}
}

func startProxies(t *testing.T, l *lab) *proxies {
	p := &proxies{conns: map[net.Conn]struct{}{}}
	for _, dst := range l.nodes {
		for _, port := range []int{raftPort, httpPort} {
			ln, err := net.Listen("tcp", l.addr(254)+":0")
			require.NoError(t, err)
			p.lns = append(p.lns, ln)
			target := net.JoinHostPort(dst.ip, strconv.Itoa(port))
			go p.serve(ln, target)
			to := ln.Addr().String()
			for _, src := range l.nodes {
				if src != dst {
					l.ipt(src, "-t", "nat", "-A", "OUTPUT", "-d", dst.ip, "-p", "tcp", "--dport", fmt.Sprint(port),
						"-j", "DNAT", "--to-destination", to)
				}
			}
		}
	}
	return p
}

func (p *proxies) setDelay(d time.Duration) { p.delay.Store(int64(d)) }

func (p *proxies) track(c net.Conn, add bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		return false
	}
	if add {
		p.conns[c] = struct{}{}
	} else {
		delete(p.conns, c)
	}
	return true
}

func (p *proxies) serve(ln net.Listener, target string) {
	for {
		in, err := ln.Accept()
		if err != nil {
			return
		}
		p.accepted.Add(1)
		go func() {
			out, err := net.DialTimeout("tcp", target, 5*time.Second)
			if err != nil {
				in.Close()
				return
			}
			if !p.track(in, true) || !p.track(out, true) {
				in.Close()
				out.Close()
				return
			}
			done := make(chan struct{}, 2)
			go func() { p.pipe(out, in); done <- struct{}{} }()
			go func() { p.pipe(in, out); done <- struct{}{} }()
			<-done
			in.Close()
			out.Close()
			<-done
			p.track(in, false)
			p.track(out, false)
		}()
	}
}

// pipe copies src to dst, each chunk held back by the delay in force when
// it was read; chunks keep their order.
func (p *proxies) pipe(dst, src net.Conn) {
	type chunk struct {
		b   []byte
		due time.Time
	}
	ch := make(chan chunk, 256)
	go func() {
		defer close(ch)
		for {
			b := make([]byte, 32<<10)
			n, err := src.Read(b)
			if n > 0 {
				ch <- chunk{b[:n], time.Now().Add(time.Duration(p.delay.Load()))}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range ch {
		if d := time.Until(c.due); d > 0 {
			time.Sleep(d)
		}
		if _, err := dst.Write(c.b); err != nil {
			src.Close()
			for range ch {
			}
			return
		}
	}
}

func (p *proxies) close() {
	p.mu.Lock()
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	for _, ln := range p.lns {
		ln.Close()
	}
	for c := range conns {
		c.Close()
	}
}
