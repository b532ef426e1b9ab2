package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/fsm"
	"github.com/mozpool/mozpool/lifeguard"
)

// TestLabInventory checks that the sample lab inventory loads with the same
// strict reader "inventory sync" uses and applies cleanly to a fresh FSM.
func TestLabInventory(t *testing.T) {
	inv, err := loadInventory("../../lab/lab.json")
	require.NoError(t, err)
	require.Len(t, inv.Devices, 30)

	f := fsm.New(fsm.Config{Devices: lifeguard.Machine{}})
	b, err := fsm.Encode(fsm.CmdInventorySync, &fsm.InventorySync{
		Header:    fsm.Header{At: time.Unix(0, 0).UTC()},
		Inventory: inv,
		ShipIt:    true,
	})
	require.NoError(t, err)
	res := f.ApplyCommand(1, b)
	require.NoError(t, res.Error())

	var diff fsm.InventoryDiff
	require.NoError(t, res.Decode(&diff))
	require.Equal(t, 30, diff.DeviceChanges)

	f.Read(func(s *fsm.State) {
		require.Len(t, s.Devices, 30)
		for name, d := range s.Devices {
			require.Equal(t, string(lifeguard.StateNew), d.State, "device %s", name)
		}
		require.Len(t, s.Servers, 3)
		require.Len(t, s.RelayBoards, 3)
		require.Len(t, s.Images, 4)
		require.Len(t, s.PXEConfigs, 4)
		for _, img := range []string{"b2g", "android", "self-test", "maintenance"} {
			require.Equal(t, img+"-pxe", s.PXEConfigFor(img, fsm.HardwareKey("panda", "ES Rev B2")))
		}
		for _, pc := range s.PXEConfigs {
			require.Contains(t, pc.Contents, "%IPADDRESS%", "pxe config %s", pc.Name)
		}
	})
}
