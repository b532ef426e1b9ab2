package fsm_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/fsm"
)

func ptr[T any](v T) *T { return &v }

func TestApply_ServerUpsert(t *testing.T) {
	f := testFSM(t)
	h := fsm.Header{At: t0}

	var srv fsm.ImagingServer
	res := applyOK(t, f, 1, fsm.CmdServerUpsert, fsm.ServerUpsert{Header: h, Name: "mobile-imaging-001", NodeID: "node-a",
		Rack: "rack-1", RaftAddr: "10.0.0.1:8300", HTTPAddr: "http://10.0.0.1:8010", GossipAddr: "10.0.0.1:8301",
		TFTPAddr: "10.0.0.1:69", SyslogAddr: "10.0.0.1:514"})
	require.NoError(t, res.Decode(&srv))
	require.Equal(t, fsm.ImagingServer{ID: 1, Name: "mobile-imaging-001", Rack: "rack-1", NodeID: "node-a",
		RaftAddr: "10.0.0.1:8300", HTTPAddr: "http://10.0.0.1:8010", GossipAddr: "10.0.0.1:8301",
		TFTPAddr: "10.0.0.1:69", SyslogAddr: "10.0.0.1:514"}, srv)

	// New addresses update the entry; an empty rack keeps the old one.
	res = applyOK(t, f, 2, fsm.CmdServerUpsert, fsm.ServerUpsert{Header: h, Name: "mobile-imaging-001", NodeID: "node-a",
		RaftAddr: "10.0.0.9:8300", HTTPAddr: "http://10.0.0.9:8010", SyslogAddr: "10.0.0.9:514"})
	srv = fsm.ImagingServer{}
	require.NoError(t, res.Decode(&srv))
	require.Equal(t, int64(1), srv.ID)
	require.Equal(t, "rack-1", srv.Rack)
	require.Equal(t, "10.0.0.9:8300", srv.RaftAddr)
	require.Equal(t, "10.0.0.9:514", srv.SyslogAddr)
	require.Empty(t, srv.GossipAddr)
	require.Empty(t, srv.TFTPAddr)

	// Rebinding node-a to another name detaches it from the first one,
	// which stays as an imaging server.
	applyOK(t, f, 3, fsm.CmdServerUpsert, fsm.ServerUpsert{Header: h, Name: "mobile-imaging-002", NodeID: "node-a",
		RaftAddr: "10.0.0.9:8300", HTTPAddr: "http://10.0.0.9:8010", TFTPAddr: "10.0.0.9:69", SyslogAddr: "10.0.0.9:514"})
	f.Read(func(s *fsm.State) {
		require.Len(t, s.Servers, 2)
		require.Equal(t, fsm.ImagingServer{ID: 1, Name: "mobile-imaging-001", Rack: "rack-1"}, *s.Servers["mobile-imaging-001"])
		require.Equal(t, "node-a", s.Servers["mobile-imaging-002"].NodeID)
		require.Same(t, s.Servers["mobile-imaging-002"], s.ServerByNode("node-a"))
		require.Nil(t, s.ServerByNode("node-b"))
	})

	tests := []struct {
		name string
		cmd  fsm.ServerUpsert
	}{
		{"no name", fsm.ServerUpsert{Header: h, NodeID: "node-b"}},
		{"no node id", fsm.ServerUpsert{Header: h, Name: "mobile-imaging-003"}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := apply(t, f, uint64(10+i), fsm.CmdServerUpsert, tc.cmd)
			require.ErrorIs(t, res.Error(), fsm.ErrInvalid)
			f.Read(func(s *fsm.State) { require.Len(t, s.Servers, 2) })
		})
	}
}

func TestApply_ServerRemove(t *testing.T) {
	f := testFSM(t)
	h := fsm.Header{At: t0}
	applyOK(t, f, 1, fsm.CmdServerUpsert, fsm.ServerUpsert{Header: h, Name: "mobile-imaging-001", NodeID: "node-a",
		Rack: "rack-1", RaftAddr: "10.0.0.1:8300", HTTPAddr: "http://10.0.0.1:8010", GossipAddr: "10.0.0.1:8301",
		TFTPAddr: "10.0.0.1:69", SyslogAddr: "10.0.0.1:514"})

	applyOK(t, f, 2, fsm.CmdServerRemove, fsm.ServerRemove{Header: h, NodeID: "node-a"})
	f.Read(func(s *fsm.State) {
		require.Equal(t, fsm.ImagingServer{ID: 1, Name: "mobile-imaging-001", Rack: "rack-1"}, *s.Servers["mobile-imaging-001"])
		require.Nil(t, s.ServerByNode("node-a"))
	})

	for i, node := range []string{"node-a", "node-unknown", ""} {
		res := apply(t, f, uint64(3+i), fsm.CmdServerRemove, fsm.ServerRemove{Header: h, NodeID: node})
		require.ErrorIs(t, res.Error(), fsm.ErrUnknownServer, "remove %q", node)
	}
}

func TestApply_InventorySync(t *testing.T) {
	f, rec := testFSMNotify(t)
	res := applyOK(t, f, 1, fsm.CmdInventorySync, fsm.InventorySync{Header: fsm.Header{At: t0}, Inventory: sampleInventory()})
	var diff fsm.InventoryDiff
	require.NoError(t, res.Decode(&diff))
	require.Equal(t, 4, diff.DeviceChanges)
	require.Equal(t, 5, diff.Limit)

	f.Read(func(s *fsm.State) {
		require.Len(t, s.Servers, 2)
		require.Len(t, s.HardwareTypes, 1)
		require.Len(t, s.Images, 4)
		require.Len(t, s.PXEConfigs, 4)
		require.Len(t, s.ImagePXEConfigs, 4)
		require.Len(t, s.Devices, 4)
		require.Len(t, s.RelayBoards, 2)
		require.Equal(t, "panda-b2g-1", s.PXEConfigFor("b2g", fsm.HardwareKey("panda", "ES Rev B2")))
		require.Equal(t, []string{"b2gbase"}, s.Images["b2g"].BootConfigKeys)
		require.True(t, s.Images["android"].CanReuse)
		require.True(t, s.Images["self-test"].Hidden)
		require.True(t, s.PXEConfigs["panda-maint"].Active, "pxe configs are active by default")
		require.Equal(t, "rack-2", s.Servers["mobile-imaging-002"].Rack)
	})
	require.Len(t, rec.notes, 1)
	require.Equal(t, fsm.CmdInventorySync, rec.notes[0].Type)
	require.ElementsMatch(t, []string{"panda-0001", "panda-0002", "panda-0003", "panda-0004"}, rec.notes[0].Devices)
	require.Len(t, rec.notes[0].Logs, 4)
}

func TestApply_ImageUpsert(t *testing.T) {
	f := testFSM(t)
	h := fsm.Header{At: t0}

	var img fsm.Image
	res := applyOK(t, f, 1, fsm.CmdImageUpsert, fsm.ImageUpsert{Header: h, Image: fsm.ImageSpec{Name: "b2g", BootConfigKeys: []string{"b2gbase"}}})
	require.NoError(t, res.Decode(&img))
	require.Equal(t, fsm.Image{ID: 1, Name: "b2g", BootConfigKeys: []string{"b2gbase"}}, img)

	res = applyOK(t, f, 2, fsm.CmdImageUpsert, fsm.ImageUpsert{Header: h, Image: fsm.ImageSpec{Name: "b2g", CanReuse: true, HasSUTAgent: true}})
	require.NoError(t, res.Decode(&img))
	require.Equal(t, fsm.Image{ID: 1, Name: "b2g", BootConfigKeys: []string{}, CanReuse: true, HasSUTAgent: true}, img)

	res = applyOK(t, f, 3, fsm.CmdImageUpsert, fsm.ImageUpsert{Header: h, Image: fsm.ImageSpec{Name: "android"}})
	require.NoError(t, res.Decode(&img))
	require.Equal(t, int64(2), img.ID)

	for i, name := range []string{"", "../etc", "b2g.1", strings.Repeat("x", 33)} {
		res := apply(t, f, uint64(4+i), fsm.CmdImageUpsert, fsm.ImageUpsert{Header: h, Image: fsm.ImageSpec{Name: name}})
		require.ErrorIs(t, res.Error(), fsm.ErrInvalid, "name %q", name)
	}
	f.Read(func(s *fsm.State) { require.Len(t, s.Images, 2) })
}

func TestApply_PXEConfigUpsert(t *testing.T) {
	h := fsm.Header{At: t0}
	tests := []struct {
		name    string
		cmd     fsm.PXEConfigUpsert
		wantErr error
		want    fsm.PXEConfig // the stored config afterwards
	}{
		{
			name: "create",
			cmd:  fsm.PXEConfigUpsert{Header: h, Name: "panda-new", Description: ptr("new"), Contents: ptr("KERNEL new"), Create: true},
			want: fsm.PXEConfig{ID: 2, Name: "panda-new", Description: "new", Contents: "KERNEL new", Active: true},
		},
		{
			name: "create inactive",
			cmd:  fsm.PXEConfigUpsert{Header: h, Name: "panda-new", Active: ptr(false), Create: true},
			want: fsm.PXEConfig{ID: 2, Name: "panda-new", Active: false},
		},
		{
			name: "modify changes only given fields",
			cmd:  fsm.PXEConfigUpsert{Header: h, Name: "panda-b2g", Contents: ptr("KERNEL v2"), Active: ptr(false)},
			want: fsm.PXEConfig{ID: 1, Name: "panda-b2g", Description: "b2g", Contents: "KERNEL v2", Active: false},
		},
		{
			name:    "create existing",
			cmd:     fsm.PXEConfigUpsert{Header: h, Name: "panda-b2g", Contents: ptr("overwritten"), Create: true},
			wantErr: fsm.ErrExists,
			want:    fsm.PXEConfig{ID: 1, Name: "panda-b2g", Description: "b2g", Contents: "KERNEL v1", Active: true},
		},
		{
			name:    "modify unknown",
			cmd:     fsm.PXEConfigUpsert{Header: h, Name: "panda-new", Contents: ptr("x")},
			wantErr: fsm.ErrUnknownPXEConfig,
		},
		{
			name:    "bad name",
			cmd:     fsm.PXEConfigUpsert{Header: h, Name: "panda/new", Create: true},
			wantErr: fsm.ErrInvalid,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := testFSM(t)
			applyOK(t, f, 1, fsm.CmdPXEConfigUpsert, fsm.PXEConfigUpsert{Header: h, Name: "panda-b2g",
				Description: ptr("b2g"), Contents: ptr("KERNEL v1"), Create: true})

			res := apply(t, f, 2, fsm.CmdPXEConfigUpsert, tc.cmd)
			if tc.wantErr != nil {
				require.ErrorIs(t, res.Error(), tc.wantErr)
			} else {
				var got fsm.PXEConfig
				require.NoError(t, res.Decode(&got))
				require.Equal(t, tc.want, got, "result")
			}
			f.Read(func(s *fsm.State) {
				got, ok := s.PXEConfigs[tc.cmd.Name]
				if tc.want.Name == "" {
					require.False(t, ok, "config %q was created", tc.cmd.Name)
					return
				}
				require.True(t, ok)
				require.Equal(t, tc.want, *got, "stored config")
			})
		})
	}
}

func TestApply_ImagePXEConfigSet(t *testing.T) {
	const typ, model = "panda", "ES Rev B2"
	hw := fsm.HardwareKey(typ, model)
	h := fsm.Header{At: t0}
	tests := []struct {
		name    string
		cmd     fsm.ImagePXEConfigSet
		wantErr error
		want    string // PXEConfigFor("b2g", hw) afterwards
	}{
		{"change", fsm.ImagePXEConfigSet{Header: h, Image: "b2g", HardwareType: typ, HardwareModel: model, PXEConfig: "panda-maint"}, nil, "panda-maint"},
		{"same", fsm.ImagePXEConfigSet{Header: h, Image: "b2g", HardwareType: typ, HardwareModel: model, PXEConfig: "panda-b2g-1"}, nil, "panda-b2g-1"},
		{"remove", fsm.ImagePXEConfigSet{Header: h, Image: "b2g", HardwareType: typ, HardwareModel: model}, nil, ""},
		{"unknown image", fsm.ImagePXEConfigSet{Header: h, Image: "nope", HardwareType: typ, HardwareModel: model, PXEConfig: "panda-maint"}, fsm.ErrUnknownImage, "panda-b2g-1"},
		{"unknown hardware type", fsm.ImagePXEConfigSet{Header: h, Image: "b2g", HardwareType: typ, HardwareModel: "ES Rev B3", PXEConfig: "panda-maint"}, fsm.ErrUnknownHardwareType, "panda-b2g-1"},
		{"unknown pxe config", fsm.ImagePXEConfigSet{Header: h, Image: "b2g", HardwareType: typ, HardwareModel: model, PXEConfig: "nope"}, fsm.ErrUnknownPXEConfig, "panda-b2g-1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := testFSM(t)
			syncSample(t, f)
			res := apply(t, f, 2, fsm.CmdImagePXEConfigSet, tc.cmd)
			if tc.wantErr != nil {
				require.ErrorIs(t, res.Error(), tc.wantErr)
			} else {
				require.NoError(t, res.Error())
			}
			f.Read(func(s *fsm.State) {
				require.Equal(t, tc.want, s.PXEConfigFor("b2g", hw))
				if tc.want == "" {
					require.Len(t, s.ImagePXEConfigs, 3)
				}
			})
		})
	}

	// Removing a mapping that does not exist is not an error.
	f := testFSM(t)
	syncSample(t, f)
	applyOK(t, f, 2, fsm.CmdImagePXEConfigSet, fsm.ImagePXEConfigSet{Header: h, Image: "b2g", HardwareType: typ, HardwareModel: model})
	applyOK(t, f, 3, fsm.CmdImagePXEConfigSet, fsm.ImagePXEConfigSet{Header: h, Image: "b2g", HardwareType: typ, HardwareModel: model})
}

func TestApply_DeviceSetComments(t *testing.T) {
	f, rec := testFSMNotify(t)
	syncSample(t, f)
	rec.notes = nil
	at := t0.Add(time.Minute)

	applyOK(t, f, 2, fsm.CmdDeviceSetComments, fsm.DeviceSetComments{Header: fsm.Header{At: at}, Device: "panda-0002", Comments: "flaky sdcard"})
	f.Read(func(s *fsm.State) { require.Equal(t, "flaky sdcard", s.Devices["panda-0002"].Comments) })
	require.Len(t, rec.notes, 1)
	require.Equal(t, []string{"panda-0002"}, rec.notes[0].Devices)
	require.Equal(t, []fsm.LogEntry{{Kind: fsm.LogDevice, Name: "panda-0002", At: at, Source: "api",
		Message: `comments set to "flaky sdcard"`}}, rec.notes[0].Logs)

	before := snapshotBytes(t, f)
	res := apply(t, f, 3, fsm.CmdDeviceSetComments, fsm.DeviceSetComments{Header: fsm.Header{At: at}, Device: "panda-9999", Comments: "x"})
	require.ErrorIs(t, res.Error(), fsm.ErrUnknownDevice)
	requireState(t, before, f)
	require.Len(t, rec.notes, 1, "a refused command notified")
}

func TestApply_DeviceSetEnvironment(t *testing.T) {
	tests := []struct {
		name    string
		device  string
		env     string
		wantErr error
		want    string
	}{
		{"set", "panda-0001", "staging", nil, "staging"},
		{"clear", "panda-0001", "", nil, ""},
		{"32 characters", "panda-0001", strings.Repeat("e", 32), nil, strings.Repeat("e", 32)},
		{"33 characters", "panda-0001", strings.Repeat("e", 33), fsm.ErrInvalid, "prod"},
		{"unknown device", "panda-9999", "staging", fsm.ErrUnknownDevice, "prod"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, rec := testFSMNotify(t)
			syncSample(t, f)
			applyOK(t, f, 2, fsm.CmdDeviceSetEnvironment, fsm.DeviceSetEnvironment{Header: fsm.Header{At: t0}, Device: "panda-0001", Environment: "prod"})
			rec.notes = nil

			res := apply(t, f, 3, fsm.CmdDeviceSetEnvironment, fsm.DeviceSetEnvironment{Header: fsm.Header{At: t0}, Device: tc.device, Environment: tc.env})
			if tc.wantErr != nil {
				require.ErrorIs(t, res.Error(), tc.wantErr)
				require.Empty(t, rec.notes)
			} else {
				require.NoError(t, res.Error())
				require.Len(t, rec.logs(), 1)
			}
			f.Read(func(s *fsm.State) { require.Equal(t, tc.want, s.Devices["panda-0001"].Environment) })
		})
	}
}

func TestApply_LogAppend(t *testing.T) {
	f, rec := testFSMNotify(t)
	at := t0.Add(time.Hour)
	earlier := t0.Add(-time.Minute)
	before := snapshotBytes(t, f)

	applyOK(t, f, 1, fsm.CmdLogAppend, fsm.LogAppend{Header: fsm.Header{At: at}, Entries: []fsm.LogEntry{
		{Kind: fsm.LogDevice, Name: "panda-0001", Source: "syslog", Message: "kernel panic"},
		{Kind: fsm.LogRequest, Name: "17", At: earlier, Source: "bmm", Message: "power cycled"},
	}})
	require.Len(t, rec.notes, 1)
	require.Equal(t, uint64(1), rec.notes[0].Index)
	require.Equal(t, fsm.CmdLogAppend, rec.notes[0].Type)
	require.Equal(t, at, rec.notes[0].At)
	require.Equal(t, []fsm.LogEntry{
		{Kind: fsm.LogDevice, Name: "panda-0001", At: at, Source: "syslog", Message: "kernel panic"},
		{Kind: fsm.LogRequest, Name: "17", At: earlier, Source: "bmm", Message: "power cycled"},
	}, rec.notes[0].Logs, "a zero At takes the command's time; a given At is kept")
	require.Empty(t, rec.notes[0].Devices)

	// One bad kind refuses the whole command.
	res := apply(t, f, 2, fsm.CmdLogAppend, fsm.LogAppend{Header: fsm.Header{At: at}, Entries: []fsm.LogEntry{
		{Kind: fsm.LogDevice, Name: "panda-0001", Message: "fine"},
		{Kind: "server", Name: "x", Message: "bad"},
	}})
	require.ErrorIs(t, res.Error(), fsm.ErrInvalid)
	require.Len(t, rec.notes, 1)

	// Log lines are not state.
	requireState(t, before, f)
}

func TestApply_DeviceSetNextBoot(t *testing.T) {
	f := testFSM(t)
	syncSample(t, f)
	applyOK(t, f, 2, fsm.CmdDeviceSetNextBoot, fsm.DeviceSetNextBoot{Header: fsm.Header{At: t0}, Device: "panda-0001", BootConfig: `{"b2gbase": "x"}`})
	f.Read(func(s *fsm.State) {
		d := s.Devices["panda-0001"]
		require.Equal(t, `{"b2gbase": "x"}`, d.NextBootConfig)
		require.Empty(t, d.NextImage, "the next image is left as it is")
	})
	before := snapshotBytes(t, f)
	res := apply(t, f, 3, fsm.CmdDeviceSetNextBoot, fsm.DeviceSetNextBoot{Header: fsm.Header{At: t0}, Device: "nosuch"})
	require.ErrorIs(t, res.Error(), fsm.ErrUnknownDevice)
	requireState(t, before, f)
}

func TestInventory_IPAddress(t *testing.T) {
	f := testFSM(t)
	inv := sampleInventory()
	inv.Devices[0].IPAddress = "127.1.1.1"
	applyOK(t, f, 1, fsm.CmdInventorySync, fsm.InventorySync{Header: fsm.Header{At: t0}, Inventory: inv, ShipIt: true})
	f.Read(func(s *fsm.State) {
		d := s.Devices[inv.Devices[0].Name]
		require.Equal(t, "127.1.1.1", d.Address())
		other := s.Devices[inv.Devices[1].Name]
		require.Equal(t, other.FQDN, other.Address(), "without an ip address the fqdn is used")
	})
	inv.Devices[0].IPAddress = "127.1.1.2"
	res := applyOK(t, f, 2, fsm.CmdInventorySync, fsm.InventorySync{Header: fsm.Header{At: t0}, Inventory: inv})
	var diff fsm.InventoryDiff
	require.NoError(t, res.Decode(&diff))
	require.Equal(t, []fsm.Change{{Op: "update", Kind: "device", Name: inv.Devices[0].Name, Fields: []string{"ip_address"}}}, diff.Changes)

	inv.Devices[0].IPAddress = "not-an-ip"
	res = apply(t, f, 3, fsm.CmdInventorySync, fsm.InventorySync{Header: fsm.Header{At: t0}, Inventory: inv})
	require.ErrorIs(t, res.Error(), fsm.ErrInvalid)
}

func TestApply_ServerHealth(t *testing.T) {
	f := testFSM(t)
	syncSample(t, f)
	applyOK(t, f, 2, fsm.CmdServerHealth, fsm.ServerHealth{Header: fsm.Header{At: t0}, Name: "mobile-imaging-001", Down: true})
	f.Read(func(s *fsm.State) { require.True(t, s.Servers["mobile-imaging-001"].Down) })
	applyOK(t, f, 3, fsm.CmdServerHealth, fsm.ServerHealth{Header: fsm.Header{At: t0}, Name: "mobile-imaging-001"})
	f.Read(func(s *fsm.State) { require.False(t, s.Servers["mobile-imaging-001"].Down) })
	res := apply(t, f, 4, fsm.CmdServerHealth, fsm.ServerHealth{Header: fsm.Header{At: t0}, Name: "nosuch", Down: true})
	require.ErrorIs(t, res.Error(), fsm.ErrUnknownServer)
}
