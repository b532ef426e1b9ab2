package fsm_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/fsm"
	"github.com/mozpool/mozpool/internal/testlog"
	"github.com/mozpool/mozpool/lifeguard"
)

// probe is a request machine whose Start runs a test's function: it tries
// the primitives RequestTx offers a request machine.
type probe struct{ start func(m *fsm.RequestTx) error }

func (probe) Initial() (string, time.Duration)                         { return "probing", -1 }
func (p probe) Start(m *fsm.RequestTx) error                           { return p.start(m) }
func (probe) Event(*fsm.RequestTx, string, fsm.RequestEventArgs) error { return fsm.ErrIgnored }
func (probe) Timeout(*fsm.RequestTx)                                   {}
func (probe) Expire(*fsm.RequestTx) error                              { return fsm.ErrIgnored }
func (probe) DeviceFinished(*fsm.RequestTx, string)                    {}
func (probe) Known(state string) bool                                  { return state == "probing" }
func (probe) Assign(*fsm.RequestTx, string) bool                       { return false }
func (probe) GiveUp(*fsm.RequestTx, bool)                              {}
func (probe) Open(string) bool                                         { return true }

// probeFSM syncs the sample inventory into an FSM with devices (the
// lifeguard machine, or none) and the probe, and forces every panda ready
// when there is a device machine.
func probeFSM(t *testing.T, devices fsm.DeviceMachine, start func(m *fsm.RequestTx) error) (*fsm.FSM, uint64) {
	t.Helper()
	f := fsm.New(fsm.Config{Logger: testlog.New(t), Devices: devices, Requests: probe{start: start}})
	syncSample(t, f)
	index := uint64(1)
	if devices != nil {
		for _, d := range sampleInventory().Devices {
			index++
			applyOK(t, f, index, fsm.CmdDeviceStateChange, fsm.DeviceStateChange{Header: fsm.Header{At: t0},
				Device: d.Name, From: string(lifeguard.StateNew), To: string(lifeguard.StateReady)})
		}
	}
	return f, index
}

func createProbe(t *testing.T, f *fsm.FSM, index uint64, at time.Time) fsm.Result {
	t.Helper()
	return apply(t, f, index, fsm.CmdRequestCreate, fsm.RequestCreate{Header: fsm.Header{At: at}, RequestedDevice: "any",
		Assignee: "me", Expires: at.Add(time.Hour), Image: "android", BootConfig: "{}"})
}

// Without a device machine no device can be contacted, so none is offered.
func TestRequestTx_NoDeviceMachine(t *testing.T) {
	f, index := probeFSM(t, nil, func(m *fsm.RequestTx) error {
		m.EachDevice(func(d fsm.DeviceView) { t.Errorf("device %s offered without a device machine", d.Name) })
		_, ok := m.LookupDevice("panda-0001")
		require.False(t, ok)
		require.ErrorIs(t, m.SendDeviceEvent("panda-0001", "anything", fsm.EventArgs{}), fsm.ErrNoMachine)
		return nil
	})
	require.NoError(t, createProbe(t, f, index+1, t0.Add(time.Minute)).Error())
}

func TestRequestTx_ClaimAndSend(t *testing.T) {
	at := t0.Add(time.Minute)
	var views []fsm.DeviceView
	f, index := probeFSM(t, lifeguard.Machine{}, func(m *fsm.RequestTx) error {
		m.EachDevice(func(d fsm.DeviceView) { views = append(views, d) })
		img, ok := m.Image()
		require.True(t, ok)
		require.True(t, img.CanReuse)
		require.Equal(t, "panda-android-1", m.PXEConfigFor("android", fsm.HardwareKey("panda", "ES Rev B2")))

		require.ErrorIs(t, m.Claim("no-such-board"), fsm.ErrUnknownDevice)
		require.NoError(t, m.Claim("panda-0001"))
		require.ErrorIs(t, m.Claim("panda-0002"), fsm.ErrConflict, "a request holds one device")
		d, ok := m.LookupDevice("panda-0001")
		require.True(t, ok)
		require.True(t, d.Claimed)
		require.Equal(t, at, d.LastUsed)
		require.Equal(t, "panda-0001", m.Request().Device)

		// Taken back silently: the device is free again.
		m.Unclaim()
		d, _ = m.LookupDevice("panda-0001")
		require.False(t, d.Claimed)
		require.Empty(t, m.Request().Device)

		require.NoError(t, m.Claim("panda-0002"))
		require.ErrorIs(t, m.SendDeviceEvent("panda-0002", "no_such_event", fsm.EventArgs{}), fsm.ErrIgnored)
		require.ErrorIs(t, m.SendDeviceEvent("no-such-board", string(lifeguard.EventPleasePowerCycle), fsm.EventArgs{}), fsm.ErrUnknownDevice)
		require.NoError(t, m.SendDeviceEvent("panda-0002", string(lifeguard.EventPleasePowerCycle), fsm.EventArgs{}))
		m.LogDevice("panda-0002", "test", "probed by request %d", m.Request().ID)
		return nil
	})
	require.NoError(t, createProbe(t, f, index+1, at).Error())

	require.Len(t, views, 4)
	for _, v := range views {
		require.Equal(t, string(lifeguard.StateReady), v.State, "device %s", v.Name)
		require.False(t, v.Claimed)
		require.False(t, v.ServerDown)
	}
	f.Read(func(s *fsm.State) {
		require.Zero(t, s.Devices["panda-0001"].RequestID)
		require.Equal(t, at, s.Devices["panda-0001"].LastUsed, "an undone claim keeps its last use")
		d := s.Devices["panda-0002"]
		require.Equal(t, int64(1), d.RequestID)
		require.Equal(t, string(lifeguard.StatePCPowerCycling), d.State, "the device machine ran in the same Apply")
		require.Equal(t, "panda-0002", s.Requests[1].Device)
	})

}

// A device held by another request cannot be claimed; a server marked down
// shows in the views.
func TestRequestTx_HeldAndDown(t *testing.T) {
	at := t0.Add(time.Minute)
	var conflict error
	var down []string
	g, gIndex := probeFSM(t, lifeguard.Machine{}, func(m *fsm.RequestTx) error {
		if m.Request().ID == 1 {
			return m.Claim("panda-0003")
		}
		conflict = m.Claim("panda-0003")
		m.EachDevice(func(d fsm.DeviceView) {
			if d.ServerDown {
				down = append(down, d.Name)
			}
		})
		return nil
	})
	require.NoError(t, createProbe(t, g, gIndex+1, at).Error())
	applyOK(t, g, gIndex+2, fsm.CmdServerHealth, fsm.ServerHealth{Header: fsm.Header{At: at}, Name: "mobile-imaging-002", Down: true})
	require.NoError(t, createProbe(t, g, gIndex+3, at).Error())
	require.ErrorIs(t, conflict, fsm.ErrConflict)
	require.ElementsMatch(t, []string{"panda-0003", "panda-0004"}, down)
}
