package events

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/fsm"
	"github.com/mozpool/mozpool/internal/testlog"
	"github.com/mozpool/mozpool/lifeguard"
	"github.com/mozpool/mozpool/logstore"
)

func testFSM(t *testing.T) *fsm.FSM {
	f := fsm.New(fsm.Config{Logger: testlog.New(t), Devices: lifeguard.Machine{}})
	b, err := fsm.Encode(fsm.CmdInventorySync, &fsm.InventorySync{Header: fsm.Header{At: time.Now()}, ShipIt: true, Inventory: fsm.Inventory{
		ImagingServers: []fsm.InventoryServer{{Name: "server1"}},
		HardwareTypes:  []fsm.InventoryHardwareType{{Type: "panda", Model: "ES"}},
		Devices: []fsm.InventoryDevice{{Name: "panda-1", FQDN: "panda-1.lab", InventoryID: 1, MAC: "00:00:00:00:00:01",
			ImagingServer: "server1", HardwareType: "panda", HardwareModel: "ES"}},
	}})
	require.NoError(t, err)
	require.NoError(t, f.ApplyCommand(1, b).Error())
	return f
}

// A command's changes of state become events numbered in order; a
// re-entry of the same state is none.
func TestDerive(t *testing.T) {
	f := testFSM(t)
	at := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	evs := Derive(f, fsm.Notification{Index: 42, At: at,
		Transitions: []fsm.Transition{
			{Device: "panda-1", From: "ready", State: "ready"},
			{Device: "panda-1", From: "new", State: "start_self_test"},
			{Device: "panda-1", From: "start_self_test", State: "pc_power_cycling"},
		},
		RequestTransitions: []fsm.RequestTransition{{Request: 9, State: "closed"}},
	})
	require.Equal(t, []Event{
		{Index: 42, Seq: 0, At: at, Kind: KindDevice, Name: "panda-1", State: "start_self_test", ImagingServer: "server1"},
		{Index: 42, Seq: 1, At: at, Kind: KindDevice, Name: "panda-1", State: "pc_power_cycling", ImagingServer: "server1"},
		{Index: 42, Seq: 2, At: at, Kind: KindRequest, Name: "9", State: "closed"},
	}, evs)
	require.Empty(t, Derive(f, fsm.Notification{Index: 43, Transitions: []fsm.Transition{{Device: "panda-1", From: "ready", State: "ready"}}}))
}

// Subscribers get what is published after they subscribe; one that falls
// behind is cut off; Close ends every subscription.
func TestHub(t *testing.T) {
	cfg := logstore.DefaultConfig()
	cfg.Path, cfg.Logger = filepath.Join(t.TempDir(), "logs.db"), testlog.New(t)
	store, err := logstore.Open(cfg)
	require.NoError(t, err)
	defer store.Close()
	h := NewHub(store)
	h.Publish([]Event{{Index: 1, Kind: KindDevice, Name: "a", State: "ready"}})
	sub := h.Subscribe()
	slow := h.Subscribe()
	h.Publish([]Event{{Index: 2, Kind: KindDevice, Name: "a", State: "new"}})
	require.Equal(t, uint64(2), (<-sub.C()).Index)
	for i := range subBuffer + 1 {
		h.Publish([]Event{{Index: uint64(3 + i), Kind: KindDevice, Name: "a", State: "x"}})
		<-sub.C()
	}
	n := 0
	for range slow.C() {
		n++
	}
	require.Equal(t, subBuffer, n, "the slow subscriber is closed once its buffer is full")
	stored, err := h.After(0, 0, 0)
	require.NoError(t, err)
	require.Len(t, stored, subBuffer+3)
	h.Close()
	_, open := <-sub.C()
	require.False(t, open)
	_, open = <-h.Subscribe().C()
	require.False(t, open, "a closed hub hands out closed subscriptions")
	sub.Close() // after the hub's Close: harmless
}
