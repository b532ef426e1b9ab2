package relay

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/bmm/bmmtest"
	"github.com/mozpool/mozpool/internal/testwait"
)

// holdBoard takes addr's place in the queue as an operation would, so that
// what the test starts next waits; the returned func lets the board go.
func holdBoard(t *testing.T, c *Client, addr string) (release func()) {
	t.Helper()
	require.NoError(t, c.q.acquire(context.Background(), addr, nil))
	var once sync.Once
	release = func() { once.Do(func() { c.q.release(addr) }) }
	t.Cleanup(release)
	return release
}

func cycleTexts(relays ...int) []string {
	var out []string
	for _, r := range relays {
		ri := RelayInfo{Bank: 1, Relay: r}
		out = append(out, "set "+bankRelay(ri)+" on", "get "+bankRelay(ri), "set "+bankRelay(ri)+" off", "get "+bankRelay(ri))
	}
	return out
}

func bankRelay(ri RelayInfo) string {
	return "bank" + string(rune('0'+ri.Bank)) + " relay" + string(rune('0'+ri.Relay))
}

// Power cycles of one relay asked for while an earlier one waits for the
// board join it: the queue holds one entry for the relay, the board sees
// one cycle of it, and every caller gets its result.
func TestPowerCycleJoinsTheOneWaiting(t *testing.T) {
	b := newBoard(t, bmmtest.RelayBoardOptions{})
	c := newClient(t, testConfig(t))
	addr := relayOn(b, 1, 1).Addr()
	release := holdBoard(t, c, addr)

	const callers = 4
	errs := make(chan error, callers+1)
	for range callers {
		// Exits when the shared cycle has run.
		go func() { errs <- c.PowerCycle(context.Background(), relayOn(b, 1, 1)) }()
	}
	// Another relay of the same board queues behind it as usual.
	waitFor(t, "the first cycle queued", func() bool { return c.q.waiting(addr) == 1 })
	go func() { errs <- c.PowerCycle(context.Background(), relayOn(b, 1, 2)) }()
	waitFor(t, "the second relay's cycle queued", func() bool { return c.q.waiting(addr) == 2 })
	waitFor(t, "every caller of relay 1 joined", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		cy := c.cycles[relayOn(b, 1, 1)]
		return cy != nil && len(cy.callers) == callers
	})
	require.Equal(t, 2, c.q.waiting(addr), "one queue entry per relay, however many callers")

	release()
	for range callers + 1 {
		require.NoError(t, testwait.Within(t, 30*time.Second, "the queued cycles run once the board is free",
			func() error { return <-errs }))
	}
	require.Equal(t, cycleTexts(1, 2), b.CommandTexts(), "one cycle of each relay, in queue order")
}

// A waiting cycle whose caller gives up keeps its place: asked again (a
// retry after a timeout), the cycle is joined there instead of queued at
// the back. One nobody asks for again is dropped without connecting.
func TestAbandonedCycleKeepsItsPlace(t *testing.T) {
	b := newBoard(t, bmmtest.RelayBoardOptions{})
	c := newClient(t, testConfig(t))
	addr := relayOn(b, 1, 1).Addr()
	release := holdBoard(t, c, addr)

	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() { first <- c.PowerCycle(ctx, relayOn(b, 1, 1)) }()
	waitFor(t, "relay 1 queued", func() bool { return c.q.waiting(addr) == 1 })
	ctx3, cancel3 := context.WithCancel(context.Background())
	third := make(chan error, 1)
	go func() { third <- c.PowerCycle(ctx3, relayOn(b, 1, 3)) }()
	waitFor(t, "relay 3 queued", func() bool { return c.q.waiting(addr) == 2 })
	errs := make(chan error, 2)
	go func() { errs <- c.PowerCycle(context.Background(), relayOn(b, 1, 2)) }()
	waitFor(t, "relay 2 queued", func() bool { return c.q.waiting(addr) == 3 })

	cancel()
	err := testwait.Within(t, 30*time.Second, "a caller leaving a queued cycle returns at once", func() error { return <-first })
	require.ErrorIs(t, err, context.Canceled)
	require.ErrorContains(t, err, "wait for board")
	cancel3()
	require.ErrorIs(t, testwait.Within(t, 30*time.Second, "the same for relay 3", func() error { return <-third }), context.Canceled)

	// Asked again, relay 1's cycle is joined where it was.
	go func() { errs <- c.PowerCycle(context.Background(), relayOn(b, 1, 1)) }()
	waitFor(t, "the retry joined the waiting cycle", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		cy := c.cycles[relayOn(b, 1, 1)]
		return cy != nil && len(cy.callers) == 1
	})
	require.Equal(t, 3, c.q.waiting(addr), "the retry added no queue entry")

	release()
	for range 2 {
		require.NoError(t, testwait.Within(t, 30*time.Second, "the cycles run once the board is free",
			func() error { return <-errs }))
	}
	require.Equal(t, cycleTexts(1, 2), b.CommandTexts(),
		"relay 1 in its first place, relay 3 (nobody waits) dropped, then relay 2")
	require.Len(t, b.Connections(), 2, "the dropped cycle never connected")
}

// Notice.Queued is called only when the board is busy; Notice.Started when
// the operation leaves the queue, for every caller of a shared cycle.
func TestNoticeQueuedAndStarted(t *testing.T) {
	b := newBoard(t, bmmtest.RelayBoardOptions{})
	c := newClient(t, testConfig(t))
	ri := relayOn(b, 1, 1)

	var queued, started atomic.Int32
	ctx := WithNotice(context.Background(), Notice{
		Queued:  func() { queued.Add(1) },
		Started: func() { started.Add(1) },
	})
	require.NoError(t, c.PowerCycle(ctx, ri))
	require.NoError(t, c.SetPower(ctx, ri, true))
	require.Equal(t, int32(0), queued.Load(), "a free board: no wait")
	require.Equal(t, int32(2), started.Load())

	release := holdBoard(t, c, ri.Addr())
	errs := make(chan error, 2)
	for range 2 {
		go func() { errs <- c.PowerCycle(ctx, ri) }()
	}
	waitFor(t, "both callers told they wait", func() bool { return queued.Load() == 2 })
	require.Equal(t, int32(2), started.Load(), "not started while the board is held")
	release()
	for range 2 {
		require.NoError(t, testwait.Within(t, 30*time.Second, "the cycle runs", func() error { return <-errs }))
	}
	require.Equal(t, int32(4), started.Load(), "both callers told it started")
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	require.Eventually(t, cond, 30*time.Second, time.Millisecond, what)
}

// A power cycle none of whose callers may proceed when it reaches the head
// of its board's queue (its imaging server no longer owns the board) is
// dropped without connecting; one that may proceed runs.
func TestNoticeProceedDropsTheCycle(t *testing.T) {
	b := newBoard(t, bmmtest.RelayBoardOptions{})
	c := newClient(t, testConfig(t))
	ri := relayOn(b, 1, 1)

	var proceed atomic.Bool
	var started atomic.Int32
	ctx := WithNotice(context.Background(), Notice{
		Proceed: proceed.Load,
		Started: func() { started.Add(1) },
	})
	require.Error(t, c.PowerCycle(ctx, ri), "no caller may proceed")
	require.Empty(t, b.Connections(), "the dropped cycle never connected")
	require.Equal(t, int32(0), started.Load())

	proceed.Store(true)
	require.NoError(t, c.PowerCycle(ctx, ri))
	require.Len(t, b.Connections(), 1)
	require.Equal(t, int32(1), started.Load())
}
