package lifeguard

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/fsm"
	"github.com/mozpool/mozpool/internal/testlog"
)

// fakeHW records hardware calls; ping answers as told.
type fakeHW struct {
	mu    sync.Mutex
	calls []string
	ping  bool
}

func (h *fakeHW) rec(s string) { h.mu.Lock(); h.calls = append(h.calls, s); h.mu.Unlock() }
func (h *fakeHW) Calls() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.calls...)
}
func (h *fakeHW) PowerCycle(_ context.Context, d string) error { h.rec("power-cycle " + d); return nil }
func (h *fakeHW) SetPXE(_ context.Context, d, pc string) error {
	h.rec("set-pxe " + d + " " + pc)
	return nil
}
func (h *fakeHW) ClearPXE(_ context.Context, d string) error { h.rec("clear-pxe " + d); return nil }
func (h *fakeHW) Ping(_ context.Context, d string) (bool, error) {
	h.rec("ping " + d)
	return h.ping, nil
}
func (h *fakeHW) SUTVerify(_ context.Context, d string) error   { h.rec("sut " + d); return nil }
func (h *fakeHW) CheckSDCard(_ context.Context, d string) error { h.rec("sdcard " + d); return nil }

// execRig is an FSM with the lifeguard machine, a proposer that applies
// to it with wall-clock times, and an executor for server.
type execRig struct {
	f        *fsm.FSM
	hw       *fakeHW
	exec     *Executor
	mu       sync.Mutex
	idx      uint64
	caughtUp atomic.Bool
	// inContact is what the executor's InContact reports (true at
	// first); proposed lists every command proposed, in order.
	inContact atomic.Bool
	proposed  []fsm.Command
}

func newExecRig(t *testing.T, server string, requests ...fsm.RequestMachine) *execRig {
	r := &execRig{hw: &fakeHW{ping: true}}
	r.caughtUp.Store(true)
	r.inContact.Store(true)
	var rm fsm.RequestMachine
	if len(requests) > 0 {
		rm = requests[0]
	}
	r.f = fsm.New(fsm.Config{Devices: Machine{}, Requests: rm, Notify: func(n fsm.Notification) {
		if r.exec != nil {
			r.exec.Notify(n)
		}
	}})
	// Real time, scaled: a 120 s timeout lasts 120 ms.
	r.propose(context.Background(), fsm.CmdSetTimeScale, &fsm.SetTimeScale{TimeScale: 0.001})
	res, _ := r.propose(context.Background(), fsm.CmdInventorySync, &fsm.InventorySync{Inventory: rigInventory(), ShipIt: true})
	require.NoError(t, res.Error())
	cfg := DefaultExecutorConfig()
	cfg.Server, cfg.FSM, cfg.Hardware, cfg.Propose, cfg.Logger = server, r.f, r.hw, r.propose, testlog.New(t)
	cfg.MinActionTime, cfg.ResyncInterval = time.Second, 100*time.Millisecond
	cfg.CaughtUp = r.caughtUp.Load
	cfg.InContact = r.inContact.Load
	var err error
	r.exec, err = NewExecutor(cfg)
	require.NoError(t, err)
	return r
}

func (r *execRig) propose(_ context.Context, t fsm.CommandType, cmd fsm.Command) (fsm.Result, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.idx++
	r.proposed = append(r.proposed, cmd)
	if cmd.Head().At.IsZero() {
		cmd.Head().At = time.Now().UTC()
	}
	b, err := fsm.Encode(t, cmd)
	if err != nil {
		return fsm.Result{}, err
	}
	return r.f.ApplyCommand(r.idx, b), nil
}

func (r *execRig) start(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.exec.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func (r *execRig) state(dev string) State {
	var s string
	r.f.Read(func(st *fsm.State) { s = st.Devices[dev].State })
	return State(s)
}

func (r *execRig) force(t *testing.T, dev string, to State) {
	res, _ := r.propose(context.Background(), fsm.CmdDeviceStateChange, &fsm.DeviceStateChange{Device: dev, From: string(r.state(dev)), To: string(to)})
	require.NoError(t, res.Error())
}

func TestExecutor_RebootFlowWithTimersAndResults(t *testing.T) {
	r := newExecRig(t, rigServer)
	r.force(t, pandaA, StateLockedOut)
	r.force(t, pandaB, StateLockedOut)
	r.force(t, pandaNoRelay, StateLockedOut)
	r.start(t)

	// please_power_cycle: the executor clears the PXE file and cycles the
	// relay, proposes power_cycle_ok for that entry; the 120 s (scaled)
	// timer moves it to pinging; the ping result completes it.
	r.force(t, pandaA, StateReady)
	res, _ := r.propose(context.Background(), fsm.CmdDeviceEvent, &fsm.DeviceEvent{Device: pandaA, Event: string(EventPleasePowerCycle)})
	require.NoError(t, res.Error())
	require.Eventually(t, func() bool { return r.state(pandaA) == StateReady }, 10*time.Second, 5*time.Millisecond)
	calls := r.hw.Calls()
	require.Contains(t, calls, "clear-pxe "+pandaA)
	require.Contains(t, calls, "power-cycle "+pandaA)
	require.Contains(t, calls, "ping "+pandaA)
}

func TestExecutor_OnlyOwnDevices(t *testing.T) {
	r := newExecRig(t, "some-other-server")
	r.start(t)
	r.force(t, pandaA, StateReady)
	res, _ := r.propose(context.Background(), fsm.CmdDeviceEvent, &fsm.DeviceEvent{Device: pandaA, Event: string(EventPleasePowerCycle)})
	require.NoError(t, res.Error())
	require.Never(t, func() bool { return len(r.hw.Calls()) > 0 }, 300*time.Millisecond, 10*time.Millisecond,
		"the executor acted on a device of another imaging server")
	require.Equal(t, StatePCPowerCycling, r.state(pandaA), "no one owns it here: it waits")
}

func TestExecutor_WaitsUntilCaughtUp(t *testing.T) {
	r := newExecRig(t, rigServer)
	r.force(t, pandaA, StateLockedOut)
	r.force(t, pandaB, StateLockedOut)
	r.force(t, pandaNoRelay, StateLockedOut)
	r.caughtUp.Store(false)
	r.start(t)
	r.force(t, pandaA, StatePCPowerCycling) // history being replayed
	require.Never(t, func() bool { return len(r.hw.Calls()) > 0 }, 300*time.Millisecond, 10*time.Millisecond,
		"acted before the state caught up")
	r.caughtUp.Store(true)
	require.Eventually(t, func() bool { return len(r.hw.Calls()) > 0 }, 5*time.Second, 10*time.Millisecond)
}

// holder is a request machine (package requests imports this one) that
// claims the requested device on creation, has it imaged, and holds it.
type holder struct{}

var _ fsm.RequestMachine = holder{}

func (holder) Initial() (string, time.Duration) { return "holding", noTimeout }
func (holder) Start(m *fsm.RequestTx) error {
	q := m.Request()
	if err := m.Claim(q.RequestedDevice); err != nil {
		return err
	}
	return m.SendDeviceEvent(q.RequestedDevice, string(EventPleaseImage), pleaseImageArgs(q.Image, q.BootConfig))
}
func (holder) Event(*fsm.RequestTx, string, fsm.RequestEventArgs) error { return fsm.ErrIgnored }
func (holder) Timeout(*fsm.RequestTx)                                   {}
func (holder) Expire(*fsm.RequestTx) error                              { return fsm.ErrIgnored }
func (holder) DeviceFinished(*fsm.RequestTx, string)                    {}
func (holder) Assign(*fsm.RequestTx, string) bool                       { return false }
func (holder) GiveUp(*fsm.RequestTx, bool)                              {}
func (holder) Known(state string) bool                                  { return state == "holding" }
func (holder) Open(string) bool                                         { return true }

// A ready board held by a request is not
// health-checked (the request's user owns it).
func TestExecutor_NoHealthCheckWhileClaimed(t *testing.T) {
	r := newExecRig(t, rigServer, holder{})
	r.force(t, pandaB, StateLockedOut)
	r.force(t, pandaNoRelay, StateLockedOut)
	r.force(t, pandaA, StateReady)
	r.start(t)
	count := func(prefix string) int {
		n := 0
		for _, c := range r.hw.Calls() {
			if strings.HasPrefix(c, prefix) {
				n++
			}
		}
		return n
	}
	// The unclaimed ready board is health-checked (its image, if any,
	// has a SUT agent or not: either check counts).
	require.Eventually(t, func() bool { return count("sut ")+count("ping ") > 0 }, 5*time.Second, 5*time.Millisecond)

	// A request claims it and images it; the board reports its steps.
	res, _ := r.propose(context.Background(), fsm.CmdRequestCreate, &fsm.RequestCreate{
		RequestedDevice: pandaA, Assignee: "ci", Expires: time.Now().Add(time.Hour).UTC(),
		Image: "b2g", BootConfig: b2gBootConfig, Server: rigServer,
	})
	require.NoError(t, res.Error())
	require.Eventually(t, func() bool { return r.state(pandaA) == StatePXEBooting }, 5*time.Second, 5*time.Millisecond)
	for _, ev := range []Event{EventMobileInitStarted, EventB2GDownloading, EventB2GExtracting, EventB2GRebooting} {
		res, _ := r.propose(context.Background(), fsm.CmdDeviceEvent, &fsm.DeviceEvent{Device: pandaA, Event: string(ev)})
		require.NoError(t, res.Error())
	}
	require.Eventually(t, func() bool { return r.state(pandaA) == StateReady }, 5*time.Second, 5*time.Millisecond)
	checks := count("sut ") + count("ping ")
	// Several ready timeouts (600 s scaled to 0.6 s) pass: no check.
	require.Never(t, func() bool { return count("sut ")+count("ping ") > checks }, 2*time.Second, 20*time.Millisecond,
		"a claimed ready board was health-checked")
	var held int64
	r.f.Read(func(s *fsm.State) { held = s.Devices[pandaA].RequestID })
	require.NotZero(t, held)
}

// lateHW fails the test's check if the executor touches the hardware after
// stopped is set; its pings of odd-numbered boards hang until the action's
// context ends, so that actions are in flight when Run is stopped.
type lateHW struct {
	*fakeHW
	stopped *atomic.Bool
	late    *atomic.Int32
}

func (h lateHW) check() {
	if h.stopped.Load() {
		h.late.Add(1)
	}
}

func (h lateHW) PowerCycle(ctx context.Context, d string) error {
	h.check()
	return h.fakeHW.PowerCycle(ctx, d)
}
func (h lateHW) SetPXE(ctx context.Context, d, pc string) error {
	h.check()
	return h.fakeHW.SetPXE(ctx, d, pc)
}
func (h lateHW) ClearPXE(ctx context.Context, d string) error {
	h.check()
	return h.fakeHW.ClearPXE(ctx, d)
}
func (h lateHW) Ping(ctx context.Context, d string) (bool, error) {
	h.check()
	if d[len(d)-1]%2 == 1 {
		<-ctx.Done()
		return false, ctx.Err()
	}
	return h.fakeHW.Ping(ctx, d)
}
func (h lateHW) SUTVerify(ctx context.Context, d string) error {
	h.check()
	return h.fakeHW.SUTVerify(ctx, d)
}
func (h lateHW) CheckSDCard(ctx context.Context, d string) error {
	h.check()
	return h.fakeHW.CheckSDCard(ctx, d)
}

// Stopping the executor while timers fall due and actions run: Run returns
// only when they have, and nothing touches the hardware or proposes after
// that. (Timers used to start proposals from their own goroutines, with a
// WaitGroup.Add that could follow Run's Wait; run this with -race.)
func TestExecutor_NothingAfterRunReturns(t *testing.T) {
	for i := range 3 {
		r := newExecRig(t, rigServer)
		inv := rigInventory()
		for j := range 40 {
			name := fmt.Sprintf("panda-%04d", 100+j)
			inv.Devices = append(inv.Devices, fsm.InventoryDevice{
				Name: name, FQDN: name + ".lab", InventoryID: int64(1000 + j), MAC: fmt.Sprintf("00:11:22:33:55:%02x", j),
				ImagingServer: rigServer, RelayInfo: fmt.Sprintf("relay-2.lab:bank1:relay%d", j+1),
				HardwareType: pandaType, HardwareModel: pandaModel,
			})
		}
		res, _ := r.propose(context.Background(), fsm.CmdInventorySync, &fsm.InventorySync{Inventory: inv, ShipIt: true})
		require.NoError(t, res.Error())
		// Timeouts of 0.01 % (a ready board is checked every 60 ms).
		res, _ = r.propose(context.Background(), fsm.CmdSetTimeScale, &fsm.SetTimeScale{TimeScale: 0.0001})
		require.NoError(t, res.Error())

		var stopped atomic.Bool
		var late, proposals atomic.Int32
		cfg := r.exec.cfg
		cfg.Hardware = lateHW{fakeHW: r.hw, stopped: &stopped, late: &late}
		cfg.Propose = func(ctx context.Context, typ fsm.CommandType, cmd fsm.Command) (fsm.Result, error) {
			if stopped.Load() {
				late.Add(1)
			}
			proposals.Add(1)
			return r.propose(ctx, typ, cmd)
		}
		cfg.MinActionTime = 5 * time.Millisecond
		exec, err := NewExecutor(cfg)
		require.NoError(t, err)
		r.exec = exec

		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		// Exits when ctx is cancelled below.
		go func() { done <- exec.Run(ctx) }()
		want := int32(200 * (i + 1))
		require.Eventually(t, func() bool { return proposals.Load() >= want }, 10*time.Second, time.Millisecond)
		cancel()
		require.NoError(t, <-done)
		stopped.Store(true)
		require.Never(t, func() bool { return late.Load() > 0 }, 100*time.Millisecond, time.Millisecond,
			"iteration %d: the executor acted after Run returned", i)
	}
}

// holdHW holds the first power cycle of one board until released.
type holdHW struct {
	*fakeHW
	device  string
	cycles  atomic.Int32
	release chan struct{}
}

func (h *holdHW) PowerCycle(ctx context.Context, d string) error {
	if d == h.device && h.cycles.Add(1) == 1 {
		<-h.release
	}
	return h.fakeHW.PowerCycle(ctx, d)
}

// The action of a new state entry does not wait for that of an older entry
// of the same board, which may run until its own deadline or longer.
func TestExecutor_NewEntryDoesNotWaitForOldAction(t *testing.T) {
	r := newExecRig(t, rigServer)
	for _, d := range []string{pandaB, pandaNoRelay, "panda-0003"} {
		r.force(t, d, "locked_out")
	}
	r.force(t, pandaA, "ready")
	hw := &holdHW{fakeHW: r.hw, device: pandaA, release: make(chan struct{})}
	cfg := r.exec.cfg
	cfg.Hardware = hw
	exec, err := NewExecutor(cfg)
	require.NoError(t, err)
	r.exec = exec
	r.start(t)
	t.Cleanup(func() { close(hw.release) }) // runs before the executor stops

	// The first cycle hangs; pc_power_cycling times out (60 ms scaled) and
	// is entered again, and that entry cycles the board.
	res, _ := r.propose(context.Background(), fsm.CmdDeviceEvent, &fsm.DeviceEvent{Device: pandaA, Event: "please_power_cycle"})
	require.NoError(t, res.Error())
	require.Eventually(t, func() bool { return hw.cycles.Load() >= 2 }, 5*time.Second, time.Millisecond,
		"the second entry's power cycle waited for the first")
	require.Eventually(t, func() bool { return r.state(pandaA) == "ready" }, 10*time.Second, 5*time.Millisecond)
}

// sutLateHW's SUT agent answers only from its third connection.
type sutLateHW struct {
	*fakeHW
	tries atomic.Int32
}

func (h *sutLateHW) SUTVerify(ctx context.Context, d string) error {
	if h.tries.Add(1) < 3 {
		h.rec("sut-refused " + d)
		return fmt.Errorf("connect: connection refused")
	}
	return h.fakeHW.SUTVerify(ctx, d)
}

// An agent that comes up while the board finishes its reboot is found
// within the same entry of sut_verifying: the executor connects again a
// few times over the state's timeout instead of waiting it out.
func TestExecutor_SUTVerifyTriesAgainWithinTheEntry(t *testing.T) {
	r := newExecRig(t, rigServer)
	for _, d := range []string{pandaB, pandaNoRelay, "panda-0003"} {
		r.force(t, d, StateLockedOut)
	}
	// sut_verifying's 45 s last 4.5 s: an attempt every 1.1 s.
	res, _ := r.propose(context.Background(), fsm.CmdSetTimeScale, &fsm.SetTimeScale{TimeScale: 0.1})
	require.NoError(t, res.Error())
	hw := &sutLateHW{fakeHW: r.hw}
	cfg := r.exec.cfg
	cfg.Hardware = hw
	exec, err := NewExecutor(cfg)
	require.NoError(t, err)
	r.exec = exec
	r.force(t, pandaA, StateSUTVerifying)
	r.start(t)

	require.Eventually(t, func() bool { return r.state(pandaA) == StateReady }, 20*time.Second, 5*time.Millisecond)
	require.Equal(t, int32(3), hw.tries.Load())
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.proposed {
		if to, ok := c.(*fsm.DeviceTimeout); ok && to.Device == pandaA {
			t.Fatalf("sut_verifying timed out (%+v): the agent was not tried again within the entry", to)
		}
	}
}
