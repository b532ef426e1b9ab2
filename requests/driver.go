package requests

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mozpool/mozpool/fsm"
	"github.com/mozpool/mozpool/internal/reconcile"
	"github.com/mozpool/mozpool/internal/retry"
)

// DriverConfig configures a Driver.
type DriverConfig struct {
	// FSM is the local replica. Required.
	FSM *fsm.FSM
	// Propose proposes a command (the driver runs on the leader). Required.
	Propose func(ctx context.Context, t fsm.CommandType, cmd fsm.Command) (fsm.Result, error)
	// KeepClosed is how long closed and failed requests are kept after
	// they expire. Default 7 days.
	KeepClosed time.Duration
	// CompactInterval is how often old requests are compacted. Default 1 h.
	CompactInterval time.Duration
	// ResyncInterval re-examines every request, a safety net. Default 10 s.
	ResyncInterval time.Duration
	// Concurrency bounds the timer proposals running at once. Default 32.
	Concurrency int
	// Logger is the parent logger. Default: null logger.
	Logger hclog.Logger
}

// DefaultDriverConfig returns the defaults documented on DriverConfig.
func DefaultDriverConfig() DriverConfig {
	return DriverConfig{KeepClosed: 7 * 24 * time.Hour, CompactInterval: time.Hour, ResyncInterval: 10 * time.Second,
		Concurrency: 32}
}

// Validate reports the first problem.
func (c *DriverConfig) Validate() error {
	if c.FSM == nil || c.Propose == nil {
		return errors.New("requests: fsm and propose are required")
	}
	if c.KeepClosed <= 0 || c.CompactInterval <= 0 || c.ResyncInterval <= 0 {
		return errors.New("requests: keep-closed, compact and resync intervals must be positive")
	}
	if c.Concurrency < 1 {
		return errors.New("requests: concurrency must be at least 1")
	}
	return nil
}

// Driver fires request timers on the leader. Run is a cluster leader task:
// it runs for one term of leadership. The timers are an internal/reconcile
// loop keyed by request ID: a request's deadline in the loop is the nearer
// of its state deadline and its expiry, and a worker proposes whichever of
// them has passed.
type Driver struct {
	cfg    DriverConfig
	logger hclog.Logger
	loop   *reconcile.Loop[int64]

	mu      sync.Mutex
	running bool
	// fired is, per open request, the state entry whose timeout this term
	// has proposed.
	fired map[int64]stateEntry
}

// stateEntry is one entry of a request into a state, with its deadline.
type stateEntry struct {
	gen      uint64
	deadline time.Time
}

// NewDriver returns a Driver.
func NewDriver(cfg DriverConfig) (*Driver, error) {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	d := &Driver{cfg: cfg, logger: cfg.Logger.Named("requests")}
	var err error
	d.loop, err = reconcile.New(reconcile.Config[int64]{Reconcile: d.reconcile, Keys: d.openRequests,
		Workers: cfg.Concurrency, Resync: cfg.ResyncInterval})
	if err != nil {
		return nil, err
	}
	return d, nil
}

// Notify marks the requests an Apply changed. It never blocks; call it from
// fsm.Config.Notify on every node (it does nothing unless Run is running).
func (d *Driver) Notify(n fsm.Notification) {
	d.loop.Mark(n.Requests...)
}

// Run drives request timers until ctx ends (the end of this node's term as
// leader). It starts by examining every request, so a new leader rebuilds
// all timers from the replicated state, and returns once every proposal it
// started has returned.
func (d *Driver) Run(ctx context.Context) {
	d.mu.Lock()
	if d.running {
		d.mu.Unlock()
		d.logger.Error("request driver already running")
		return
	}
	d.running, d.fired = true, map[int64]stateEntry{}
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		d.running, d.fired = false, nil
		d.mu.Unlock()
	}()
	d.logger.Info("request driver started")
	var wg sync.WaitGroup
	wg.Add(1)
	// Exits when ctx ends.
	go func() { defer wg.Done(); d.markQueueEpoch(ctx); d.compactLoop(ctx) }()
	if err := d.loop.Run(ctx); err != nil {
		d.logger.Error("request timers did not run", "error", err)
	}
	wg.Wait()
	d.logger.Info("request driver stopped")
}

// openRequests lists the open requests: the keys the loop examines when
// it starts and at each resync (with those it holds a deadline for).
func (d *Driver) openRequests() []int64 {
	var out []int64
	m := Machine{}
	d.cfg.FSM.Read(func(s *fsm.State) {
		for id, r := range s.Requests {
			if m.Open(r.State) {
				out = append(out, id)
			}
		}
	})
	return out
}

type reqView struct {
	open     bool // exists and is open
	gen      uint64
	deadline time.Time
	expires  time.Time
}

func (d *Driver) view(id int64) reqView {
	var v reqView
	d.cfg.FSM.Read(func(s *fsm.State) {
		if r, ok := s.Requests[id]; ok {
			v = reqView{open: Machine{}.Open(r.State), gen: r.Generation, deadline: r.StateDeadline, expires: r.Expires}
		}
	})
	return v
}

// reconcile proposes the expiry of an open request once it has passed,
// and its state timeout once its deadline has (once per state entry and
// deadline), and returns the nearer of the two still ahead. An expiry is
// proposed at every reconcile of a request still open past it: Apply
// refuses one stamped before expires (the leader's clock was stepped
// back), and the next change or resync must try again, or the request
// would keep its device until the next change of leader.
func (d *Driver) reconcile(ctx context.Context, id int64) time.Time {
	v := d.view(id)
	if !v.open {
		d.mu.Lock()
		delete(d.fired, id)
		d.mu.Unlock()
		return time.Time{}
	}
	var next time.Time
	if time.Now().Before(v.expires) {
		next = v.expires
	} else {
		current := func() bool { w := d.view(id); return w.open && w.expires.Equal(v.expires) }
		d.propose(ctx, id, current, fsm.CmdRequestExpire, &fsm.RequestExpire{ID: id})
	}
	if v.deadline.IsZero() {
		return next
	}
	d.mu.Lock()
	f, ok := d.fired[id]
	fired := ok && f.gen == v.gen && f.deadline.Equal(v.deadline)
	due := !fired && !time.Now().Before(v.deadline)
	if due {
		d.fired[id] = stateEntry{v.gen, v.deadline}
	}
	d.mu.Unlock()
	switch {
	case due:
		current := func() bool { w := d.view(id); return w.open && w.gen == v.gen }
		d.propose(ctx, id, current, fsm.CmdRequestTimeout, &fsm.RequestTimeout{ID: id, Generation: v.gen})
	case !fired && (next.IsZero() || v.deadline.Before(next)):
		next = v.deadline
	}
	return next
}

// propose sends a timer's command, retrying while it is still current and
// this node still runs the driver.
func (d *Driver) propose(ctx context.Context, id int64, current func() bool, t fsm.CommandType, cmd fsm.Command) {
	onFail := func(err error) {
		d.logger.Warn("request timer proposal failed; retrying", "request", id, "command", t.String(), "error", err)
	}
	if res, ok := retry.Propose(ctx, d.cfg.Propose, t, cmd, current, onFail); ok {
		if err := res.Error(); err != nil {
			d.logger.Debug("request timer refused", "request", id, "command", t.String(), "error", err)
		}
	}
}

// markQueueEpoch proposes fsm.QueueEpoch unless the state has one, so
// that a node from before the queue stops at it rather than diverge (see
// fsm.QueueEpoch). It retries until committed or ctx ends.
func (d *Driver) markQueueEpoch(ctx context.Context) {
	var epoch uint64
	d.cfg.FSM.Read(func(s *fsm.State) { epoch = s.Queue.Epoch })
	if epoch != 0 {
		return
	}
	current := func() bool {
		var e uint64
		d.cfg.FSM.Read(func(s *fsm.State) { e = s.Queue.Epoch })
		return e == 0
	}
	onFail := func(err error) { d.logger.Warn("queue epoch proposal failed; retrying", "error", err) }
	retry.Propose(ctx, d.cfg.Propose, fsm.CmdQueueEpoch, &fsm.QueueEpoch{}, current, onFail)
}

// compactLoop compacts at once and then every CompactInterval until ctx
// ends.
func (d *Driver) compactLoop(ctx context.Context) {
	t := time.NewTicker(d.cfg.CompactInterval)
	defer t.Stop()
	for ctx.Err() == nil {
		d.compact(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// compact deletes requests closed or failed more than KeepClosed after
// their expiry, if there are any.
func (d *Driver) compact(ctx context.Context) {
	before := time.Now().UTC().Add(-d.cfg.KeepClosed)
	m := Machine{}
	any := false
	d.cfg.FSM.Read(func(s *fsm.State) {
		for _, r := range s.Requests {
			if !m.Open(r.State) && r.Expires.Before(before) {
				any = true
				return
			}
		}
	})
	if !any {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	res, err := d.cfg.Propose(ctx, fsm.CmdRequestCompact, &fsm.RequestCompact{Before: before})
	if err == nil {
		err = res.Error()
	}
	if err != nil {
		d.logger.Warn("compacting old requests failed", "error", err)
		return
	}
	d.logger.Info("compacted old requests", "result", string(res.Value))
}
