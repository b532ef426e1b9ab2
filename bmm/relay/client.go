package relay

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
)

var (
	// ErrTimeout is returned when an operation's own deadline (OpTimeout or
	// CommsTimeout, counted from when it left the queue) passes before the
	// board has answered. A caller's ctx ending yields ctx.Err() instead.
	ErrTimeout = errors.New("relay board timed out")
	// ErrRefused is returned when the board refuses the TCP connection.
	ErrRefused = errors.New("relay board refused the connection")
	// ErrBadReply is returned when the board answers with the wrong bytes,
	// or closes the connection without answering.
	ErrBadReply = errors.New("bad reply from relay board")
	// ErrStatusMismatch is returned by PowerCycle when the relay status read
	// back after a set is not what was just set.
	ErrStatusMismatch = errors.New("relay status does not match what was set")
	// errAbandoned ends a queued power cycle whose callers have all gone
	// by the time the board is free: it is dropped without connecting.
	errAbandoned = errors.New("power cycle abandoned: nobody waits for it")
)

// Client talks ProXR to relay boards, one operation per board at a time.
// Its methods are synchronous and safe for concurrent use; operations on
// the same board wait their turn in a FIFO queue.
type Client struct {
	cfg    Config
	logger hclog.Logger
	q      *queue

	mu sync.Mutex
	// cycles holds, per relay, the power cycle waiting in its board's
	// queue (not started yet), which later callers join.
	cycles map[RelayInfo]*cycle
}

// New returns a Client. It starts no goroutines.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Client{cfg: cfg, logger: cfg.Logger.Named(loggerName), q: newQueue(), cycles: map[RelayInfo]*cycle{}}, nil
}

// cycle is one power cycle of one relay, shared by every caller that asks
// for it before it leaves the board's queue. A power cycle that has not
// started yet satisfies whoever asks for the same relay: the device will
// be cycled after they asked. So a board never has two power cycles of
// the same relay waiting, however often they are asked for.
type cycle struct {
	callers map[*Notice]struct{} // who waits for the result
	queued  bool                 // the board was busy: it waits in the queue
	started bool                 // it left the queue: nobody can join any more
	ctx     context.Context      // ends when the last caller of a started cycle leaves
	cancel  context.CancelCauseFunc
	done    chan struct{} // closed when err is set
	err     error
}

// notices lists the callers' notices; call with c.mu held.
func (cy *cycle) notices() []*Notice {
	out := make([]*Notice, 0, len(cy.callers))
	for n := range cy.callers {
		out = append(out, n)
	}
	return out
}

// PowerCycle turns the device on ri off and on again over one connection:
// power-off, expect OK; read status, expect off; wait Config.OffTime;
// power-on, expect OK; read status, expect on. The board sees
// set, get, set, get.
//
// A power cycle of ri that is already waiting for the board is joined, not
// queued again: both callers get its result. A caller whose ctx ends while
// the cycle waits leaves it; the cycle keeps its place in the queue (a
// caller asking again joins it there) and is dropped without connecting if
// nobody waits for it when its turn comes. A started cycle is cancelled
// when its last caller leaves.
func (c *Client) PowerCycle(ctx context.Context, ri RelayInfo) error {
	if err := ri.validate(); err != nil {
		return err
	}
	n := noticeFrom(ctx)
	me := &n
	c.mu.Lock()
	cy, joined := c.cycles[ri]
	if !joined {
		cy = &cycle{callers: map[*Notice]struct{}{}, done: make(chan struct{})}
		cy.ctx, cy.cancel = context.WithCancelCause(context.Background())
		c.cycles[ri] = cy
	}
	cy.callers[me] = struct{}{}
	queued := cy.queued
	c.mu.Unlock()
	if joined {
		c.logger.Debug("power cycle already waiting for the board; joined it", "board", ri.Addr(), "bank", ri.Bank, "relay", ri.Relay)
		if queued {
			n.queued()
		}
	} else {
		// Exits when the cycle has run, or has been dropped at the head
		// of the queue because nobody waits for it any more.
		go c.runCycle(ri, cy)
	}

	select {
	case <-cy.done:
		return cy.err
	case <-ctx.Done():
	}
	c.mu.Lock()
	delete(cy.callers, me)
	started, last := cy.started, len(cy.callers) == 0
	if started && last {
		cy.cancel(ctx.Err())
	}
	c.mu.Unlock()
	if started && last {
		<-cy.done // the operation unwinds at once: its connection's deadline is now
		return cy.err
	}
	if started {
		return fmt.Errorf("power-cycle %s: %w", describe(ri, ri.Addr()), ctx.Err())
	}
	return fmt.Errorf("power-cycle %s: wait for board: %w", describe(ri, ri.Addr()), ctx.Err())
}

// runCycle waits for cy's turn on the board and runs it, telling the
// callers' notices when it queues and when it starts.
func (c *Client) runCycle(ri RelayInfo, cy *cycle) {
	defer cy.cancel(nil)
	h := hooks{
		queued: func() {
			c.mu.Lock()
			cy.queued = true
			ns := cy.notices()
			c.mu.Unlock()
			for _, n := range ns {
				n.queued()
			}
		},
		start: func() bool {
			c.mu.Lock()
			ns := cy.notices()
			c.mu.Unlock()
			ok := len(ns) == 0
			for _, n := range ns {
				ok = ok || n.proceed()
			}
			c.mu.Lock()
			if !ok {
				if c.cycles[ri] == cy {
					delete(c.cycles, ri)
				}
				c.mu.Unlock()
				c.logger.Info("power cycle dropped at the head of the queue: no caller may proceed", "board", ri.Addr(), "bank", ri.Bank, "relay", ri.Relay)
				return false
			}
			if c.cycles[ri] == cy {
				delete(c.cycles, ri)
			}
			if len(cy.callers) == 0 {
				c.mu.Unlock()
				return false
			}
			cy.started = true
			ns = cy.notices()
			c.mu.Unlock()
			for _, n := range ns {
				n.started()
			}
			return true
		},
	}
	cy.err = c.do(cy.ctx, "power-cycle", ri, ri.Addr(), c.cfg.OpTimeout, h, func(opCtx context.Context, s *session) error {
		if err := s.set(ri, false); err != nil {
			return err
		}
		if err := expectStatus(s, ri, false); err != nil {
			return err
		}
		t := time.NewTimer(c.cfg.OffTime)
		defer t.Stop()
		select {
		case <-t.C:
		case <-opCtx.Done():
			return fmt.Errorf("wait with the device off: %w", context.Cause(opCtx))
		}
		if err := s.set(ri, true); err != nil {
			return err
		}
		return expectStatus(s, ri, true)
	})
	close(cy.done)
}

// hooks are an operation's queue events: queued when it must wait for the
// board, start when it leaves the queue; start returning false drops the
// operation without connecting.
type hooks struct {
	queued func()
	start  func() bool
}

// noticeHooks turns the Notice in ctx into hooks.
func noticeHooks(ctx context.Context) hooks {
	n := noticeFrom(ctx)
	return hooks{queued: n.queued, start: func() bool { n.started(); return true }}
}

func expectStatus(s *session, ri RelayInfo, want bool) error {
	on, err := s.status(ri)
	if err != nil {
		return err
	}
	if on != want {
		return fmt.Errorf("%w: device reads %s after power-%s", ErrStatusMismatch, onOff(on), onOff(want))
	}
	return nil
}

// SetPower powers the device on ri on (relay off) or off (relay on) and
// expects the board's OK.
func (c *Client) SetPower(ctx context.Context, ri RelayInfo, on bool) error {
	if err := ri.validate(); err != nil {
		return err
	}
	return c.do(ctx, "power-"+onOff(on), ri, ri.Addr(), c.cfg.OpTimeout, noticeHooks(ctx), func(_ context.Context, s *session) error {
		return s.set(ri, on)
	})
}

// Status reports whether the device on ri is powered (its relay is off).
func (c *Client) Status(ctx context.Context, ri RelayInfo) (on bool, err error) {
	if err := ri.validate(); err != nil {
		return false, err
	}
	err = c.do(ctx, "status", ri, ri.Addr(), c.cfg.OpTimeout, noticeHooks(ctx), func(_ context.Context, s *session) error {
		var err error
		on, err = s.status(ri)
		return err
	})
	return on, err
}

// TestComms runs the board's two-way communications test (FE 21), bounded
// by Config.CommsTimeout. A nil error means the board answered.
func (c *Client) TestComms(ctx context.Context, host string, port int) error {
	if host == "" || port < 1 || port > 65535 {
		return fmt.Errorf("%w: board %q port %d", ErrBadRelayInfo, host, port)
	}
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	return c.do(ctx, "comms test", RelayInfo{Host: host, Port: port}, addr, c.cfg.CommsTimeout, noticeHooks(ctx), func(_ context.Context, s *session) error {
		return s.testComms()
	})
}

// do runs one operation on the board at addr: wait for the board's queue
// (bounded only by ctx), then, with a deadline of timeout from that moment,
// connect and run fn. The board stays reserved for Config.Recovery after
// the connection closes. h is told when the operation queues and starts.
func (c *Client) do(ctx context.Context, op string, ri RelayInfo, addr string, timeout time.Duration, h hooks,
	fn func(opCtx context.Context, s *session) error) error {
	queued := time.Now()
	if err := c.q.acquire(ctx, addr, h.queued); err != nil {
		return fmt.Errorf("%s %s: wait for board: %w", op, describe(ri, addr), err)
	}
	if !h.start() {
		c.q.release(addr) // nothing was sent: no recovery pause
		return errAbandoned
	}
	started := time.Now()
	err := c.run(ctx, addr, timeout, fn)
	c.releaseAfterRecovery(addr)

	if err != nil {
		err = fmt.Errorf("%s %s: %w", op, describe(ri, addr), err)
		c.logger.Warn("relay operation failed", "op", op, "board", addr, "bank", ri.Bank, "relay", ri.Relay,
			"queued", started.Sub(queued), "took", time.Since(started), "error", err)
		return err
	}
	c.logger.Debug("relay operation done", "op", op, "board", addr, "bank", ri.Bank, "relay", ri.Relay,
		"queued", started.Sub(queued), "took", time.Since(started))
	return nil
}

// run connects to addr and runs fn with every socket operation bounded by
// the operation's deadline, which starts now.
func (c *Client) run(ctx context.Context, addr string, timeout time.Duration,
	fn func(opCtx context.Context, s *session) error) error {
	opCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	conn, err := c.cfg.Dialer.DialContext(opCtx, "tcp", addr)
	if err != nil {
		return classify(ctx, opCtx, timeout, fmt.Errorf("connect: %w", err))
	}
	defer conn.Close()
	deadline, _ := opCtx.Deadline()
	if err := conn.SetDeadline(deadline); err != nil {
		return fmt.Errorf("set deadline: %w", err)
	}
	// When the caller gives up mid-operation, unblock the read or write in
	// progress; the deadline covers the timeout case by itself.
	stop := context.AfterFunc(opCtx, func() { conn.SetDeadline(time.Now()) })
	defer stop()

	return classify(ctx, opCtx, timeout, fn(opCtx, &session{conn: conn}))
}

// classify maps the ways an operation can run out of time to ErrTimeout
// (its own deadline) or the caller's ctx.Err(), and refused connections to
// ErrRefused; other errors pass through.
func classify(ctx, opCtx context.Context, timeout time.Duration, err error) error {
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return fmt.Errorf("%w (%v)", context.Cause(ctx), err)
	case opCtx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("%w after %s: %v", ErrTimeout, timeout, err)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("%w: %w", ErrRefused, err)
	}
	return err
}

// releaseAfterRecovery keeps addr reserved for Config.Recovery, then hands
// it to the next waiter.
func (c *Client) releaseAfterRecovery(addr string) {
	if c.cfg.Recovery <= 0 {
		c.q.release(addr)
		return
	}
	// The timer's goroutine runs once, Recovery from now, and exits after
	// the release.
	time.AfterFunc(c.cfg.Recovery, func() { c.q.release(addr) })
}

func describe(ri RelayInfo, addr string) string {
	if ri.Bank == 0 {
		return "board " + addr
	}
	return fmt.Sprintf("bank %d relay %d on %s", ri.Bank, ri.Relay, addr)
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

// Waiting returns how many operations wait for their board (queued behind
// another operation or its recovery pause), over every board.
func (c *Client) Waiting() int { return c.q.waitingTotal() }
