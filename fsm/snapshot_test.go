package fsm_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/fsm"
	"github.com/mozpool/mozpool/requests"
)

// requireEqualState requires that two FSMs hold equal states, map by map.
func requireEqualState(t *testing.T, want, got *fsm.FSM) {
	t.Helper()
	want.Read(func(w *fsm.State) {
		got.Read(func(g *fsm.State) {
			require.Equal(t, w.Servers, g.Servers, "servers")
			require.Equal(t, w.HardwareTypes, g.HardwareTypes, "hardware types")
			require.Equal(t, w.Images, g.Images, "images")
			require.Equal(t, w.PXEConfigs, g.PXEConfigs, "pxe configs")
			require.Equal(t, w.ImagePXEConfigs, g.ImagePXEConfigs, "image pxe configs")
			require.Equal(t, w.Devices, g.Devices, "devices")
			require.Equal(t, w.Requests, g.Requests, "requests")
			require.Equal(t, w.RelayBoards, g.RelayBoards, "relay boards")
			require.Equal(t, w.NextID, g.NextID, "counters")
		})
	})
	require.Equal(t, fsm.IdempotencyKeys(want), fsm.IdempotencyKeys(got), "idempotency keys")
}

func TestSnapshotRestore(t *testing.T) {
	h := fsm.Header{At: t0}
	tests := []struct {
		name  string
		setup func(t *testing.T, f *fsm.FSM)
		// check requires that the record type under test is present.
		check func(t *testing.T, s *fsm.State)
	}{
		{
			name:  "empty",
			setup: func(t *testing.T, f *fsm.FSM) {},
			check: func(t *testing.T, s *fsm.State) { require.Empty(t, s.Devices) },
		},
		{
			name: "servers",
			setup: func(t *testing.T, f *fsm.FSM) {
				applyOK(t, f, 1, fsm.CmdServerUpsert, fsm.ServerUpsert{Header: h, Name: "mobile-imaging-001", NodeID: "node-a",
					Rack: "rack-1", RaftAddr: "10.0.0.1:8300", HTTPAddr: "http://10.0.0.1:8010", GossipAddr: "10.0.0.1:8301"})
				applyOK(t, f, 2, fsm.CmdServerUpsert, fsm.ServerUpsert{Header: h, Name: "mobile-imaging-002", NodeID: "node-b"})
			},
			check: func(t *testing.T, s *fsm.State) {
				require.Len(t, s.Servers, 2)
				require.Equal(t, "10.0.0.1:8301", s.Servers["mobile-imaging-001"].GossipAddr)
				require.NotNil(t, s.ServerByNode("node-b"))
			},
		},
		{
			name: "hardware types",
			setup: func(t *testing.T, f *fsm.FSM) {
				applyOK(t, f, 1, fsm.CmdInventorySync, fsm.InventorySync{Header: h, Inventory: fsm.Inventory{
					HardwareTypes: []fsm.InventoryHardwareType{{Type: "panda", Model: "ES Rev B2"}, {Type: "tegra", Model: "250"}},
				}})
			},
			check: func(t *testing.T, s *fsm.State) { require.Len(t, s.HardwareTypes, 2) },
		},
		{
			name: "images",
			setup: func(t *testing.T, f *fsm.FSM) {
				applyOK(t, f, 1, fsm.CmdImageUpsert, fsm.ImageUpsert{Header: h, Image: fsm.ImageSpec{Name: "b2g", BootConfigKeys: []string{"b2gbase"}}})
				applyOK(t, f, 2, fsm.CmdImageUpsert, fsm.ImageUpsert{Header: h, Image: fsm.ImageSpec{Name: "android", CanReuse: true, Hidden: true, HasSUTAgent: true}})
			},
			check: func(t *testing.T, s *fsm.State) {
				require.Len(t, s.Images, 2)
				require.Equal(t, []string{"b2gbase"}, s.Images["b2g"].BootConfigKeys)
			},
		},
		{
			name: "pxe configs",
			setup: func(t *testing.T, f *fsm.FSM) {
				applyOK(t, f, 1, fsm.CmdPXEConfigUpsert, fsm.PXEConfigUpsert{Header: h, Name: "panda-b2g", Description: ptr("b2g"),
					Contents: ptr("DEFAULT b2g\nKERNEL vmlinuz\n"), Create: true})
				applyOK(t, f, 2, fsm.CmdPXEConfigUpsert, fsm.PXEConfigUpsert{Header: h, Name: "panda-old", Active: ptr(false), Create: true})
			},
			check: func(t *testing.T, s *fsm.State) {
				require.Len(t, s.PXEConfigs, 2)
				require.False(t, s.PXEConfigs["panda-old"].Active)
			},
		},
		{
			name: "image pxe configs",
			setup: func(t *testing.T, f *fsm.FSM) {
				inv := sampleInventory()
				inv.Devices = nil
				applyOK(t, f, 1, fsm.CmdInventorySync, fsm.InventorySync{Header: h, Inventory: inv})
			},
			check: func(t *testing.T, s *fsm.State) {
				require.Len(t, s.ImagePXEConfigs, 4)
				require.Equal(t, "panda-android-1", s.PXEConfigFor("android", fsm.HardwareKey("panda", "ES Rev B2")))
			},
		},
		{
			name: "devices",
			setup: func(t *testing.T, f *fsm.FSM) {
				syncSample(t, f)
				applyOK(t, f, 2, fsm.CmdDeviceSetComments, fsm.DeviceSetComments{Header: h, Device: "panda-0001", Comments: "flaky"})
				applyOK(t, f, 3, fsm.CmdDeviceSetEnvironment, fsm.DeviceSetEnvironment{Header: h, Device: "panda-0002", Environment: "staging"})
				// Fields no command sets yet must survive too.
				f.Read(func(s *fsm.State) {
					d := s.Devices["panda-0003"]
					d.Counters = map[string]int{"pxe_booting": 2, "pinging": 1}
					d.Image, d.BootConfig, d.NextImage, d.NextBootConfig = "b2g", `{"b2gbase":"http://x"}`, "android", "{}"
					d.RequestID, d.LastUsed, d.Generation = 7, t0.Add(time.Hour), 9
					d.StateDeadline = time.Time{}
				})
			},
			check: func(t *testing.T, s *fsm.State) {
				require.Len(t, s.Devices, 4)
				require.Equal(t, map[string]int{"pxe_booting": 2, "pinging": 1}, s.Devices["panda-0003"].Counters)
				require.True(t, s.Devices["panda-0003"].StateDeadline.IsZero())
			},
		},
		{
			name: "requests",
			setup: func(t *testing.T, f *fsm.FSM) {
				fsm.PutRequest(f, &fsm.Request{ID: 1, ImagingServer: "mobile-imaging-001", RequestedDevice: "any", Assignee: "slave-1",
					Expires: t0.Add(time.Hour), Image: "b2g", BootConfig: `{"b2gbase":"http://x"}`, Environment: "prod",
					State: "contacting_lifeguard", StateDeadline: t0.Add(time.Minute), StateEntered: t0, Counters: map[string]int{"contacting_lifeguard": 1},
					Generation: 3, Created: t0, Device: "panda-0001", ImagingResult: "complete"})
				fsm.PutRequest(f, &fsm.Request{ID: 2, State: string(requests.StateClosed), Created: t0, Expires: t0})
			},
			check: func(t *testing.T, s *fsm.State) {
				require.Len(t, s.Requests, 2)
				require.Equal(t, "panda-0001", s.Requests[1].Device)
			},
		},
		{
			name: "relay boards",
			setup: func(t *testing.T, f *fsm.FSM) {
				applyOK(t, f, 1, fsm.CmdInventorySync, fsm.InventorySync{Header: h, Inventory: fsm.Inventory{
					ImagingServers: []fsm.InventoryServer{{Name: "mobile-imaging-001"}},
					RelayBoards: []fsm.InventoryRelayBoard{
						{FQDN: "relay-1.lab", ImagingServer: "mobile-imaging-001"},
						{Name: "rb2", FQDN: "relay-2.lab", ImagingServer: "mobile-imaging-001"},
					},
				}})
			},
			check: func(t *testing.T, s *fsm.State) {
				require.Len(t, s.RelayBoards, 2)
				require.Equal(t, "relay-2.lab", s.RelayBoards["rb2"].FQDN)
			},
		},
		{
			name: "counters",
			setup: func(t *testing.T, f *fsm.FSM) {
				// Create and delete: only the counter remembers the ids.
				syncSample(t, f)
				inv := sampleInventory()
				inv.Devices = nil
				applyOK(t, f, 2, fsm.CmdInventorySync, fsm.InventorySync{Header: h, Inventory: inv, ShipIt: true})
			},
			check: func(t *testing.T, s *fsm.State) {
				require.Empty(t, s.Devices)
				require.Equal(t, int64(4), s.NextID["device"])
			},
		},
		{
			name: "idempotency entries",
			setup: func(t *testing.T, f *fsm.FSM) {
				applyOK(t, f, 1, fsm.CmdImageUpsert, fsm.ImageUpsert{Header: fsm.Header{At: t0, IdempotencyKey: "client-1"}, Image: fsm.ImageSpec{Name: "b2g"}})
				apply(t, f, 2, fsm.CmdDeviceSetComments, fsm.DeviceSetComments{Header: fsm.Header{At: t0, IdempotencyKey: "client-2"}, Device: "nope"})
				applyOK(t, f, 3, fsm.CmdImageUpsert, fsm.ImageUpsert{Header: fsm.Header{At: t0, IdempotencyKey: fsm.AutoKeyPrefix + "1"}, Image: fsm.ImageSpec{Name: "b2g"}})
			},
			check: func(t *testing.T, s *fsm.State) {},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := testFSM(t)
			tc.setup(t, f)
			f.Read(func(s *fsm.State) { tc.check(t, s) })
			b := snapshotBytes(t, f)

			g := restore(t, b)
			g.Read(func(s *fsm.State) { tc.check(t, s) })
			requireEqualState(t, f, g)
			requireState(t, b, g, "snapshot of the restored state")

			// Restore replaces a state; it does not merge into it.
			h := testFSM(t)
			syncSample(t, h)
			applyOK(t, h, 2, fsm.CmdImageUpsert, fsm.ImageUpsert{Header: fsm.Header{At: t0, IdempotencyKey: "other"}, Image: fsm.ImageSpec{Name: "x"}})
			require.NoError(t, h.Restore(io.NopCloser(bytes.NewReader(b))))
			requireEqualState(t, f, h)
		})
	}
}

// TestSnapshotRestore_Idempotency checks that a restored FSM still answers a
// retried command with the first result.
func TestSnapshotRestore_Idempotency(t *testing.T) {
	f := testFSM(t)
	create := fsm.PXEConfigUpsert{Header: fsm.Header{At: t0, IdempotencyKey: "client-1"}, Name: "panda-b2g", Create: true}
	first := applyOK(t, f, 1, fsm.CmdPXEConfigUpsert, create)

	g := restore(t, snapshotBytes(t, f))
	require.Equal(t, first, apply(t, g, 2, fsm.CmdPXEConfigUpsert, create))
}

// record encodes one snapshot record as Persist writes it.
func record(typ byte, body string) []byte {
	b := []byte{typ}
	b = binary.AppendUvarint(b, uint64(len(body)))
	return append(b, body...)
}

func TestRestore_Errors(t *testing.T) {
	header := record(1, `{"version":1}`)
	tests := []struct {
		name    string
		data    []byte
		wantErr error // nil: any error
	}{
		{"wrong version", record(1, `{"version":99}`), fsm.ErrSnapshotVersion},
		{"version zero", record(1, `{}`), fsm.ErrSnapshotVersion},
		{"empty", nil, nil},
		{"garbage", []byte("this is not a snapshot"), nil},
		{"no header", record(4, `{"id":1,"name":"b2g"}`), nil},
		{"header twice", append(append([]byte{}, header...), header...), nil},
		{"truncated record", append(append([]byte{}, header...), record(4, `{"id":1,"name":"b2g"}`)[:8]...), nil},
		{"bad json", append(append([]byte{}, header...), record(4, `{"id":`)...), nil},
		{"unknown record type", append(append([]byte{}, header...), record(200, `{}`)...), nil},
		{"huge length", append(append([]byte{}, header...), 4, 0xff, 0xff, 0xff, 0xff, 0x7f), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := testFSM(t)
			syncSample(t, f)
			before := snapshotBytes(t, f)

			err := f.Restore(io.NopCloser(bytes.NewReader(tc.data)))
			require.Error(t, err)
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
			}
			requireState(t, before, f, "a failed restore changed the state")
		})
	}
}

// closeRecorder records whether Restore closed its reader.
type closeRecorder struct {
	io.Reader
	closed bool
}

func (c *closeRecorder) Close() error { c.closed = true; return nil }

func TestRestore_ClosesReader(t *testing.T) {
	for _, data := range [][]byte{snapshotBytes(t, testFSM(t)), []byte("garbage")} {
		rc := &closeRecorder{Reader: bytes.NewReader(data)}
		_ = testFSM(t).Restore(rc)
		require.True(t, rc.closed)
	}
}

// failSink fails every write.
type failSink struct{ memSink }

func (s *failSink) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestPersist_WriteError(t *testing.T) {
	f := testFSM(t)
	syncSample(t, f)
	snap, err := f.Snapshot()
	require.NoError(t, err)
	sink := &failSink{}
	require.Error(t, snap.Persist(sink))
	require.True(t, sink.cancelled, "a failed persist must cancel the sink")
}

// TestSnapshot_Isolated checks that a snapshot is not affected by commands
// applied after it was taken.
func TestSnapshot_Isolated(t *testing.T) {
	f := testFSM(t)
	syncSample(t, f)
	want := snapshotBytes(t, f)
	snap, err := f.Snapshot()
	require.NoError(t, err)
	applyOK(t, f, 2, fsm.CmdDeviceSetComments, fsm.DeviceSetComments{Header: fsm.Header{At: t0}, Device: "panda-0001", Comments: "later"})

	sink := &memSink{}
	require.NoError(t, snap.Persist(sink))
	require.Equal(t, snapshotText(want), snapshotText(uncompressed(t, sink.Bytes())))
}

// TestSnapshot_Compressed checks that Persist writes a zstd frame, smaller
// than the records, that restores to the same state; and that snapshots
// written before compression (the records as they are) still restore.
func TestSnapshot_Compressed(t *testing.T) {
	f := testFSM(t)
	syncSample(t, f)
	for i := 1; i <= 50; i++ {
		applyOK(t, f, uint64(1+i), fsm.CmdDeviceSetComments, fsm.DeviceSetComments{Header: fsm.Header{At: t0}, Device: "panda-0001", Comments: fmt.Sprint("comment ", i)})
	}
	persisted := persistedBytes(t, f)
	raw := uncompressed(t, persisted)
	require.Equal(t, []byte{0x28, 0xb5, 0x2f, 0xfd}, persisted[:4], "a zstd frame")
	require.Less(t, len(persisted), len(raw)/2, "compressed")

	for name, data := range map[string][]byte{"compressed": persisted, "uncompressed": raw} {
		t.Run(name, func(t *testing.T) {
			g := restore(t, data)
			requireEqualState(t, f, g)
			require.Equal(t, f.AppliedIndex(), g.AppliedIndex())
			require.NoError(t, fsm.ValidateSnapshot(bytes.NewReader(data)))
		})
	}

	// A backup taken compressed loses its index like any other.
	g := restoreWithoutIndex(t, f, persisted)

	// A damaged or cut frame is refused and changes nothing.
	before := snapshotBytes(t, g)
	for _, bad := range [][]byte{persisted[:len(persisted)/2], append(append([]byte{}, persisted[:8]...), bytes.Repeat([]byte{0xff}, 64)...)} {
		require.Error(t, g.Restore(io.NopCloser(bytes.NewReader(bad))))
		requireState(t, before, g, "a failed restore changed the state")
		_, err := fsm.WithoutIndex(bad)
		require.ErrorIs(t, err, fsm.ErrInvalid)
		require.ErrorIs(t, fsm.ValidateSnapshot(bytes.NewReader(bad)), fsm.ErrInvalid)
	}
}

// TestRestore_AppliedIndex checks that a restored FSM knows the index its
// state reflects: a node restarted from a snapshot that holds everything
// must not believe it is behind until the next command arrives.
func TestRestore_AppliedIndex(t *testing.T) {
	f := testFSM(t)
	applyOK(t, f, 7, fsm.CmdImageUpsert, fsm.ImageUpsert{Header: fsm.Header{At: t0}, Image: fsm.ImageSpec{Name: "b2g"}})
	applyOK(t, f, 12, fsm.CmdImageUpsert, fsm.ImageUpsert{Header: fsm.Header{At: t0}, Image: fsm.ImageSpec{Name: "android"}})
	require.Equal(t, uint64(12), f.AppliedIndex())

	g := restore(t, snapshotBytes(t, f))
	require.Equal(t, uint64(12), g.AppliedIndex(), "applied index after a restore")
	require.NoError(t, g.WaitApplied(t.Context(), 12), "WaitApplied of an index the snapshot holds")
}

// restoreWithoutIndex installs backup, f's snapshot stripped of its index,
// on a new FSM at index 3 and checks that it then holds f's state and
// still its own index; it returns that FSM.
func restoreWithoutIndex(t *testing.T, f *fsm.FSM, backup []byte) *fsm.FSM {
	t.Helper()
	stripped, err := fsm.WithoutIndex(backup)
	require.NoError(t, err)
	g := testFSM(t)
	applyOK(t, g, 3, fsm.CmdImageUpsert, fsm.ImageUpsert{Header: fsm.Header{At: t0}, Image: fsm.ImageSpec{Name: "x"}})
	require.NoError(t, g.Restore(io.NopCloser(bytes.NewReader(stripped))))
	requireEqualState(t, f, g)
	require.Equal(t, uint64(3), g.AppliedIndex(), "a backup names no index")
	return g
}

// TestWithoutIndex checks that a backup about to be installed loses its
// index, and nothing else: restoring it leaves the applied index alone.
func TestWithoutIndex(t *testing.T) {
	f := testFSM(t)
	syncSample(t, f)
	applyOK(t, f, 40, fsm.CmdImageUpsert, fsm.ImageUpsert{Header: fsm.Header{At: t0}, Image: fsm.ImageSpec{Name: "late"}})
	b := snapshotBytes(t, f)

	restoreWithoutIndex(t, f, b)

	for _, bad := range [][]byte{nil, []byte("garbage"), record(1, `{"version":1}`)[:3], record(4, `{}`)} {
		_, err := fsm.WithoutIndex(bad)
		require.ErrorIs(t, err, fsm.ErrInvalid, "%q", bad)
	}
}

// A version 1 snapshot (before the queue) still restores: its requests
// simply wait in no queue until their next timeout puts them there.
func TestRestore_Version1(t *testing.T) {
	f := testFSM(t)
	syncSample(t, f)
	b := snapshotBytes(t, f)
	var v1 []byte
	v1 = append(v1, record(1, `{"version":1}`)...)
	// Skip the version 2 header record; keep the rest.
	n, k := binary.Uvarint(b[1:])
	v1 = append(v1, b[1+k+int(n):]...)
	g := fsm.New(fsm.Config{})
	require.NoError(t, g.Restore(io.NopCloser(bytes.NewReader(v1))))
	var devices int
	g.Read(func(s *fsm.State) { devices = len(s.Devices) })
	require.Equal(t, 4, devices)
}
