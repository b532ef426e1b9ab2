package requests

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mozpool/mozpool/fsm"
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
	// Logger is the parent logger. Default: null logger.
	Logger hclog.Logger
}

// DefaultDriverConfig returns the defaults documented on DriverConfig.
func DefaultDriverConfig() DriverConfig {
	return DriverConfig{KeepClosed: 7 * 24 * time.Hour, CompactInterval: time.Hour, ResyncInterval: 10 * time.Second}
}

// Validate reports the first problem.
func (c *DriverConfig) Validate() error {
	if c.FSM == nil || c.Propose == nil {
		return errors.New("requests: fsm and propose are required")
	}
	if c.KeepClosed <= 0 || c.CompactInterval <= 0 || c.ResyncInterval <= 0 {
		return errors.New("requests: keep-closed, compact and resync intervals must be positive")
	}
	return nil
}

// Driver fires request timers on the leader. Run is a cluster leader task:
// it runs for one term of leadership.
type Driver struct {
	cfg    DriverConfig
	logger hclog.Logger

	mu      sync.Mutex
	running bool
	ctx     context.Context
	dirty   map[int64]bool
	all     bool
	timers  map[int64]*reqTimers
	wake    chan struct{}
	wg      sync.WaitGroup
}

type reqTimers struct {
	gen      uint64
	deadline time.Time
	expires  time.Time
	state    *time.Timer
	expiry   *time.Timer
}

func (t *reqTimers) stop() {
	if t.state != nil {
		t.state.Stop()
	}
	if t.expiry != nil {
		t.expiry.Stop()
	}
}

// NewDriver returns a Driver.
func NewDriver(cfg DriverConfig) (*Driver, error) {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Driver{cfg: cfg, logger: cfg.Logger.Named("requests"), dirty: map[int64]bool{},
		timers: map[int64]*reqTimers{}, wake: make(chan struct{}, 1)}, nil
}

// Notify marks the requests an Apply changed. It never blocks; call it from
// fsm.Config.Notify on every node (it does nothing unless Run is running).
func (d *Driver) Notify(n fsm.Notification) {
	if len(n.Requests) == 0 {
		return
	}
	d.mu.Lock()
	if !d.running {
		d.mu.Unlock()
		return
	}
	for _, id := range n.Requests {
		d.dirty[id] = true
	}
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run drives request timers until ctx ends (the end of this node's term as
// leader). It starts by examining every request, so a new leader rebuilds
// all timers from the replicated state.
func (d *Driver) Run(ctx context.Context) {
	d.mu.Lock()
	d.running, d.ctx, d.all = true, ctx, true
	d.mu.Unlock()
	d.logger.Info("request driver started")
	resync := time.NewTicker(d.cfg.ResyncInterval)
	defer resync.Stop()
	compact := time.NewTicker(d.cfg.CompactInterval)
	defer compact.Stop()
	d.compact()
	for {
		d.reconcile()
		select {
		case <-ctx.Done():
			d.mu.Lock()
			d.running = false
			for id, t := range d.timers {
				t.stop()
				delete(d.timers, id)
			}
			d.dirty = map[int64]bool{}
			d.mu.Unlock()
			d.wg.Wait()
			d.logger.Info("request driver stopped")
			return
		case <-d.wake:
		case <-resync.C:
			d.mu.Lock()
			d.all = true
			d.mu.Unlock()
		case <-compact.C:
			d.compact()
		}
	}
}

type reqView struct {
	id       int64
	exists   bool
	open     bool
	gen      uint64
	deadline time.Time
	expires  time.Time
}

func (d *Driver) reconcile() {
	d.mu.Lock()
	ids := make([]int64, 0, len(d.dirty))
	for id := range d.dirty {
		ids = append(ids, id)
	}
	all := d.all
	d.dirty, d.all = map[int64]bool{}, false
	d.mu.Unlock()

	var views []reqView
	m := Machine{}
	d.cfg.FSM.Read(func(s *fsm.State) {
		read := func(id int64) {
			r, ok := s.Requests[id]
			if !ok {
				views = append(views, reqView{id: id})
				return
			}
			views = append(views, reqView{id: id, exists: true, open: m.Open(r.State), gen: r.Generation,
				deadline: r.StateDeadline, expires: r.Expires})
		}
		if all {
			for id := range s.Requests {
				read(id)
			}
			d.mu.Lock()
			for id := range d.timers {
				if _, ok := s.Requests[id]; !ok {
					views = append(views, reqView{id: id})
				}
			}
			d.mu.Unlock()
			return
		}
		for _, id := range ids {
			read(id)
		}
	})
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.running {
		return
	}
	for _, v := range views {
		t, known := d.timers[v.id]
		if !v.exists || !v.open {
			if known {
				t.stop()
				delete(d.timers, v.id)
			}
			continue
		}
		if !known {
			t = &reqTimers{}
			d.timers[v.id] = t
		}
		if !known || t.gen != v.gen || !t.deadline.Equal(v.deadline) {
			if t.state != nil {
				t.state.Stop()
				t.state = nil
			}
			t.gen, t.deadline = v.gen, v.deadline
			if !v.deadline.IsZero() {
				id, gen := v.id, v.gen
				t.state = time.AfterFunc(time.Until(v.deadline), func() {
					d.propose(id, func() bool { return d.currentGen(id, gen) }, fsm.CmdRequestTimeout, &fsm.RequestTimeout{ID: id, Generation: gen})
				})
			}
		}
		if !known || !t.expires.Equal(v.expires) {
			if t.expiry != nil {
				t.expiry.Stop()
			}
			t.expires = v.expires
			id, exp := v.id, v.expires
			t.expiry = time.AfterFunc(time.Until(exp), func() {
				d.propose(id, func() bool { return d.currentExpiry(id, exp) }, fsm.CmdRequestExpire, &fsm.RequestExpire{ID: id})
				d.expiryFired(id, exp)
			})
		}
	}
}

func (d *Driver) currentGen(id int64, gen uint64) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	t, ok := d.timers[id]
	return d.running && ok && t.gen == gen
}

// expiryFired forgets an expiry timer that has fired, so that the next
// reconcile of the request (a change, or the resync) arms it again if the
// request is still open: Apply refuses an expiry stamped before expires
// (the leader's clock was stepped back), and without this the request
// would keep its device until the next change of leader.
func (d *Driver) expiryFired(id int64, exp time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if t, ok := d.timers[id]; ok && t.expires.Equal(exp) {
		t.expires, t.expiry = time.Time{}, nil
	}
}

func (d *Driver) currentExpiry(id int64, exp time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	t, ok := d.timers[id]
	return d.running && ok && t.expires.Equal(exp)
}

// propose sends a timer's command, retrying while it is still current and
// this node still runs the driver.
func (d *Driver) propose(id int64, current func() bool, t fsm.CommandType, cmd fsm.Command) {
	d.mu.Lock()
	ctx := d.ctx
	if !d.running || ctx.Err() != nil {
		d.mu.Unlock()
		return
	}
	d.wg.Add(1)
	d.mu.Unlock()
	defer d.wg.Done()
	onFail := func(err error) {
		d.logger.Warn("request timer proposal failed; retrying", "request", id, "command", t.String(), "error", err)
	}
	if res, ok := retry.Propose(ctx, d.cfg.Propose, t, cmd, current, onFail); ok {
		if err := res.Error(); err != nil {
			d.logger.Debug("request timer refused", "request", id, "command", t.String(), "error", err)
		}
	}
}

// compact deletes requests closed or failed more than KeepClosed after
// their expiry, if there are any.
func (d *Driver) compact() {
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
	ctx, cancel := context.WithTimeout(d.ctx, 15*time.Second)
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
