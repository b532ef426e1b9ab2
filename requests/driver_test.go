package requests

import (
	"context"
	"errors"
	"maps"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/fsm"
	"github.com/mozpool/mozpool/internal/testlog"
	"github.com/mozpool/mozpool/lifeguard"
)

// Driver tests run the real Driver against an FSM that its fake Propose
// applies to at once, stamping the real time as the cluster does. Timeouts
// are scaled by 0.001 (a 10 s search interval becomes 10 ms).

// proposal is one command the driver proposed.
type proposal struct {
	typ fsm.CommandType
	id  int64
	at  time.Time
	// due is the request's state deadline (RequestTimeout) or expiry
	// (RequestExpire) when the command was applied; before is a
	// RequestCompact's cut-off.
	due, before time.Time
	result      fsm.Result
}

// driverRig is an FSM, a Driver proposing to it, and the log of proposals.
type driverRig struct {
	t   *testing.T
	f   *fsm.FSM
	drv atomic.Pointer[Driver]

	mu        sync.Mutex
	index     uint64
	proposals []proposal
	// fail makes the next n proposals of the driver fail.
	fail int
	// skew is added to the time stamped on the first RequestExpire
	// (a leader whose clock was stepped back).
	skew time.Duration
}

// driverOption changes the driver's config.
type driverOption func(*DriverConfig)

// newDriverRig syncs the lab with all pandas ready and the time scale at
// 0.001, and returns it with a driver that is not running yet.
func newDriverRig(t *testing.T, opts ...driverOption) *driverRig {
	t.Helper()
	x := &driverRig{t: t}
	x.f = newFSM(t, func(n fsm.Notification) {
		if d := x.drv.Load(); d != nil {
			d.Notify(n)
		}
	})
	x.mustApply(fsm.CmdInventorySync, &fsm.InventorySync{Inventory: rigInventory(), ShipIt: true})
	x.mustApply(fsm.CmdSetTimeScale, &fsm.SetTimeScale{TimeScale: 0.001})
	for _, d := range pandas {
		x.mustApply(fsm.CmdDeviceStateChange, &fsm.DeviceStateChange{Device: d, From: string(lifeguard.StateNew), To: string(lifeguard.StateReady)})
	}
	x.drv.Store(x.newDriver(opts...))
	return x
}

func (x *driverRig) newDriver(opts ...driverOption) *Driver {
	x.t.Helper()
	cfg := DefaultDriverConfig()
	cfg.FSM, cfg.Propose, cfg.Logger = x.f, x.propose, testlog.New(x.t)
	for _, o := range opts {
		o(&cfg)
	}
	d, err := NewDriver(cfg)
	require.NoError(x.t, err)
	return d
}

// applyLocked stamps cmd with the real time (unless set) and applies it.
func (x *driverRig) applyLocked(t fsm.CommandType, cmd fsm.Command) fsm.Result {
	if cmd.Head().At.IsZero() {
		cmd.Head().At = time.Now().UTC()
	}
	b, err := fsm.Encode(t, cmd)
	if err != nil {
		panic(err) // every command here encodes
	}
	x.index++
	return x.f.ApplyCommand(x.index, b)
}

// mustApply applies a command from the test and requires success.
func (x *driverRig) mustApply(t fsm.CommandType, cmd fsm.Command) fsm.Result {
	x.t.Helper()
	x.mu.Lock()
	res := x.applyLocked(t, cmd)
	x.mu.Unlock()
	require.NoError(x.t, res.Error(), "apply %s", t)
	return res
}

// propose is the driver's Propose: it runs on the driver's goroutines.
func (x *driverRig) propose(ctx context.Context, t fsm.CommandType, cmd fsm.Command) (fsm.Result, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return fsm.Result{}, err
	}
	if x.fail > 0 {
		x.fail--
		return fsm.Result{}, errors.New("no leader")
	}
	p := proposal{typ: t}
	switch c := cmd.(type) {
	case *fsm.RequestTimeout:
		p.id = c.ID
		x.f.Read(func(s *fsm.State) {
			if r, ok := s.Requests[c.ID]; ok {
				p.due = r.StateDeadline
			}
		})
	case *fsm.RequestExpire:
		p.id = c.ID
		x.f.Read(func(s *fsm.State) {
			if r, ok := s.Requests[c.ID]; ok {
				p.due = r.Expires
			}
		})
		if x.skew != 0 {
			cmd.Head().At = time.Now().UTC().Add(x.skew)
			x.skew = 0
		}
	case *fsm.RequestCompact:
		p.before = c.Before
	}
	res := x.applyLocked(t, cmd)
	p.at, p.result = cmd.Head().At, res
	x.proposals = append(x.proposals, p)
	return res, nil
}

// proposed returns the proposals of type t so far.
func (x *driverRig) proposed(t fsm.CommandType) []proposal {
	x.mu.Lock()
	defer x.mu.Unlock()
	var out []proposal
	for _, p := range x.proposals {
		if p.typ == t {
			out = append(out, p)
		}
	}
	return out
}

// count is the number of proposals so far.
func (x *driverRig) count() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return len(x.proposals)
}

// create applies a create that expires after d and returns the request.
func (x *driverRig) create(dev, env string, d time.Duration) fsm.Request {
	x.t.Helper()
	now := time.Now().UTC()
	res := x.mustApply(fsm.CmdRequestCreate, &fsm.RequestCreate{Header: fsm.Header{At: now},
		RequestedDevice: dev, Assignee: "slave-1", Expires: now.Add(d), Image: "b2g",
		BootConfig: b2gConfig, Environment: env, Server: rigServer})
	var q fsm.Request
	require.NoError(x.t, res.Decode(&q))
	return q
}

// createWait is create with a max_wait.
func (x *driverRig) createWait(dev, env string, d, maxWait time.Duration) fsm.Request {
	x.t.Helper()
	now := time.Now().UTC()
	res := x.mustApply(fsm.CmdRequestCreate, &fsm.RequestCreate{Header: fsm.Header{At: now},
		RequestedDevice: dev, Assignee: "slave-1", Expires: now.Add(d), Image: "b2g",
		BootConfig: b2gConfig, Environment: env, Server: rigServer, MaxWait: maxWait})
	var q fsm.Request
	require.NoError(x.t, res.Decode(&q))
	return q
}

// request returns a copy of a request; ok is false once it is deleted.
func (x *driverRig) request(id int64) (q fsm.Request, ok bool) {
	x.f.Read(func(s *fsm.State) {
		var p *fsm.Request
		if p, ok = s.Requests[id]; ok {
			q = *p
			q.Counters = maps.Clone(p.Counters)
		}
	})
	return q, ok
}

// state is a request's state ("" once deleted).
func (x *driverRig) state(id int64) State {
	q, _ := x.request(id)
	return State(q.State)
}

// run starts d.Run and returns a function that cancels it and waits for
// Run to return.
func (x *driverRig) run(d *Driver) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	// Exits when ctx is cancelled by stop (or by the cleanup).
	go func() {
		defer close(done)
		d.Run(ctx)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}
	x.t.Cleanup(stop)
	return stop
}

const (
	waitFor = 10 * time.Second
	tick    = 5 * time.Millisecond
)

// A request waiting in the queue costs no proposal until its max_wait
// passes: then exactly one timeout, never before its deadline, fails it.
func TestDriverWaitsWithoutSearching(t *testing.T) {
	x := newDriverRig(t, func(c *DriverConfig) { c.ResyncInterval = 5 * time.Millisecond })
	x.mustApply(fsm.CmdSetTimeScale, &fsm.SetTimeScale{TimeScale: 1}) // no pending polls here
	holder := x.create("any", "odd", time.Hour)
	for range 2 {
		x.create("any", "odd", time.Hour)
	}
	q := x.createWait("any", "odd", time.Hour, 300*time.Millisecond)
	require.Equal(t, StateFindingDevice, State(q.State))
	other := x.createWait(holder.Device, "any", time.Hour, time.Hour)
	require.Equal(t, StateFindingDevice, State(other.State))
	x.run(x.drv.Load())

	require.Eventually(t, func() bool { return x.state(q.ID) == StateFailedDeviceNotFound }, waitFor, tick)
	timeouts := x.proposed(fsm.CmdRequestTimeout)
	require.Len(t, timeouts, 1, "one proposal: the end of the wait")
	require.Equal(t, q.ID, timeouts[0].id)
	require.False(t, timeouts[0].at.Before(timeouts[0].due), "proposed at %s, before its deadline %s", timeouts[0].at, timeouts[0].due)
	require.Never(t, func() bool { return x.count()-len(x.proposed(fsm.CmdQueueEpoch)) > 1 }, 100*time.Millisecond, tick,
		"resyncs find nothing to propose for a waiting request")
	require.Equal(t, StateFindingDevice, x.state(other.ID))
}

// Expiry is proposed at expires, and the request is closed and its device
// released.
func TestDriverExpires(t *testing.T) {
	x := newDriverRig(t)
	x.mustApply(fsm.CmdSetTimeScale, &fsm.SetTimeScale{TimeScale: 1}) // no pending polls here
	q := x.create("any", "any", 150*time.Millisecond)
	require.Equal(t, StatePending, State(q.State))
	x.run(x.drv.Load())

	require.Eventually(t, func() bool { return x.state(q.ID) == StateClosed }, waitFor, tick)
	exp := x.proposed(fsm.CmdRequestExpire)
	require.Len(t, exp, 1)
	require.False(t, exp[0].at.Before(q.Expires), "expire proposed at %s, before expires %s", exp[0].at, q.Expires)
	got, _ := x.request(q.ID)
	require.Empty(t, got.Device)
	x.f.Read(func(s *fsm.State) { require.Zero(t, s.Devices[q.Device].RequestID) })
}

// A renewal moves the expiry timer.
func TestDriverFollowsRenewal(t *testing.T) {
	x := newDriverRig(t)
	x.mustApply(fsm.CmdSetTimeScale, &fsm.SetTimeScale{TimeScale: 1})
	q := x.create("any", "any", 100*time.Millisecond)
	x.run(x.drv.Load())
	renewed := time.Now().UTC().Add(300 * time.Millisecond)
	x.mustApply(fsm.CmdRequestRenew, &fsm.RequestRenew{ID: q.ID, Expires: renewed})

	require.Eventually(t, func() bool { return x.state(q.ID) == StateClosed }, waitFor, tick)
	for _, p := range x.proposed(fsm.CmdRequestExpire) {
		if p.result.Error() == nil && p.at.Before(renewed) {
			var res fsm.EventResult
			require.NoError(t, p.result.Decode(&res))
			require.True(t, res.Ignored, "an expiry before the renewed time must not close the request")
		}
	}
}

// An expiry refused as early (the leader's clock was stepped back) is
// proposed again at the next resync.
func TestDriverRetriesRefusedExpiry(t *testing.T) {
	x := newDriverRig(t, func(c *DriverConfig) { c.ResyncInterval = 20 * time.Millisecond })
	x.mustApply(fsm.CmdSetTimeScale, &fsm.SetTimeScale{TimeScale: 1})
	x.skew = -time.Minute
	q := x.create("any", "any", 50*time.Millisecond)
	x.run(x.drv.Load())

	require.Eventually(t, func() bool { return x.state(q.ID) == StateClosed }, waitFor, tick)
	exp := x.proposed(fsm.CmdRequestExpire)
	require.GreaterOrEqual(t, len(exp), 2)
	var first fsm.EventResult
	require.NoError(t, exp[0].result.Decode(&first))
	require.True(t, first.Ignored, "the skewed expiry is refused")
}

// A failed proposal is retried while the timer is still current.
func TestDriverRetriesFailedProposals(t *testing.T) {
	x := newDriverRig(t)
	x.mu.Lock()
	x.fail = 2
	x.mu.Unlock()
	held := x.create("any", "odd", time.Hour)
	q := x.createWait(held.Device, "any", time.Hour, 50*time.Millisecond)
	x.run(x.drv.Load())
	require.Eventually(t, func() bool { return x.state(q.ID) == StateFailedDeviceBusy }, waitFor, tick)
}

// Cancelling Run's context stops every timer: nothing is proposed after
// Run has returned, and changes are no longer watched.
func TestDriverStopsOnCancel(t *testing.T) {
	x := newDriverRig(t)
	expiring := x.create("any", "any", 200*time.Millisecond)
	searching := x.createWait(expiring.Device, "any", time.Hour, time.Hour)
	stop := x.run(x.drv.Load())
	require.Eventually(t, func() bool { return len(x.proposed(fsm.CmdRequestTimeout)) >= 3 }, waitFor, tick)
	stop()

	n := x.count()
	after := x.createWait(expiring.Device, "any", 50*time.Millisecond, 10*time.Millisecond)
	require.Never(t, func() bool { return x.count() != n }, 400*time.Millisecond, tick, "proposals after Run returned")
	require.Equal(t, StateFindingDevice, x.state(searching.ID))
	require.Equal(t, StatePending, x.state(expiring.ID), "its expiry passed with no driver")
	require.Equal(t, StateFindingDevice, x.state(after.ID))
}

// A new Run — a new term of leadership — rebuilds the timers from the
// state: an expiry that passed while no driver ran is proposed at once, and
// pending polls resume.
func TestDriverRebuildsTimersOnStart(t *testing.T) {
	x := newDriverRig(t, func(c *DriverConfig) { c.ResyncInterval = time.Hour })
	d := x.drv.Load()
	stop := x.run(d)
	polling := x.create("any", "any", time.Hour)
	require.Eventually(t, func() bool { return len(x.proposed(fsm.CmdRequestTimeout)) >= 2 }, waitFor, tick)
	stop()

	expired := x.create("any", "any", 50*time.Millisecond)
	require.Equal(t, StatePending, State(expired.State))
	require.Eventually(t, func() bool { return time.Now().After(expired.Expires) }, waitFor, tick)

	// The same driver, as a node that leads again; then a fresh one, as
	// another node taking over.
	for i, next := range []*Driver{d, x.newDriver(func(c *DriverConfig) { c.ResyncInterval = time.Hour })} {
		x.drv.Store(next)
		stop := x.run(next)
		if i == 0 {
			// At once, not at the next resync: that is an hour away.
			require.Eventually(t, func() bool { return x.state(expired.ID) == StateClosed }, waitFor, tick,
				"an overdue expiry is proposed when Run starts")
		}
		base := len(x.proposed(fsm.CmdRequestTimeout))
		require.Eventually(t, func() bool { return len(x.proposed(fsm.CmdRequestTimeout)) >= base+2 }, waitFor, tick,
			"run %d: polls resume", i)
		stop()
	}
	require.True(t, x.state(polling.ID).Open())
}

// A driver starting on a state without a queue epoch proposes one, once;
// the next term finds it and proposes nothing.
func TestDriverMarksQueueEpoch(t *testing.T) {
	x := newDriverRig(t)
	stop := x.run(x.drv.Load())
	require.Eventually(t, func() bool {
		var e uint64
		x.f.Read(func(s *fsm.State) { e = s.Queue.Epoch })
		return e != 0
	}, waitFor, tick)
	stop()
	stop = x.run(x.newDriver())
	defer stop()
	require.Never(t, func() bool { return len(x.proposed(fsm.CmdQueueEpoch)) != 1 }, 100*time.Millisecond, tick)
}

// Compaction is proposed only when some request qualifies: closed or
// failed and expired more than KeepClosed ago.
func TestDriverCompaction(t *testing.T) {
	const keep = 150 * time.Millisecond
	x := newDriverRig(t, func(c *DriverConfig) {
		c.KeepClosed, c.CompactInterval = keep, 10*time.Millisecond
	})
	x.mustApply(fsm.CmdSetTimeScale, &fsm.SetTimeScale{TimeScale: 1})
	open := x.create("any", "any", time.Hour)
	x.run(x.drv.Load())
	require.Never(t, func() bool { return len(x.proposed(fsm.CmdRequestCompact)) > 0 }, 100*time.Millisecond, tick,
		"nothing qualifies")

	old := x.create("any", "nowhere", 20*time.Millisecond)
	x.mustApply(fsm.CmdRequestEvent, &fsm.RequestEvent{ID: old.ID, Event: string(EventClose)})
	require.Eventually(t, func() bool { _, ok := x.request(old.ID); return !ok }, waitFor, tick)

	compacts := x.proposed(fsm.CmdRequestCompact)
	require.Len(t, compacts, 1)
	require.True(t, old.Expires.Before(compacts[0].before), "the cut-off passed the request's expiry")
	require.False(t, compacts[0].at.Before(old.Expires.Add(keep)), "compacted %s after expiry, want ≥ %s",
		compacts[0].at.Sub(old.Expires), keep)
	require.Never(t, func() bool { return len(x.proposed(fsm.CmdRequestCompact)) > 1 }, 100*time.Millisecond, tick,
		"nothing qualifies any more")
	_, ok := x.request(open.ID)
	require.True(t, ok)
}

func TestDriverConfigValidate(t *testing.T) {
	f := newFSM(t, nil)
	propose := func(context.Context, fsm.CommandType, fsm.Command) (fsm.Result, error) { return fsm.Result{}, nil }
	tests := []struct {
		name   string
		change func(c *DriverConfig)
	}{
		{"no fsm", func(c *DriverConfig) { c.FSM = nil }},
		{"no propose", func(c *DriverConfig) { c.Propose = nil }},
		{"keep closed", func(c *DriverConfig) { c.KeepClosed = 0 }},
		{"compact interval", func(c *DriverConfig) { c.CompactInterval = -time.Second }},
		{"resync interval", func(c *DriverConfig) { c.ResyncInterval = 0 }},
		{"concurrency", func(c *DriverConfig) { c.Concurrency = 0 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultDriverConfig()
			cfg.FSM, cfg.Propose = f, propose
			require.NoError(t, cfg.Validate())
			tc.change(&cfg)
			_, err := NewDriver(cfg)
			require.Error(t, err)
		})
	}
}
