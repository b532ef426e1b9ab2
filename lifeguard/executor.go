package lifeguard

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mozpool/mozpool/bmm/relay"
	"github.com/mozpool/mozpool/fsm"
	"github.com/mozpool/mozpool/internal/reconcile"
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
	// Concurrency bounds the hardware actions running at once (power
	// cycles aside: their relay boards run one at a time), and
	// separately the timeout proposals. Default 32.
	Concurrency int
	// MinActionTime is the least time an action gets even when its state's
	// (scaled) deadline is nearer. Default 2 s.
	MinActionTime time.Duration
	// RelayOpTime is how long a relay operation may run, once it has left
	// its relay board's queue, before the executor gives up on it: relay
	// boards run in real time whatever the time scale, so a running power
	// cycle is not bounded by its state's (scaled) timeout. The relay
	// driver bounds its operations itself (relay.Config.OpTimeout, 30 s);
	// this is the safety net above it. Default 60 s.
	RelayOpTime time.Duration
	// ResyncInterval is how often every owned device is re-examined, as a
	// safety net for missed notifications and snapshot restores. Default 10 s.
	ResyncInterval time.Duration
	// CaughtUp, if set, reports whether the local state has caught up
	// with the cluster. The executor acts on nothing before it has: a
	// restarting node replays its log, and the states it passes through
	// on the way are history, not work to do.
	CaughtUp func() bool
	// InContact, if set, reports whether this node is in contact with the
	// cluster now (it leads, or has heard from the leader lately). While
	// it is not, the executor starts no action and no relay operation: a
	// node cut off from the others may have lost its racks to a standby
	// without knowing it (docs/design.md#standby-imaging-servers). The
	// contact window must be shorter than the takeover time.
	InContact func() bool
	// Logger is the parent logger. Default: null logger.
	Logger hclog.Logger
}

// DefaultExecutorConfig returns the defaults documented on ExecutorConfig.
func DefaultExecutorConfig() ExecutorConfig {
	return ExecutorConfig{Concurrency: 32, MinActionTime: 2 * time.Second, RelayOpTime: time.Minute, ResyncInterval: 10 * time.Second}
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
	case c.ResyncInterval <= 0 || c.MinActionTime <= 0 || c.RelayOpTime <= 0:
		return errors.New("lifeguard: resync interval, min action time and relay operation time must be positive")
	}
	return nil
}

// Executor performs the entry actions and drives the timers of the devices
// this node owns. It runs two reconcile loops (internal/reconcile): the
// action loop looks at each changed device and runs the entry action of
// each new state entry; the timer loop, keyed by device name, proposes the
// timeout of each entry whose deadline has passed. They are separate so
// that slow hardware actions never hold back timeouts.
type Executor struct {
	cfg     ExecutorConfig
	logger  hclog.Logger
	actions *reconcile.Loop[actionKey]
	timers  *reconcile.Loop[string]

	mu sync.Mutex
	// acted is, per owned device, the generation last looked at (whose
	// entry action, if any, has been queued); fired the state entry whose
	// timeout has been proposed. A device is forgotten when it is no
	// longer owned.
	acted map[string]uint64
	fired map[string]stateEntry
	// running is, per device, the state entry whose action runs and how
	// to cancel it: a newer entry cancels it, as its result would be
	// dropped.
	running map[string]runningAction
	// held is, per device, the generation whose relay operation waits for
	// its relay board, or has started and its power_cycle_started is
	// being proposed: the entry's timeout is not proposed meanwhile
	// (docs/design.md#relay-queue).
	held map[string]uint64
	// bg tracks the relay actions, which run beside the workers, and the
	// power_cycle_started proposals.
	bg sync.WaitGroup
}

// contactRetry is how soon an entry is looked at again when this node was
// out of contact with the cluster.
const contactRetry = 100 * time.Millisecond

// runningAction is the action of one state entry, running.
type runningAction struct {
	gen    uint64
	cancel context.CancelFunc
}

// actionKey is a key of the action loop: a device to look at, or (entry)
// one state entry of it, whose action is to run. Entries are keys of their
// own so that the action of a new entry never waits for that of an older
// one, which runs until its own deadline (at least MinActionTime): the
// older one's result is dropped, as its generation has passed.
type actionKey struct {
	device string
	gen    uint64
	entry  bool
}

// stateEntry is one entry of a device into a state, with its deadline.
type stateEntry struct {
	gen      uint64
	deadline time.Time
}

// NewExecutor returns an Executor; Run starts it.
func NewExecutor(cfg ExecutorConfig) (*Executor, error) {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	e := &Executor{
		cfg:     cfg,
		logger:  cfg.Logger.Named("lifeguard"),
		acted:   map[string]uint64{},
		fired:   map[string]stateEntry{},
		running: map[string]runningAction{},
		held:    map[string]uint64{},
	}
	var err error
	e.actions, err = reconcile.New(reconcile.Config[actionKey]{Reconcile: e.reconcileAction,
		Keys: func() []actionKey { return devicesOnly(ownedAndTracked(e, e.acted)) }, Workers: cfg.Concurrency,
		Resync: cfg.ResyncInterval})
	if err != nil {
		return nil, err
	}
	e.timers, err = reconcile.New(reconcile.Config[string]{Reconcile: e.reconcileTimer,
		Keys: func() []string { return ownedAndTracked(e, e.fired) }, Workers: cfg.Concurrency, Resync: cfg.ResyncInterval})
	if err != nil {
		return nil, err
	}
	return e, nil
}

// Notify tells the executor which devices an Apply changed. It never
// blocks: it marks them in both loops. Call it from fsm.Config.Notify.
func (e *Executor) Notify(n fsm.Notification) {
	if len(n.Devices) == 0 {
		return
	}
	e.actions.Mark(devicesOnly(n.Devices)...)
	e.timers.Mark(n.Devices...)
}

// devicesOnly returns the action loop's keys for looking at devices.
func devicesOnly(names []string) []actionKey {
	keys := make([]actionKey, len(names))
	for i, name := range names {
		keys[i] = actionKey{device: name}
	}
	return keys
}

// ownedAndTracked lists the devices a loop examines when it starts and at
// each resync: those this node owns, and those tracked in m (which may have
// changed owner or gone).
func ownedAndTracked[V any](e *Executor, m map[string]V) []string {
	var out []string
	e.cfg.FSM.Read(func(s *fsm.State) {
		for name, d := range s.Devices {
			if d.ImagingServer == e.cfg.Server {
				out = append(out, name)
			}
		}
	})
	e.mu.Lock()
	for name := range m {
		out = append(out, name)
	}
	e.mu.Unlock()
	return out
}

// Run waits until the local state has caught up, then examines every owned
// device (so a restarted node rebuilds its timers and resumes pending
// actions from the replicated state) and reacts to notifications, timers
// and resyncs until ctx ends. It returns once every action and proposal it
// started has returned.
func (e *Executor) Run(ctx context.Context) error {
	if !e.waitCaughtUp(ctx) {
		return nil
	}
	var wg sync.WaitGroup
	var timersErr error
	wg.Add(1)
	// Exits when ctx ends and the timer loop's workers have returned.
	go func() { defer wg.Done(); timersErr = e.timers.Run(ctx) }()
	err := e.actions.Run(ctx)
	wg.Wait()
	e.bg.Wait()
	return errors.Join(err, timersErr)
}

// waitCaughtUp waits until the local state has caught up with the cluster
// (if the config can tell). It returns false if ctx ends first.
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
	e.logger.Info("caught up; acting on this server's devices")
	return true
}

// view is a device as the executor needs it, read under the FSM lock.
type view struct {
	name, state string
	gen         uint64
	// rackGen is the generation of the device's rack ownership (0 for a
	// device in no rack) under which this node acts on it.
	rackGen   uint64
	entered   time.Time
	deadline  time.Time
	owned     bool
	claimed   bool
	imageSUT  bool
	pxeConfig string // for the next image
}

// view reads one device (owned is false if it is gone).
func (e *Executor) view(name string) view {
	v := view{name: name}
	e.cfg.FSM.Read(func(s *fsm.State) {
		d, ok := s.Devices[name]
		if !ok {
			return
		}
		v.state, v.gen, v.entered, v.deadline = d.State, d.Generation, d.StateEntered, d.StateDeadline
		v.rackGen, v.owned = s.OwnerGeneration(name, e.cfg.Server)
		v.claimed = d.RequestID != 0
		if img, ok := s.Images[d.Image]; ok {
			v.imageSUT = img.HasSUTAgent
		}
		v.pxeConfig = s.PXEConfigFor(d.NextImage, d.HardwareType)
	})
	return v
}

// reconcileAction runs on a worker of the action loop. For a device, it
// marks the entry key of the device's current state entry, once per entry
// (an owned device seen for the first time counts as a new entry). For an
// entry, it runs the entry's action, unless the entry has passed while it
// was queued, and proposes its result.
func (e *Executor) reconcileAction(ctx context.Context, k actionKey) time.Time {
	v := e.view(k.device)
	if k.entry {
		switch {
		case !v.owned || v.gen != k.gen:
		case !e.inContact():
			// Cut off: the entry is looked at again shortly (contact
			// usually returns with the next heartbeat).
			e.logger.Warn("not in contact with the cluster: not acting on the device", "device", v.name, "state", v.state)
			return time.Now().Add(contactRetry)
		case ActionFor(v.state).usesRelay():
			// A power cycle mostly waits for its relay board, which runs
			// one operation at a time anyway: it does not take one of the
			// workers, or a rack power-cycled at once would leave relay
			// boards idle while the workers wait in other boards' queues.
			e.bg.Add(1)
			// Exits when the action returns: its entry passes, its
			// operation ends, or ctx ends.
			go func() { defer e.bg.Done(); e.act(ctx, v) }()
		default:
			e.act(ctx, v)
		}
		return time.Time{}
	}
	e.mu.Lock()
	if r, ok := e.running[v.name]; ok && (!v.owned || r.gen < v.gen) {
		r.cancel() // its entry has passed: its result would be dropped
	}
	if !v.owned {
		delete(e.acted, v.name)
		e.mu.Unlock()
		return time.Time{}
	}
	gen, seen := e.acted[v.name]
	if seen && gen == v.gen {
		e.mu.Unlock()
		return time.Time{} // seen already
	}
	e.acted[v.name] = v.gen
	e.mu.Unlock()
	if !seen && State(v.state) == StatePXEBooting && v.pxeConfig != "" && e.inContact() {
		// A board this node has just taken over (or a restart finds)
		// net-boots now: its PXE file was written by the server that
		// power-cycled it, so it is written here too before the board
		// asks this node for it.
		if err := e.cfg.Hardware.SetPXE(ctx, v.name, v.pxeConfig); err != nil {
			e.logger.Warn("rebuilding the PXE file of a net-booting board failed", "device", v.name, "error", err)
		}
	}
	if ActionFor(v.state) != ActionNone {
		e.actions.Mark(actionKey{device: v.name, gen: v.gen, entry: true})
	}
	return time.Time{}
}

// act runs the entry action of v's state and proposes its result. Its
// context ends with the state's deadline (at least MinActionTime), when a
// newer entry of the device is seen, or when ctx ends. A relay operation
// that waits for its relay board is not bounded by the deadline while it
// waits: once it starts, it gets the state's whole timeout again, and
// power_cycle_started re-arms the deadline in the replicated state.
func (e *Executor) act(ctx context.Context, v view) {
	a := ActionFor(v.state)
	if a == ActionNone {
		return
	}
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	e.mu.Lock()
	if r, ok := e.running[v.name]; ok {
		if r.gen > v.gen {
			e.mu.Unlock()
			return // a newer entry's action runs already
		}
		r.cancel()
	}
	e.running[v.name] = runningAction{v.gen, cancel}
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		if r, ok := e.running[v.name]; ok && r.gen == v.gen {
			delete(e.running, v.name)
		}
		e.mu.Unlock()
	}()
	limit := newActionLimit(max(time.Until(v.deadline), e.cfg.MinActionTime), cancel)
	defer limit.stop()
	if a.usesRelay() {
		h := &relayHold{}
		actx = relay.WithNotice(actx, e.relayNotice(ctx, v, limit, h))
		// Runs after the result is proposed (defers run last in first).
		defer e.release(v.name, v.gen)
	}
	event, err := e.perform(actx, v, a)
	if err != nil {
		e.logger.Debug("action failed", "device", v.name, "state", v.state, "action", a.String(), "error", err)
	}
	if event != "" {
		e.propose(ctx, v, fsm.CmdDeviceEvent, &fsm.DeviceEvent{
			Device: v.name, Event: string(event), Generation: v.gen, Source: "bmm", Fence: e.fence(v),
		})
	}
}

// reconcileTimer proposes the timeout of the device's current state entry
// once its deadline has passed (once per entry and deadline), and otherwise
// returns the deadline, at which the timer loop runs it again.
func (e *Executor) reconcileTimer(ctx context.Context, name string) time.Time {
	v := e.view(name)
	e.mu.Lock()
	if !v.owned {
		delete(e.fired, name)
		e.mu.Unlock()
		return time.Time{}
	}
	if f, ok := e.fired[name]; v.deadline.IsZero() || ok && f.gen == v.gen && f.deadline.Equal(v.deadline) {
		e.mu.Unlock()
		return time.Time{} // no timer, or fired already
	}
	if time.Now().Before(v.deadline) {
		e.mu.Unlock()
		return v.deadline
	}
	if gen, ok := e.held[name]; ok && gen == v.gen {
		e.mu.Unlock()
		return time.Time{} // its relay operation waits for the board: see release
	}
	e.fired[name] = stateEntry{v.gen, v.deadline}
	e.mu.Unlock()
	e.propose(ctx, v, fsm.CmdDeviceTimeout, &fsm.DeviceTimeout{Device: name, Generation: v.gen, Deadline: v.deadline, Fence: e.fence(v)})
	return time.Time{}
}

// current reports whether v's entry is still the device's, and this node
// still owns it under the same rack ownership generation.
func (e *Executor) current(v view) bool {
	ok := false
	e.cfg.FSM.Read(func(s *fsm.State) {
		d, found := s.Devices[v.name]
		rackGen, owned := s.OwnerGeneration(v.name, e.cfg.Server)
		ok = found && d.Generation == v.gen && owned && rackGen == v.rackGen
	})
	return ok
}

// fence is what this node's proposals about v carry: the rack ownership
// it acts under.
func (e *Executor) fence(v view) fsm.Fence {
	return fsm.Fence{Server: e.cfg.Server, RackGeneration: v.rackGen}
}

// inContact reports whether this node may act on its devices now (see
// ExecutorConfig.InContact).
func (e *Executor) inContact() bool { return e.cfg.InContact == nil || e.cfg.InContact() }

// propose sends a generation-tagged command until it is committed, the
// entry is no longer current, or ctx ends.
func (e *Executor) propose(ctx context.Context, v view, t fsm.CommandType, cmd fsm.Command) {
	name := v.name
	current := func() bool { return e.current(v) }
	onFail := func(err error) {
		e.logger.Warn("proposal failed; retrying", "device", name, "command", t.String(), "error", err)
	}
	if res, ok := retry.Propose(ctx, e.cfg.Propose, t, cmd, current, onFail); ok {
		if err := res.Error(); err != nil {
			e.logger.Warn("proposal refused", "device", name, "command", t.String(), "error", err)
		}
	}
}

// sutVerifyTries is how many times sut_verifying's action connects to the
// SUT agent within one entry of the state, spread over its timeout.
const sutVerifyTries = 4

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
		// The agent comes up while the board finishes its reboot: an
		// agent not up yet is tried again a few times within the entry,
		// rather than only after the state's whole timeout.
		every := v.deadline.Sub(v.entered) / sutVerifyTries
		for attempt := 1; ; attempt++ {
			err := hw.SUTVerify(ctx, v.name)
			if err == nil {
				return EventSUTVerifyOK, nil
			}
			if attempt >= sutVerifyTries || every <= 0 || time.Until(v.deadline) < every {
				return "", err
			}
			t := time.NewTimer(every)
			select {
			case <-ctx.Done():
				t.Stop()
				return "", err
			case <-t.C:
			}
		}
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

// usesRelay reports whether the action power-cycles through a relay board.
func (a Action) usesRelay() bool {
	return a == ActionPowerCycle || a == ActionPXEPowerCycle || a == ActionRelayPowerCycle
}

// relayNotice follows the relay operation of v's entry through its relay
// board's queue. While the operation waits or runs, the entry is held: its
// action is bounded by limit only once it runs, for RelayOpTime, and its
// timeout is not proposed. When a waiting operation
// starts, power_cycle_started is proposed so that the replicated deadline
// counts from now; the hold ends when the operation has ended and its
// result is committed, and a power cycle that failed then times out from
// that deadline.
func (e *Executor) relayNotice(ctx context.Context, v view, limit *actionLimit, h *relayHold) relay.Notice {
	return relay.Notice{
		Queued: func() {
			h.mu.Lock()
			h.waited = true
			h.mu.Unlock()
			limit.stop()
			e.mu.Lock()
			e.held[v.name] = v.gen
			e.mu.Unlock()
			e.logger.Debug("relay board busy; the state's time counts from the start of the power cycle", "device", v.name, "state", v.state)
		},
		Proceed: func() bool {
			// The power cycle starts only while this node still owns the
			// board under the generation it was queued for, and is in
			// contact with the cluster.
			return e.current(v) && e.inContact()
		},
		Started: func() {
			h.mu.Lock()
			w := h.waited
			h.mu.Unlock()
			// Once it runs, the operation is bounded by RelayOpTime (and
			// the relay driver's own timeout), not by the state's
			// timeout: relay boards run in real time whatever the time
			// scale, and a state that timed out under a running power
			// cycle would queue another one behind it. The entry stays
			// held until the operation has ended and its result is
			// committed (act releases it).
			limit.reset(max(v.deadline.Sub(v.entered), e.cfg.RelayOpTime))
			e.mu.Lock()
			e.held[v.name] = v.gen
			e.mu.Unlock()
			if !w {
				return // started at once: the entry's deadline stands
			}
			e.bg.Add(1)
			// Exits when the event is committed, the entry has passed, or
			// ctx ends.
			go func() {
				defer e.bg.Done()
				e.propose(ctx, v, fsm.CmdDeviceEvent, &fsm.DeviceEvent{
					Device: v.name, Event: string(EventPowerCycleStarted), Generation: v.gen, Source: "bmm", Fence: e.fence(v),
				})
			}()
		},
	}
}

// relayHold is what relayNotice has seen of one relay operation.
type relayHold struct {
	mu     sync.Mutex
	waited bool
}

// release ends the hold of a device's entry, if it holds gen, and has the
// timer loop look at the device again.
func (e *Executor) release(name string, gen uint64) {
	e.mu.Lock()
	g, ok := e.held[name]
	if ok && g == gen {
		delete(e.held, name)
	}
	e.mu.Unlock()
	if ok && g == gen {
		e.timers.Mark(name)
	}
}

// actionLimit cancels an action when its time is up; the time can be
// stopped (while a relay operation waits for its board) and set again.
type actionLimit struct {
	mu     sync.Mutex
	t      *time.Timer
	cancel context.CancelFunc
}

func newActionLimit(d time.Duration, cancel context.CancelFunc) *actionLimit {
	return &actionLimit{t: time.AfterFunc(d, cancel), cancel: cancel}
}

func (l *actionLimit) stop() {
	l.mu.Lock()
	l.t.Stop()
	l.mu.Unlock()
}

// reset gives the action d from now.
func (l *actionLimit) reset(d time.Duration) {
	l.mu.Lock()
	l.t.Stop()
	l.t = time.AfterFunc(d, l.cancel)
	l.mu.Unlock()
}
