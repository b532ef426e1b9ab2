package fsm_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/fsm"
	"github.com/mozpool/mozpool/lifeguard"
	"github.com/mozpool/mozpool/requests"
)

// sync applies an inventory sync and returns its diff or error.
func sync(t *testing.T, f *fsm.FSM, index uint64, at time.Time, inv fsm.Inventory, shipIt bool) (*fsm.InventoryDiff, error) {
	t.Helper()
	res := apply(t, f, index, fsm.CmdInventorySync, fsm.InventorySync{Header: fsm.Header{At: at}, Inventory: inv, ShipIt: shipIt})
	var diff fsm.InventoryDiff
	if err := res.Decode(&diff); err != nil {
		return nil, err
	}
	return &diff, nil
}

// deviceChanges returns the device lines of a diff.
func deviceChanges(d *fsm.InventoryDiff) []fsm.Change {
	var out []fsm.Change
	for _, c := range d.Changes {
		if c.Kind == "device" {
			out = append(out, c)
		}
	}
	return out
}

// withDevices returns the sample inventory with n generated devices.
func withDevices(n int) fsm.Inventory {
	inv := sampleInventory()
	inv.Devices = nil
	for i := 1; i <= n; i++ {
		inv.Devices = append(inv.Devices, fsm.InventoryDevice{
			Name: fmt.Sprintf("panda-%04d", i), FQDN: fmt.Sprintf("panda-%04d.lab", i), InventoryID: int64(1000 + i),
			MAC: fmt.Sprintf("00:11:22:33:%02x:%02x", i/256, i%256), ImagingServer: "mobile-imaging-001",
			RelayInfo: fmt.Sprintf("relay-%d.lab:bank%d:relay%d", 1+i/32, 1+i/8%4, 1+i%8), HardwareType: "panda", HardwareModel: "ES Rev B2",
		})
	}
	return inv
}

func TestInventory_NewDevices(t *testing.T) {
	f, _ := testFSMWith(t, fsm.Config{Devices: lifeguard.Machine{}})
	at := t0.Add(42 * time.Second)
	diff, err := sync(t, f, 1, at, sampleInventory(), false)
	require.NoError(t, err)
	require.Equal(t, []fsm.Change{
		{Op: "add", Kind: "device", Name: "panda-0001"},
		{Op: "add", Kind: "device", Name: "panda-0002"},
		{Op: "add", Kind: "device", Name: "panda-0003"},
		{Op: "add", Kind: "device", Name: "panda-0004"},
	}, deviceChanges(diff))

	f.Read(func(s *fsm.State) {
		d := s.Devices["panda-0001"]
		require.NotNil(t, d)
		require.Equal(t, string(lifeguard.StateNew), d.State, "the device machine's initial state")
		require.Equal(t, uint64(1), d.Generation)
		require.Equal(t, at, d.StateDeadline, "a new device times out at once")
		require.Equal(t, at, d.StateEntered)
		require.Equal(t, "001122334401", d.MAC, "mac is normalised")
		require.Equal(t, fsm.HardwareKey("panda", "ES Rev B2"), d.HardwareType)
		require.Equal(t, "mobile-imaging-001", d.ImagingServer)
		require.Equal(t, "relay-1.lab:bank1:relay1", d.RelayInfo)
		require.Equal(t, int64(101), d.InventoryID)
	})
}

// The initial state is the device machine's: the FSM knows no state by
// name, so without a machine a device has none.
func TestInventory_NewDevicesWithoutMachine(t *testing.T) {
	f := testFSM(t)
	_, err := sync(t, f, 1, t0, sampleInventory(), false)
	require.NoError(t, err)
	f.Read(func(s *fsm.State) {
		d := s.Devices["panda-0001"]
		require.Empty(t, d.State)
		require.True(t, d.StateDeadline.IsZero())
		require.Equal(t, uint64(1), d.Generation)
	})
}

func TestInventory_RelayBoards(t *testing.T) {
	f := testFSM(t)
	inv := sampleInventory()
	inv.Devices[3].RelayInfo = "relay-3.lab:2101:bank2:relay4" // with a port
	inv.RelayBoards = []fsm.InventoryRelayBoard{{Name: "relay-x", FQDN: "relay-x.lab", ImagingServer: "mobile-imaging-002"}}
	_, err := sync(t, f, 1, t0, inv, false)
	require.NoError(t, err)
	f.Read(func(s *fsm.State) {
		got := map[string]fsm.RelayBoard{}
		for name, rb := range s.RelayBoards {
			r := *rb
			r.ID = 0
			got[name] = r
		}
		require.Equal(t, map[string]fsm.RelayBoard{
			"relay-1": {Name: "relay-1", FQDN: "relay-1.lab", Port: 2101, ImagingServer: "mobile-imaging-001", Rack: "rack-1"},
			"relay-2": {Name: "relay-2", FQDN: "relay-2.lab", Port: 2101, ImagingServer: "mobile-imaging-002", Rack: "rack-2"},
			"relay-3": {Name: "relay-3", FQDN: "relay-3.lab", Port: 2101, ImagingServer: "mobile-imaging-002", Rack: "rack-2"},
			"relay-x": {Name: "relay-x", FQDN: "relay-x.lab", Port: 2101, ImagingServer: "mobile-imaging-002", Rack: "rack-2"},
		}, got)
	})

	// A listed board overrides the imaging server derived from devices.
	inv.RelayBoards = append(inv.RelayBoards, fsm.InventoryRelayBoard{FQDN: "relay-1.lab", ImagingServer: "mobile-imaging-002"})
	diff, err := sync(t, f, 2, t0, inv, false)
	require.NoError(t, err)
	require.Equal(t, []fsm.Change{{Op: "update", Kind: "relay_board", Name: "relay-1"}}, diff.Changes)
	f.Read(func(s *fsm.State) { require.Equal(t, "mobile-imaging-002", s.RelayBoards["relay-1"].ImagingServer) })
}

func TestInventory_RelayBoardAddresses(t *testing.T) {
	f := testFSM(t)
	inv := sampleInventory()
	inv.Devices[0].RelayInfo = "127.2.0.1:40001:bank1:relay1"
	inv.Devices[1].RelayInfo = "127.2.0.1:40001:bank1:relay2" // same board
	inv.Devices[2].RelayInfo = "127.2.0.2:bank1:relay1"       // default port
	inv.Devices[3].RelayInfo = ""
	inv.RelayBoards = nil
	_, err := sync(t, f, 1, t0, inv, false)
	require.NoError(t, err)
	f.Read(func(s *fsm.State) {
		require.Len(t, s.RelayBoards, 2)
		rb := s.RelayBoards["relay-127-2-0-1-40001"]
		require.NotNil(t, rb)
		require.Equal(t, "127.2.0.1", rb.FQDN)
		require.Equal(t, 40001, rb.Port)
		rb = s.RelayBoards["relay-127-2-0-2"]
		require.NotNil(t, rb)
		require.Equal(t, 2101, rb.Port)
	})
	inv.Devices[0].RelayInfo = "127.2.0.1:99999:bank1:relay1"
	_, err = sync(t, f, 2, t0, inv, false)
	require.ErrorIs(t, err, fsm.ErrInvalid)
}

func TestInventory_Update(t *testing.T) {
	f, rec := testFSMWith(t, fsm.Config{Devices: lifeguard.Machine{}})
	syncSample(t, f)
	var id int64
	f.Read(func(s *fsm.State) { id = s.Devices["panda-0002"].ID })
	rec.notes = nil

	inv := sampleInventory()
	inv.Devices[1].FQDN = "panda-0002.other.lab"
	inv.Devices[1].MAC = "00-11-22-33-44-AA"
	inv.Devices[1].Environment = "staging"
	diff, err := sync(t, f, 2, t0.Add(time.Hour), inv, false)
	require.NoError(t, err)
	require.Equal(t, []fsm.Change{{Op: "update", Kind: "device", Name: "panda-0002",
		Fields: []string{"fqdn", "mac_address", "environment"}}}, diff.Changes)
	require.Equal(t, 1, diff.DeviceChanges)
	f.Read(func(s *fsm.State) {
		d := s.Devices["panda-0002"]
		require.Equal(t, id, d.ID)
		require.Equal(t, "panda-0002.other.lab", d.FQDN)
		require.Equal(t, "0011223344aa", d.MAC)
		require.Equal(t, "staging", d.Environment)
		require.Equal(t, string(lifeguard.StateNew), d.State, "an update does not touch the device's state")
		require.Equal(t, uint64(1), d.Generation)
	})
	require.Equal(t, []fsm.LogEntry{{Kind: fsm.LogDevice, Name: "panda-0002", At: t0.Add(time.Hour), Source: "inventory",
		Message: "updated from inventory: fqdn, mac_address, environment"}}, rec.logs())

	// An environment set through the API survives a sync without one.
	applyOK(t, f, 3, fsm.CmdDeviceSetEnvironment, fsm.DeviceSetEnvironment{Header: fsm.Header{At: t0}, Device: "panda-0003", Environment: "prod"})
	diff, err = sync(t, f, 4, t0.Add(2*time.Hour), inv, false)
	require.NoError(t, err)
	require.Empty(t, diff.Changes, "a repeated sync changes nothing")
	f.Read(func(s *fsm.State) { require.Equal(t, "prod", s.Devices["panda-0003"].Environment) })
}

func TestInventory_Delete(t *testing.T) {
	f, rec := testFSMNotify(t)
	syncSample(t, f)
	rec.notes = nil

	inv := sampleInventory()
	inv.Devices = inv.Devices[:3]
	diff, err := sync(t, f, 2, t0, inv, false)
	require.NoError(t, err)
	require.Equal(t, []fsm.Change{{Op: "delete", Kind: "device", Name: "panda-0004"}}, diff.Changes)
	f.Read(func(s *fsm.State) {
		require.NotContains(t, s.Devices, "panda-0004")
		require.Len(t, s.Devices, 3)
		require.Contains(t, s.RelayBoards, "relay-2", "relay boards are never deleted by a sync")
	})
	require.Len(t, rec.notes, 1)
	require.Equal(t, []string{"panda-0004"}, rec.notes[0].Devices)
}

func TestInventory_Rename(t *testing.T) {
	tests := []struct {
		name   string
		rename func(inv *fsm.Inventory)
		want   map[int64]string // inventory id → name afterwards
	}{
		{
			name:   "rename",
			rename: func(inv *fsm.Inventory) { inv.Devices[0].Name = "panda-0100" },
			want:   map[int64]string{101: "panda-0100", 102: "panda-0002", 103: "panda-0003", 104: "panda-0004"},
		},
		{
			name: "swap two names",
			rename: func(inv *fsm.Inventory) {
				inv.Devices[0].Name, inv.Devices[1].Name = inv.Devices[1].Name, inv.Devices[0].Name
			},
			want: map[int64]string{101: "panda-0002", 102: "panda-0001", 103: "panda-0003", 104: "panda-0004"},
		},
		{
			name: "rotate three names",
			rename: func(inv *fsm.Inventory) {
				d := inv.Devices
				d[0].Name, d[1].Name, d[2].Name = d[2].Name, d[0].Name, d[1].Name
			},
			want: map[int64]string{101: "panda-0003", 102: "panda-0001", 103: "panda-0002", 104: "panda-0004"},
		},
		{
			name: "new device takes a renamed device's old name",
			rename: func(inv *fsm.Inventory) {
				inv.Devices[1].Name = "panda-0100"
				inv.Devices = append(inv.Devices, fsm.InventoryDevice{Name: "panda-0002", FQDN: "panda-0002.lab", InventoryID: 105,
					MAC: "00:11:22:33:44:05", ImagingServer: "mobile-imaging-001", HardwareType: "panda", HardwareModel: "ES Rev B2"})
				// The new device is listed before the renamed one.
				inv.Devices[1], inv.Devices[4] = inv.Devices[4], inv.Devices[1]
			},
			want: map[int64]string{101: "panda-0001", 102: "panda-0100", 103: "panda-0003", 104: "panda-0004", 105: "panda-0002"},
		},
		{
			name: "device takes a deleted device's name",
			rename: func(inv *fsm.Inventory) {
				inv.Devices[0].Name = "panda-0004"
				inv.Devices = inv.Devices[:3]
			},
			want: map[int64]string{101: "panda-0004", 102: "panda-0002", 103: "panda-0003"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := testFSM(t)
			syncSample(t, f)
			ids := map[int64]int64{} // inventory id → device id
			f.Read(func(s *fsm.State) {
				for _, d := range s.Devices {
					ids[d.InventoryID] = d.ID
				}
			})

			inv := sampleInventory()
			tc.rename(&inv)
			_, err := sync(t, f, 2, t0, inv, true)
			require.NoError(t, err)
			f.Read(func(s *fsm.State) {
				got := map[int64]string{}
				for name, d := range s.Devices {
					require.Equal(t, name, d.Name, "device map key")
					got[d.InventoryID] = name
					if id, ok := ids[d.InventoryID]; ok {
						require.Equal(t, id, d.ID, "renamed device %s keeps its id", name)
					}
				}
				require.Equal(t, tc.want, got)
			})
		})
	}
}

func TestInventory_RenameMovesClaim(t *testing.T) {
	f := testFSM(t)
	syncSample(t, f)
	f.Read(func(s *fsm.State) { s.Devices["panda-0001"].RequestID = 7 })
	fsm.PutRequest(f, &fsm.Request{ID: 7, Device: "panda-0001", State: string(requests.StatePending)})

	inv := sampleInventory()
	inv.Devices[0].Name = "panda-0100"
	_, err := sync(t, f, 2, t0, inv, false)
	require.NoError(t, err)
	f.Read(func(s *fsm.State) { require.Equal(t, "panda-0100", s.Requests[7].Device) })

	inv.Devices = inv.Devices[1:]
	_, err = sync(t, f, 3, t0, inv, false)
	require.NoError(t, err)
	f.Read(func(s *fsm.State) { require.Empty(t, s.Requests[7].Device, "deleting a device releases its claim") })
}

func TestInventory_SafetyValve(t *testing.T) {
	tests := []struct {
		name    string
		known   int // devices synced first, with ShipIt
		next    int // devices in the second sync; the first min(known, next) are unchanged
		changed int // of the unchanged ones, how many get a new fqdn
		shipIt  bool
		wantErr bool
	}{
		{name: "5 new devices", next: 5},
		{name: "6 new devices", next: 6, wantErr: true},
		{name: "6 new devices, ship it", next: 6, shipIt: true},
		{name: "100 known, 10 updated", known: 100, next: 100, changed: 10},
		{name: "100 known, 11 updated", known: 100, next: 100, changed: 11, wantErr: true},
		{name: "100 known, 11 deleted", known: 100, next: 89, wantErr: true},
		{name: "100 known, 10 deleted", known: 100, next: 90},
		{name: "100 known, 11 deleted, ship it", known: 100, next: 89, shipIt: true},
		{name: "200 incoming, 20 new", known: 180, next: 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := testFSM(t)
			if tc.known > 0 {
				_, err := sync(t, f, 1, t0, withDevices(tc.known), true)
				require.NoError(t, err)
			}
			inv := withDevices(tc.next)
			for i := 0; i < tc.changed; i++ {
				inv.Devices[i].FQDN = "moved.lab"
			}
			before := snapshotBytes(t, f)

			diff, err := sync(t, f, 2, t0, inv, tc.shipIt)
			if tc.wantErr {
				require.ErrorIs(t, err, fsm.ErrTooManyChanges)
				requireState(t, before, f, "a refused sync changed the state")
				return
			}
			require.NoError(t, err)
			require.Equal(t, fsm.SafetyLimit(tc.known, tc.next), diff.Limit)
			f.Read(func(s *fsm.State) { require.Len(t, s.Devices, tc.next) })
		})
	}
}

func TestInventory_Invalid(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(inv *fsm.Inventory)
		wantErr error
	}{
		{"invalid mac", func(inv *fsm.Inventory) { inv.Devices[2].MAC = "00:11:22:33:44" }, fsm.ErrInvalid},
		{"non-hex mac", func(inv *fsm.Inventory) { inv.Devices[2].MAC = "00:11:22:33:44:zz" }, fsm.ErrInvalid},
		{"duplicate mac", func(inv *fsm.Inventory) { inv.Devices[2].MAC = inv.Devices[0].MAC }, fsm.ErrInvalid},
		{"duplicate inventory id", func(inv *fsm.Inventory) { inv.Devices[2].InventoryID = inv.Devices[0].InventoryID }, fsm.ErrInvalid},
		{"zero inventory id", func(inv *fsm.Inventory) { inv.Devices[2].InventoryID = 0 }, fsm.ErrInvalid},
		{"duplicate name", func(inv *fsm.Inventory) { inv.Devices[2].Name = inv.Devices[0].Name }, fsm.ErrInvalid},
		{"bad device name", func(inv *fsm.Inventory) { inv.Devices[2].Name = "panda.0003" }, fsm.ErrInvalid},
		{"bad relay info", func(inv *fsm.Inventory) { inv.Devices[2].RelayInfo = "relay-2.lab" }, fsm.ErrInvalid},
		{"relay info without host", func(inv *fsm.Inventory) { inv.Devices[2].RelayInfo = ":2101:bank1:relay1" }, fsm.ErrInvalid},
		{"environment too long", func(inv *fsm.Inventory) { inv.Devices[2].Environment = "0123456789012345678901234567890123" }, fsm.ErrInvalid},
		{"unknown imaging server", func(inv *fsm.Inventory) { inv.Devices[2].ImagingServer = "mobile-imaging-009" }, fsm.ErrUnknownServer},
		{"unknown hardware type", func(inv *fsm.Inventory) { inv.Devices[2].HardwareModel = "ES Rev B3" }, fsm.ErrUnknownHardwareType},
		{"server without name", func(inv *fsm.Inventory) { inv.ImagingServers = append(inv.ImagingServers, fsm.InventoryServer{}) }, fsm.ErrInvalid},
		{"bad image name", func(inv *fsm.Inventory) { inv.Images[0].Name = "b2g/1" }, fsm.ErrInvalid},
		{"bad pxe config name", func(inv *fsm.Inventory) { inv.PXEConfigs[0].Name = "panda.b2g" }, fsm.ErrInvalid},
		{"relay board of unknown server", func(inv *fsm.Inventory) {
			inv.RelayBoards = []fsm.InventoryRelayBoard{{FQDN: "relay-9.lab", ImagingServer: "mobile-imaging-009"}}
		}, fsm.ErrInvalid},
		{"mapping of unknown image", func(inv *fsm.Inventory) { inv.ImagePXEConfigs[1].Image = "nope" }, fsm.ErrUnknownImage},
		{"mapping to unknown pxe config", func(inv *fsm.Inventory) { inv.ImagePXEConfigs[1].PXEConfig = "nope" }, fsm.ErrUnknownPXEConfig},
		{"mapping of unknown hardware type", func(inv *fsm.Inventory) { inv.ImagePXEConfigs[1].HardwareModel = "nope" }, fsm.ErrUnknownHardwareType},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, rec := testFSMNotify(t)
			syncSample(t, f)
			rec.notes = nil
			before := snapshotBytes(t, f)

			inv := sampleInventory()
			// Other changes in the same inventory must not be applied
			// either.
			inv.ImagingServers = append(inv.ImagingServers, fsm.InventoryServer{Name: "mobile-imaging-003"})
			inv.Images = append(inv.Images, fsm.ImageSpec{Name: "ubuntu"})
			inv.PXEConfigs[0].Contents = "changed"
			inv.Devices[0].FQDN = "changed.lab"
			tc.edit(&inv)

			_, err := sync(t, f, 2, t0, inv, true)
			require.ErrorIs(t, err, tc.wantErr)
			requireState(t, before, f, "a refused sync changed the state")
			require.Empty(t, rec.notes)

			_, err = f.DryRunInventory(inv)
			require.ErrorIs(t, err, tc.wantErr, "dry run")
		})
	}
}

func TestInventory_DryRun(t *testing.T) {
	f, rec := testFSMNotify(t)
	syncSample(t, f)
	rec.notes = nil
	before := snapshotBytes(t, f)

	inv := withDevices(20) // 20 adds, 4 deletes: above the safety limit
	inv.Images = append(inv.Images, fsm.ImageSpec{Name: "ubuntu"})
	diff, err := f.DryRunInventory(inv)
	require.NoError(t, err)
	require.Equal(t, 24, diff.DeviceChanges)
	require.Equal(t, 5, diff.Limit)
	require.Contains(t, diff.Changes, fsm.Change{Op: "add", Kind: "image", Name: "ubuntu"})
	require.Contains(t, diff.Changes, fsm.Change{Op: "add", Kind: "device", Name: "panda-0005"})
	require.Contains(t, diff.Changes, fsm.Change{Op: "delete", Kind: "device", Name: "panda-0001"})

	requireState(t, before, f, "a dry run changed the state")
	require.Empty(t, rec.notes, "a dry run notified")

	// The dry run predicts the real sync.
	got, err := sync(t, f, 2, t0, inv, true)
	require.NoError(t, err)
	require.Equal(t, diff, got)
}

func TestSafetyLimit(t *testing.T) {
	tests := []struct{ known, incoming, want int }{
		{0, 0, 5},
		{10, 10, 5},
		{60, 10, 6},
		{10, 70, 7},
		{1000, 900, 100},
	}
	for _, tc := range tests {
		got := fsm.SafetyLimit(tc.known, tc.incoming)
		require.Equal(t, tc.want, got, "SafetyLimit(%d, %d)", tc.known, tc.incoming)
	}
}
