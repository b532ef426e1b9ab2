package bmm

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/bmm/relay"
	"github.com/mozpool/mozpool/fsm"
	"github.com/mozpool/mozpool/internal/testlog"
)

type fakeRelay struct {
	mu     sync.Mutex
	cycles []string
	fail   error
}

func (f *fakeRelay) PowerCycle(_ context.Context, ri relay.RelayInfo) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cycles = append(f.cycles, ri.String())
	return f.fail
}
func (f *fakeRelay) SetPower(context.Context, relay.RelayInfo, bool) error { return f.fail }
func (f *fakeRelay) TestComms(context.Context, string, int) error          { return f.fail }

type fakePXE struct{ set map[string]string }

func (f *fakePXE) Set(_ context.Context, mac, contents string) error {
	f.set[mac] = contents
	return nil
}
func (f *fakePXE) Clear(_ context.Context, mac string) error { delete(f.set, mac); return nil }

type fakePing struct{ up bool }

func (f fakePing) Ping(context.Context, string) (bool, error) { return f.up, nil }

type fakeSUT struct{ err error }

func (f fakeSUT) Verify(context.Context, string) error      { return f.err }
func (f fakeSUT) CheckSDCard(context.Context, string) error { return f.err }

type rig struct {
	f     *fsm.FSM
	c     *Controller
	relay *fakeRelay
	pxe   *fakePXE
	mu    sync.Mutex
	logs  []fsm.LogEntry
	props int
	// logGate is taken by every LogAppend proposal before it applies: a
	// test holding it keeps the log batcher in a proposal meanwhile.
	logGate sync.Mutex
}

func newRig(t *testing.T) *rig {
	r := &rig{relay: &fakeRelay{}, pxe: &fakePXE{set: map[string]string{}}}
	r.f = fsm.New(fsm.Config{Notify: func(n fsm.Notification) {
		r.mu.Lock()
		r.logs = append(r.logs, n.Logs...)
		r.mu.Unlock()
	}})
	var idx uint64
	var imu sync.Mutex
	propose := func(_ context.Context, t fsm.CommandType, cmd fsm.Command) (fsm.Result, error) {
		if t == fsm.CmdLogAppend {
			r.logGate.Lock()
			r.logGate.Unlock()
		}
		imu.Lock()
		defer imu.Unlock()
		idx++
		if t == fsm.CmdLogAppend {
			r.mu.Lock()
			r.props++
			r.mu.Unlock()
		}
		cmd.Head().At = time.Now().UTC()
		b, err := fsm.Encode(t, cmd)
		if err != nil {
			return fsm.Result{}, err
		}
		return r.f.ApplyCommand(idx, b), nil
	}
	dev := func(n int64, name, server, relayInfo string) fsm.InventoryDevice {
		return fsm.InventoryDevice{Name: name, FQDN: name + ".lab", InventoryID: n, MAC: "02:00:00:00:00:0" + string(rune('0'+n)),
			ImagingServer: server, RelayInfo: relayInfo, HardwareType: "panda", HardwareModel: "b2", IPAddress: "127.9.9." + string(rune('0'+n))}
	}
	res, err := propose(context.Background(), fsm.CmdInventorySync, &fsm.InventorySync{ShipIt: true, Inventory: fsm.Inventory{
		ImagingServers: []fsm.InventoryServer{{Name: "me"}, {Name: "other"}},
		HardwareTypes:  []fsm.InventoryHardwareType{{Type: "panda", Model: "b2"}},
		PXEConfigs:     []fsm.InventoryPXEConfig{{Name: "pxe1", Contents: "boot %IPADDRESS%"}},
		Devices: []fsm.InventoryDevice{
			dev(1, "mine", "me", "127.9.0.1:2101:bank1:relay1"),
			dev(2, "norelay", "me", ""),
			dev(3, "theirs", "other", "127.9.0.2:2101:bank1:relay1"),
		},
	}})
	require.NoError(t, err)
	require.NoError(t, res.Error())
	r.c, err = New(Config{Server: "me", FSM: r.f, Propose: propose, Relay: r.relay, PXE: r.pxe,
		Pinger: fakePing{up: true}, SUT: fakeSUT{}, Logger: testlog.New(t)})
	require.NoError(t, err)
	return r
}

func TestController_OwnershipAndErrors(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	require.ErrorIs(t, r.c.PowerCycle(ctx, "theirs"), ErrNotOwner)
	_, err := r.c.Ping(ctx, "theirs")
	require.ErrorIs(t, err, ErrNotOwner)
	require.ErrorIs(t, r.c.StartPowerCycle("norelay"), ErrNoPowerControl)
	require.ErrorIs(t, r.c.PowerCycle(ctx, "nosuch"), fsm.ErrUnknownDevice)
	require.ErrorIs(t, r.c.SetPXE(ctx, "mine", "nosuch"), fsm.ErrUnknownPXEConfig)
	_, err = r.c.TestRelayBoard(ctx, "nosuch")
	require.ErrorIs(t, err, ErrUnknownBoard)
	ok, err := r.c.TestRelayBoard(ctx, "relay-127-9-0-2")
	require.ErrorIs(t, err, ErrNotOwner)
	require.False(t, ok)
	require.Empty(t, r.relay.cycles, "nothing of another server touched")
}

// TestController_ActionsAreLoggedInBatches proves that the lines of many
// actions are filed in a few LogAppend proposals, not one each. The
// batcher files once per tick; holding its first proposal until every
// action is done makes the count independent of how long the actions take
// on this machine.
func TestController_ActionsAreLoggedInBatches(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	r.logGate.Lock()
	require.NoError(t, r.c.SetPXE(ctx, "mine", "pxe1"))
	require.Equal(t, "boot %IPADDRESS%", r.pxe.set["020000000001"])
	for range 20 {
		require.NoError(t, r.c.PowerCycle(ctx, "mine"))
	}
	r.relay.fail = errors.New("relay on fire")
	require.Error(t, r.c.PowerCycle(ctx, "mine"))
	ok, err := r.c.Ping(ctx, "mine")
	require.NoError(t, err)
	require.True(t, ok)
	r.logGate.Unlock()
	require.NoError(t, r.c.Shutdown(ctx)) // files what is queued

	r.mu.Lock()
	defer r.mu.Unlock()
	var msgs []string
	for _, e := range r.logs {
		if e.Kind == fsm.LogDevice && e.Name == "mine" && (e.Source == "bmm" || e.Source == "sut") {
			msgs = append(msgs, e.Message)
		}
	}
	require.Len(t, msgs, 1+20*2+2+1) // pxe, 20 cycles, a failed cycle, a ping
	require.Contains(t, msgs, "power cycle failed: relay on fire")
	require.Less(t, r.props, 10, "45 lines should be filed in a few batched proposals, not one each")
}
