package fsm_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/fsm"
	"github.com/mozpool/mozpool/internal/testlog"
	"github.com/mozpool/mozpool/lifeguard"
)

func TestApply_DeviceRegister(t *testing.T) {
	f := fsm.New(fsm.Config{Logger: testlog.New(t), Devices: lifeguard.Machine{}})
	inv := sampleInventory()
	applyOK(t, f, 1, fsm.CmdInventorySync, fsm.InventorySync{Header: fsm.Header{At: t0}, Inventory: inv, ShipIt: true})
	dev := inv.Devices[0]

	// A MAC that does not match is refused and changes nothing.
	before := snapshotBytes(t, f)
	res := apply(t, f, 2, fsm.CmdDeviceRegister, fsm.DeviceRegister{Header: fsm.Header{At: t0}, Device: dev.Name, MAC: "02:00:00:00:00:99"})
	require.ErrorIs(t, res.Error(), fsm.ErrConflict)
	requireState(t, before, f)

	res = apply(t, f, 3, fsm.CmdDeviceRegister, fsm.DeviceRegister{Header: fsm.Header{At: t0}, Device: "no-such-board", MAC: dev.MAC})
	require.ErrorIs(t, res.Error(), fsm.ErrUnknownDevice)
	res = apply(t, f, 4, fsm.CmdDeviceRegister, fsm.DeviceRegister{Header: fsm.Header{At: t0}, Device: dev.Name, MAC: "bogus"})
	require.ErrorIs(t, res.Error(), fsm.ErrInvalid)

	// The matching MAC (in any spelling) registers; a new board starts its
	// self-test at once.
	res = applyOK(t, f, 5, fsm.CmdDeviceRegister, fsm.DeviceRegister{Header: fsm.Header{At: t0}, Device: dev.Name, MAC: dev.MAC, Address: "127.1.1.1:5000"})
	var out fsm.EventResult
	require.NoError(t, res.Decode(&out))
	require.NotEqual(t, lifeguard.StateNew, lifeguard.State(out.State), "a new board self-tests once registered")
	f.Read(func(s *fsm.State) { require.Equal(t, out.State, s.Devices[dev.Name].State) })
}
