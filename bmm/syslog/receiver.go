package syslog

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mozpool/mozpool/fsm"
)

var (
	// ErrStarted is returned by Start on a Receiver already started.
	ErrStarted = errors.New("syslog receiver already started")
	// ErrClosed is returned by Start after Shutdown.
	ErrClosed = errors.New("syslog receiver closed")
)

// Source is the log source of every entry the receiver files.
const Source = "device"

const (
	// maxDatagram is the read buffer: the largest UDP payload.
	maxDatagram = 65535
	// logEvery is how often each kind of dropped message is logged at
	// most; the lines in between are counted in the next log line.
	logEvery = 10 * time.Second
	// clockSkew is how far a board's timestamp may be from the receive
	// time and still be used.
	clockSkew = 24 * time.Hour
)

// Stats counts datagrams since the Receiver was created. Every datagram
// received ends up in exactly one of Malformed, UnknownSender, Dropped and
// Filed, or is still queued.
type Stats struct {
	// Received is the number of datagrams read.
	Received uint64
	// Filed is the number of messages proposed and applied as log entries.
	Filed uint64
	// UnknownSender is the number of messages from an address and
	// hostname that match none of this imaging server's boards,
	// including boards of other imaging servers.
	UnknownSender uint64
	// Malformed is the number of datagrams that are not syslog (no valid
	// "<PRI>") or carry nothing to file.
	Malformed uint64
	// Dropped is the number of messages lost because the queue was full
	// or their proposal failed.
	Dropped uint64
}

// Receiver is a syslog server that files boards' messages in their device
// logs. Create it with New, then either call Start and later Shutdown, or
// call Run.
type Receiver struct {
	cfg    Config
	logger hclog.Logger

	// queue carries entries from the reader to the flusher. Only the
	// reader sends on it, and it closes it when it stops.
	queue chan fsm.LogEntry

	// mu guards conn, started and closed.
	mu      sync.Mutex
	conn    *net.UDPConn
	started bool
	closed  bool

	// done is closed when the flusher has filed or dropped every queued
	// entry (or by Shutdown if the receiver never started).
	done     chan struct{}
	stopOnce sync.Once
	// abortCtx is the parent of every proposal; abort cancels it when
	// Shutdown's context ends before the queue is flushed.
	abortCtx context.Context
	abort    context.CancelFunc

	// index finds the device a line comes from (index.go).
	index deviceIndex

	// The counters behind Stats.
	received, filed, unknown, malformed, dropped atomic.Uint64

	// One log rate limit per kind of trouble.
	unknownLog, malformedLog, droppedLog, readLog, failedLog limiter
}

// New returns a Receiver for cfg. It does not open a socket; Start does.
func New(cfg Config) (*Receiver, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &Receiver{
		cfg:    cfg,
		logger: cfg.Logger.Named(loggerName),
		queue:  make(chan fsm.LogEntry, cfg.QueueSize),
		done:   make(chan struct{}),
	}
	r.abortCtx, r.abort = context.WithCancel(context.Background())
	return r, nil
}

// Start binds the UDP socket and starts the reader and the flusher. Addr is
// valid once Start returns nil.
func (r *Receiver) Start() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.closed:
		return ErrClosed
	case r.started:
		return ErrStarted
	}
	addr, err := net.ResolveUDPAddr("udp", r.cfg.Addr)
	if err != nil {
		return fmt.Errorf("syslog: address %s: %w", r.cfg.Addr, err)
	}
	conn, err := net.ListenUDP("udp", addr)
	if err != nil {
		return fmt.Errorf("syslog: listen %s: %w", r.cfg.Addr, err)
	}
	r.conn, r.started = conn, true
	r.logger.Info("syslog receiver listening", "addr", conn.LocalAddr().String(), "server", r.cfg.Server)
	// Exits when Shutdown closes conn; it then closes the queue.
	go r.read(conn)
	// Exits when the queue is closed and drained.
	go r.flush()
	return nil
}

// Run starts the receiver and blocks until ctx is done, then shuts it down,
// giving the last batch up to ProposeTimeout to be filed. It returns nil
// after a clean stop.
func (r *Receiver) Run(ctx context.Context) error {
	if err := r.Start(); err != nil {
		return err
	}
	<-ctx.Done()
	// ctx is already done, so Shutdown needs a context of its own.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.ProposeTimeout+time.Second)
	defer cancel()
	return r.Shutdown(sctx)
}

// Addr returns the address the receiver listens on, or nil before Start.
func (r *Receiver) Addr() net.Addr {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conn == nil {
		return nil
	}
	return r.conn.LocalAddr()
}

// Stats returns the counters.
func (r *Receiver) Stats() Stats {
	return Stats{
		Received:      r.received.Load(),
		Filed:         r.filed.Load(),
		UnknownSender: r.unknown.Load(),
		Malformed:     r.malformed.Load(),
		Dropped:       r.dropped.Load(),
	}
}

// Shutdown stops the receiver:
//
//  1. it marks the receiver closed, so Start fails from now on;
//  2. it closes the socket, which stops the reader; the reader closes the
//     queue;
//  3. it waits for the flusher to propose what is queued, in batches.
//
// If ctx ends first, the remaining proposals are cancelled, what is still
// queued is counted as dropped, and Shutdown returns ctx.Err(). Shutdown may
// be called more than once, and before Start.
func (r *Receiver) Shutdown(ctx context.Context) error {
	r.stopOnce.Do(func() {
		r.mu.Lock()
		r.closed = true
		started, conn := r.started, r.conn
		r.mu.Unlock()
		if !started {
			close(r.done)
			return
		}
		conn.Close()
	})
	select {
	case <-r.done:
		r.abort() // releases the context
		return nil
	case <-ctx.Done():
		r.abort()
		return ctx.Err()
	}
}

// read reads datagrams until the socket is closed, then closes the queue.
// It runs on its own goroutine and never blocks on the flusher.
func (r *Receiver) read(conn *net.UDPConn) {
	defer close(r.queue)
	buf := make([]byte, maxDatagram)
	for {
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if n > 0 {
			r.handle(buf[:n], from.Addr(), time.Now())
		}
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			// A transient socket error (such as a full buffer);
			// pause so a persistent one cannot spin.
			if ok, n := r.readLog.allow(time.Now()); ok {
				r.logger.Warn("syslog read failed", "error", err, "suppressed", n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// handle files one datagram received from addr at now: it parses it, finds
// the board, and queues the entry without blocking. It never fails and
// never panics; every outcome is counted.
func (r *Receiver) handle(b []byte, from netip.Addr, now time.Time) {
	r.received.Add(1)
	now = now.UTC()
	m, err := parse(b, now, r.cfg.Location, r.cfg.MaxMessage)
	if err != nil {
		r.malformed.Add(1)
		if ok, n := r.malformedLog.allow(now); ok {
			r.logger.Debug("dropped malformed syslog message", "addr", from, "error", err, "bytes", len(b), "suppressed", n)
		}
		return
	}
	device, reason := r.lookup(from.Unmap(), m.hostname)
	if device == "" {
		r.unknown.Add(1)
		if ok, n := r.unknownLog.allow(now); ok {
			r.logger.Debug("dropped syslog message from unknown sender", "addr", from, "hostname", m.hostname, "reason", reason, "suppressed", n)
		}
		return
	}
	at := now
	if !m.at.IsZero() && m.at.Sub(now).Abs() <= clockSkew {
		at = m.at.UTC()
	}
	e := fsm.LogEntry{Kind: fsm.LogDevice, Name: device, At: at, Source: Source, Message: m.text}
	if r.cfg.OnMessage != nil {
		r.cfg.OnMessage(device, at, m.text)
	}
	select {
	case r.queue <- e:
	default:
		r.dropped.Add(1)
		if ok, n := r.droppedLog.allow(now); ok {
			r.logger.Warn("syslog queue full; dropped message", "device", device, "suppressed", n)
		}
	}
}

// lookup finds the board that sent a message: the device whose ip_address
// is the sender's address, else the device whose name or fqdn (or address)
// is the message's HOSTNAME. The address is the stronger identity: a sender
// whose address belongs to another imaging server's board is refused
// whatever hostname it claims. It returns "" and a reason for a sender that
// is not one of this imaging server's boards.
func (r *Receiver) lookup(from netip.Addr, hostname string) (device, reason string) {
	byAddr := func(d *fsm.Device) bool {
		a, err := netip.ParseAddr(d.IPAddress)
		return err == nil && from.IsValid() && a.Unmap() == from
	}
	host := strings.TrimSuffix(hostname, ".")
	hostAddr, hostErr := netip.ParseAddr(host)
	byName := func(d *fsm.Device) bool {
		if host == "" {
			return false
		}
		if hostErr == nil {
			a, err := netip.ParseAddr(d.IPAddress)
			return err == nil && a.Unmap() == hostAddr.Unmap()
		}
		return strings.EqualFold(host, d.Name) || strings.EqualFold(host, strings.TrimSuffix(d.FQDN, "."))
	}
	// The index's candidates for each way of matching.
	candidates := func(x *deviceIndex) [2][]string {
		var c [2][]string
		if from.IsValid() {
			c[0] = x.byAddr[from]
		}
		switch {
		case host == "":
		case hostErr == nil:
			c[1] = x.byAddr[hostAddr.Unmap()]
		default:
			c[1] = x.byName[strings.ToLower(host)]
		}
		return c
	}
	r.index.mu.Lock()
	defer r.index.mu.Unlock()
	r.cfg.FSM.Read(func(s *fsm.State) {
		now := time.Now()
		x := &r.index
		if x.stale(s, now) {
			x.rebuild(s, r.cfg.FSM.AppliedIndex(), now)
		}
		c := candidates(x)
		if len(c[0]) == 0 && len(c[1]) == 0 && x.rebuildOnMiss(r.cfg.FSM.AppliedIndex(), now) {
			// Unknown to an index built before the last change: perhaps
			// an address or name changed since.
			x.rebuild(s, r.cfg.FSM.AppliedIndex(), now)
			c = candidates(x)
		}
		for i, match := range []func(*fsm.Device) bool{byAddr, byName} {
			own, other, behind := r.find(s, c[i], match)
			if behind {
				// A candidate no longer matches: the index is behind
				// the state.
				x.rebuild(s, r.cfg.FSM.AppliedIndex(), now)
				own, other, _ = r.find(s, candidates(x)[i], match)
			}
			switch {
			case own != "":
				device = own
				return
			case other != "":
				reason = "device " + other + " belongs to another imaging server"
				return
			}
		}
		reason = "no device has this address or hostname"
	})
	return device, reason
}

// find returns the first (by name) matching device of this imaging server
// among the index's candidates and, if there is none, the first matching
// device of another; behind is true when a candidate does not match.
func (r *Receiver) find(s *fsm.State, candidates []string, match func(*fsm.Device) bool) (own, other string, behind bool) {
	for _, name := range candidates {
		d := s.Devices[name]
		if d == nil || !match(d) {
			behind = true
			continue
		}
		if d.ImagingServer == r.cfg.Server {
			if own == "" || d.Name < own {
				own = d.Name
			}
		} else if other == "" || d.Name < other {
			other = d.Name
		}
	}
	return own, other, behind
}

// flush collects queued entries into batches and proposes each batch as one
// LogAppend: when it reaches MaxBatch entries, or FlushInterval after its
// first entry. When the queue is closed it proposes what is left and closes
// done.
func (r *Receiver) flush() {
	defer close(r.done)
	var (
		batch []fsm.LogEntry
		timer *time.Timer
		due   <-chan time.Time // nil while the batch is empty
	)
	file := func() {
		if timer != nil {
			timer.Stop()
		}
		due = nil
		r.file(batch)
		batch = nil
	}
	for {
		select {
		case e, ok := <-r.queue:
			if !ok {
				file()
				return
			}
			batch = append(batch, e)
			if len(batch) == 1 {
				timer = time.NewTimer(r.cfg.FlushInterval)
				due = timer.C
			}
			if len(batch) >= r.cfg.MaxBatch {
				file()
			}
		case <-due:
			file()
		}
	}
}

// file proposes one batch. A failed proposal (no leader, Shutdown's
// deadline) drops the batch: the entries are counted and logged, not
// retried, so a long outage cannot build an unbounded backlog.
func (r *Receiver) file(batch []fsm.LogEntry) {
	if len(batch) == 0 {
		return
	}
	err := r.abortCtx.Err()
	if err == nil {
		ctx, cancel := context.WithTimeout(r.abortCtx, r.cfg.ProposeTimeout)
		var res fsm.Result
		res, err = r.cfg.Propose(ctx, fsm.CmdLogAppend, &fsm.LogAppend{
			Header:  fsm.Header{At: time.Now().UTC()},
			Entries: batch,
		})
		cancel()
		if err == nil {
			err = res.Error()
		}
	}
	if err != nil {
		r.dropped.Add(uint64(len(batch)))
		if ok, n := r.failedLog.allow(time.Now()); ok {
			r.logger.Warn("could not file syslog messages", "entries", len(batch), "error", err, "suppressed", n)
		}
		return
	}
	r.filed.Add(uint64(len(batch)))
}

// limiter lets one log line through per logEvery and counts the rest.
type limiter struct {
	mu         sync.Mutex
	next       time.Time
	suppressed uint64
}

// allow reports whether a line may be logged now, and how many were
// suppressed since the last one.
func (l *limiter) allow(now time.Time) (bool, uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Before(l.next) {
		l.suppressed++
		return false, 0
	}
	n := l.suppressed
	l.next, l.suppressed = now.Add(logEvery), 0
	return true, n
}
