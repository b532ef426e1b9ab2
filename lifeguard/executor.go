package lifeguard

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mozpool/mozpool/fsm"
	"github.com/mozpool/mozpool/internal/retry"
)

// Hardware is what the executor needs from the BMM layer (bmm.Controller).
// Every call takes a device name and acts on this node's own hardware.
type Hardware interface {
	PowerCycle(ctx context.Context, device string) error
	SetPXE(ctx context.Context, device, pxeConfig string) error
	ClearPXE(ctx context.Context, device string) error
	Ping(ctx context.Context, device string) (bool, error)
	SUTVerify(ctx context.Context, device string) error
	CheckSDCard(ctx context.Context, device string) error
}

// ExecutorConfig configures an Executor.
type ExecutorConfig struct {
	// Server is the imaging server this node serves; the executor acts
	// only on its devices. Required.
	Server string
	// FSM is the local replica. Required.
	FSM *fsm.FSM
	// Hardware performs the actions. Required.
	Hardware Hardware
	// Propose proposes a command through the cluster. Required.
	Propose func(ctx context.Context, t fsm.CommandType, cmd fsm.Command) (fsm.Result, error)
	// Concurrency bounds the hardware actions running at once. Default 32.
	Concurrency int
	// MinActionTime is the least time an action gets even when its state's
	// (scaled) deadline is nearer. Default 2 s.
	MinActionTime time.Duration
	// ResyncInterval is how often every owned device is re-examined, as a
	// safety net for missed notifications and snapshot restores. Default 10 s.
	ResyncInterval time.Duration
	// CaughtUp, if set, reports whether the local state has caught up
	// with the cluster. The executor acts on nothing before it has: a
	// restarting node replays its log, and the states it passes through
	// on the way are history, not work to do.
	CaughtUp func() bool
	// Logger is the parent logger. Default: null logger.
	Logger hclog.Logger
}

// DefaultExecutorConfig returns the defaults documented on ExecutorConfig.
func DefaultExecutorConfig() ExecutorConfig {
	return ExecutorConfig{Concurrency: 32, MinActionTime: 2 * time.Second, ResyncInterval: 10 * time.Second}
}

// Validate reports the first problem.
func (c *ExecutorConfig) Validate() error {
	switch {
	case c.Server == "":
		return errors.New("lifeguard: server name is required")
	case c.FSM == nil || c.Hardware == nil || c.Propose == nil:
		return errors.New("lifeguard: fsm, hardware and propose are required")
	case c.Concurrency < 1:
		return errors.New("lifeguard: concurrency must be at least 1")
	case c.ResyncInterval <= 0 || c.MinActionTime <= 0:
		return errors.New("lifeguard: resync interval and min action time must be positive")
	}
	return nil
}

// Executor performs the entry actions and drives the timers of the devices
// this node owns.
type Executor struct {
	cfg    ExecutorConfig
	logger hclog.Logger
	sem    chan struct{}

	mu      sync.Mutex
	dirty   map[string]bool
	all     bool // re-examine every device
	devices map[string]*tracked
	wake    chan struct{}

	ctx context.Context // set by Run; parent of every action and timer
	wg  sync.WaitGroup
}

// tracked is what the executor knows of one owned device.
type tracked struct {
	gen      uint64
	deadline time.Time
	timer    *time.Timer
}

// NewExecutor returns an Executor; Run starts it.
func NewExecutor(cfg ExecutorConfig) (*Executor, error) {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Executor{
		cfg:     cfg,
		logger:  cfg.Logger.Named("lifeguard"),
		sem:     make(chan struct{}, cfg.Concurrency),
		dirty:   map[string]bool{},
		all:     true,
		devices: map[string]*tracked{},
		wake:    make(chan struct{}, 1),
	}, nil
}

// Notify tells the executor which devices an Apply changed. It never
// blocks: it marks them and wakes Run. Call it from fsm.Config.Notify.
func (e *Executor) Notify(n fsm.Notification) {
	if len(n.Devices) == 0 {
		return
	}
	e.mu.Lock()
	for _, d := range n.Devices {
		e.dirty[d] = true
	}
	e.mu.Unlock()
	e.poke()
}

func (e *Executor) poke() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// Run examines every owned device (so a restarted node rebuilds its timers
// and resumes pending actions from the replicated state), then reacts to
// notifications until ctx ends. It stops every timer and waits for running
// actions before returning.
func (e *Executor) Run(ctx context.Context) error {
	e.ctx = ctx
	if !e.waitCaughtUp(ctx) {
		return nil
	}
	resync := time.NewTicker(e.cfg.ResyncInterval)
	defer resync.Stop()
	for {
		e.reconcileDirty()
		select {
		case <-ctx.Done():
			e.mu.Lock()
			for _, t := range e.devices {
				if t.timer != nil {
					t.timer.Stop()
				}
			}
			e.mu.Unlock()
			e.wg.Wait()
			return nil
		case <-e.wake:
		case <-resync.C:
			e.mu.Lock()
			e.all = true
			e.mu.Unlock()
		}
	}
}

// waitCaughtUp waits until the local state has caught up with the cluster
// (if the config can tell), then marks every device for examination. It
// returns false if ctx ends first.
func (e *Executor) waitCaughtUp(ctx context.Context) bool {
	if e.cfg.CaughtUp == nil || e.cfg.CaughtUp() {
		return true
	}
	e.logger.Info("waiting for the local state to catch up before acting on devices")
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for !e.cfg.CaughtUp() {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
	e.mu.Lock()
	e.all = true
	e.mu.Unlock()
	e.logger.Info("caught up; acting on this server's devices")
	return true
}

// view is a device as the executor needs it, read under the FSM lock.
type view struct {
	name, state string
	gen         uint64
	deadline    time.Time
	owned       bool
	claimed     bool
	imageSUT    bool
	pxeConfig   string // for the next image
}

func (e *Executor) reconcileDirty() {
	e.mu.Lock()
	names := make([]string, 0, len(e.dirty))
	for n := range e.dirty {
		names = append(names, n)
	}
	all := e.all
	e.dirty, e.all = map[string]bool{}, false
	e.mu.Unlock()

	var views []view
	e.cfg.FSM.Read(func(s *fsm.State) {
		read := func(name string) {
			d, ok := s.Devices[name]
			if !ok {
				views = append(views, view{name: name})
				return
			}
			v := view{name: name, state: d.State, gen: d.Generation, deadline: d.StateDeadline,
				owned: d.ImagingServer == e.cfg.Server, claimed: d.RequestID != 0}
			if img, ok := s.Images[d.Image]; ok {
				v.imageSUT = img.HasSUTAgent
			}
			v.pxeConfig = s.PXEConfigFor(d.NextImage, d.HardwareType)
			views = append(views, v)
		}
		if all {
			for name := range s.Devices {
				read(name)
			}
			// Devices tracked but gone from the state.
			e.mu.Lock()
			for name := range e.devices {
				if _, ok := s.Devices[name]; !ok {
					views = append(views, view{name: name})
				}
			}
			e.mu.Unlock()
			return
		}
		for _, name := range names {
			read(name)
		}
	})
	for _, v := range views {
		e.reconcile(v)
	}
}

// reconcile starts what a new state entry needs: its timer and its action.
func (e *Executor) reconcile(v view) {
	e.mu.Lock()
	defer e.mu.Unlock()
	t, known := e.devices[v.name]
	if !v.owned {
		if known {
			if t.timer != nil {
				t.timer.Stop()
			}
			delete(e.devices, v.name)
		}
		return
	}
	if !known {
		t = &tracked{}
		e.devices[v.name] = t
	}
	if known && t.gen == v.gen && t.deadline.Equal(v.deadline) {
		return
	}
	newEntry := !known || t.gen != v.gen
	t.gen, t.deadline = v.gen, v.deadline
	e.armTimerLocked(v.name, t)
	if newEntry {
		if a := ActionFor(v.state); a != ActionNone {
			e.startAction(v, a)
		}
	}
}

// armTimerLocked (re)arms the device's timer for its deadline; a deadline
// already past fires at once.
func (e *Executor) armTimerLocked(name string, t *tracked) {
	if t.timer != nil {
		t.timer.Stop()
		t.timer = nil
	}
	if t.deadline.IsZero() {
		return
	}
	gen := t.gen
	t.timer = time.AfterFunc(time.Until(t.deadline), func() { e.fire(name, gen) })
}

// current reports whether gen is still the device's tracked generation.
func (e *Executor) current(name string, gen uint64) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	t, ok := e.devices[name]
	return ok && t.gen == gen
}

// fire proposes the timeout of one state entry, retrying while the cluster
// has no leader and the entry is still current.
func (e *Executor) fire(name string, gen uint64) {
	if e.ctx.Err() != nil {
		return
	}
	e.wg.Add(1)
	defer e.wg.Done()
	e.propose(name, gen, fsm.CmdDeviceTimeout, &fsm.DeviceTimeout{Device: name, Generation: gen})
}

// propose sends a generation-tagged command until it is committed, the
// entry is no longer current, or the executor stops.
func (e *Executor) propose(name string, gen uint64, t fsm.CommandType, cmd fsm.Command) {
	current := func() bool { return e.current(name, gen) }
	onFail := func(err error) {
		e.logger.Warn("proposal failed; retrying", "device", name, "command", t.String(), "error", err)
	}
	if res, ok := retry.Propose(e.ctx, e.cfg.Propose, t, cmd, current, onFail); ok {
		if err := res.Error(); err != nil {
			e.logger.Warn("proposal refused", "device", name, "command", t.String(), "error", err)
		}
	}
}

// startAction runs the entry action of a state entry in the background.
func (e *Executor) startAction(v view, a Action) {
	if e.ctx == nil || e.ctx.Err() != nil {
		return
	}
	e.wg.Add(1)
	// Exits when the action returns; its context ends with the state's
	// deadline (at least MinActionTime) or when Run's ctx ends.
	go func() {
		defer e.wg.Done()
		select {
		case e.sem <- struct{}{}:
		case <-e.ctx.Done():
			return
		}
		defer func() { <-e.sem }()
		if !e.current(v.name, v.gen) {
			return // superseded while queued
		}
		limit := time.Until(v.deadline)
		if v.deadline.IsZero() || limit < e.cfg.MinActionTime {
			limit = max(limit, e.cfg.MinActionTime)
		}
		ctx, cancel := context.WithTimeout(e.ctx, limit)
		defer cancel()
		event, err := e.perform(ctx, v, a)
		if err != nil {
			e.logger.Debug("action failed", "device", v.name, "state", v.state, "action", a.String(), "error", err)
		}
		if event != "" {
			e.propose(v.name, v.gen, fsm.CmdDeviceEvent, &fsm.DeviceEvent{
				Device: v.name, Event: string(event), Generation: v.gen, Source: "bmm",
			})
		}
	}()
}

// perform runs one action and returns the event to propose ("" for none).
func (e *Executor) perform(ctx context.Context, v view, a Action) (Event, error) {
	hw := e.cfg.Hardware
	switch a {
	case ActionHealthCheck:
		if v.claimed {
			return "", nil // a request holds it: leave it alone
		}
		if v.imageSUT {
			if err := hw.SUTVerify(ctx, v.name); err != nil {
				return EventFailed, err
			}
			return "", nil
		}
		ok, err := hw.Ping(ctx, v.name)
		if err != nil || !ok {
			return EventFailed, err
		}
		return "", nil
	case ActionPowerCycle:
		if err := hw.ClearPXE(ctx, v.name); err != nil {
			e.logger.Warn("clearing the PXE file failed", "device", v.name, "error", err)
		}
		return okEvent(EventPowerCycleOK, hw.PowerCycle(ctx, v.name))
	case ActionPXEPowerCycle:
		if v.pxeConfig == "" {
			return "", fmt.Errorf("no PXE config for the next image")
		}
		if err := hw.SetPXE(ctx, v.name, v.pxeConfig); err != nil {
			return "", err // the state's timeout retries
		}
		return okEvent(EventPowerCycleOK, hw.PowerCycle(ctx, v.name))
	case ActionRelayPowerCycle:
		return okEvent(EventPowerCycleOK, hw.PowerCycle(ctx, v.name))
	case ActionPing:
		ok, err := hw.Ping(ctx, v.name)
		if err != nil || !ok {
			return "", err
		}
		return EventPingOK, nil
	case ActionClearPXE:
		return "", hw.ClearPXE(ctx, v.name)
	case ActionSUTVerify:
		return okEvent(EventSUTVerifyOK, hw.SUTVerify(ctx, v.name))
	case ActionCheckSDCard:
		if err := hw.CheckSDCard(ctx, v.name); err != nil {
			if ctx.Err() != nil {
				return "", err // out of time: the state's timeout decides
			}
			return EventSUTSDCardFailed, err
		}
		return EventSUTSDCardOK, nil
	}
	return "", nil
}

func okEvent(event Event, err error) (Event, error) {
	if err != nil {
		return "", err
	}
	return event, nil
}
