package fsm_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/fsm"
	"github.com/mozpool/mozpool/internal/testlog"
)

// t0 is the proposer time of the first command in most tests.
var t0 = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)

// testFSM returns an empty FSM that logs to t.
func testFSM(t *testing.T) *fsm.FSM {
	t.Helper()
	return fsm.New(fsm.Config{Logger: testlog.New(t)})
}

// recorder collects the notifications of an FSM. Notify runs synchronously
// on the Apply goroutine, so no lock is needed while tests apply from one
// goroutine.
type recorder struct{ notes []fsm.Notification }

func (r *recorder) logs() []fsm.LogEntry {
	var out []fsm.LogEntry
	for _, n := range r.notes {
		out = append(out, n.Logs...)
	}
	return out
}

// testFSMNotify returns an empty FSM whose notifications land in the recorder.
func testFSMNotify(t *testing.T) (*fsm.FSM, *recorder) {
	t.Helper()
	return testFSMWith(t, fsm.Config{})
}

// testFSMWith is testFSMNotify with the machines of cfg.
func testFSMWith(t *testing.T, cfg fsm.Config) (*fsm.FSM, *recorder) {
	t.Helper()
	rec := &recorder{}
	cfg.Logger = testlog.New(t)
	cfg.Notify = func(n fsm.Notification) { rec.notes = append(rec.notes, n) }
	return fsm.New(cfg), rec
}

// encode encodes a command or fails the test.
func encode(t *testing.T, typ fsm.CommandType, cmd any) []byte {
	t.Helper()
	b, err := fsm.Encode(typ, cmd)
	require.NoError(t, err)
	return b
}

// apply encodes cmd and applies it at the given log index.
func apply(t *testing.T, f *fsm.FSM, index uint64, typ fsm.CommandType, cmd any) fsm.Result {
	t.Helper()
	return f.ApplyCommand(index, encode(t, typ, cmd))
}

// applyOK applies cmd and requires that it succeeded.
func applyOK(t *testing.T, f *fsm.FSM, index uint64, typ fsm.CommandType, cmd any) fsm.Result {
	t.Helper()
	res := apply(t, f, index, typ, cmd)
	require.NoError(t, res.Error(), "apply %s at index %d", typ, index)
	return res
}

// makeLog wraps an encoded command in a Raft log entry.
func makeLog(index uint64, data []byte) *raft.Log {
	return &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: data}
}

// sampleInventory is a small valid lab: two imaging servers, one hardware
// type, four images (two hidden), their PXE configs and four pandas on two
// relay boards.
func sampleInventory() fsm.Inventory {
	const hwType, hwModel = "panda", "ES Rev B2"
	inv := fsm.Inventory{
		ImagingServers: []fsm.InventoryServer{
			{Name: "mobile-imaging-001", Rack: "rack-1"},
			{Name: "mobile-imaging-002", Rack: "rack-2"},
		},
		HardwareTypes: []fsm.InventoryHardwareType{{Type: hwType, Model: hwModel}},
		Images: []fsm.ImageSpec{
			{Name: "b2g", BootConfigKeys: []string{"b2gbase"}},
			{Name: "android", CanReuse: true, HasSUTAgent: true},
			{Name: "self-test", Hidden: true},
			{Name: "maintenance", Hidden: true},
		},
		PXEConfigs: []fsm.InventoryPXEConfig{
			{Name: "panda-b2g-1", Description: "b2g installer", Contents: "KERNEL b2g"},
			{Name: "panda-android-1", Description: "android installer", Contents: "KERNEL android"},
			{Name: "panda-selftest", Description: "self test", Contents: "KERNEL selftest"},
			{Name: "panda-maint", Description: "maintenance", Contents: "KERNEL maint"},
		},
		ImagePXEConfigs: []fsm.InventoryImagePXE{
			{Image: "b2g", HardwareType: hwType, HardwareModel: hwModel, PXEConfig: "panda-b2g-1"},
			{Image: "android", HardwareType: hwType, HardwareModel: hwModel, PXEConfig: "panda-android-1"},
			{Image: "self-test", HardwareType: hwType, HardwareModel: hwModel, PXEConfig: "panda-selftest"},
			{Image: "maintenance", HardwareType: hwType, HardwareModel: hwModel, PXEConfig: "panda-maint"},
		},
	}
	for i := 1; i <= 4; i++ {
		inv.Devices = append(inv.Devices, fsm.InventoryDevice{
			Name:          fmt.Sprintf("panda-%04d", i),
			FQDN:          fmt.Sprintf("panda-%04d.lab", i),
			InventoryID:   int64(100 + i),
			MAC:           fmt.Sprintf("00:11:22:33:44:%02X", i),
			ImagingServer: fmt.Sprintf("mobile-imaging-%03d", (i+1)/2),
			RelayInfo:     fmt.Sprintf("relay-%d.lab:bank1:relay%d", (i+1)/2, 2-i%2),
			HardwareType:  hwType,
			HardwareModel: hwModel,
		})
	}
	return inv
}

// syncSample applies the sample inventory at index 1 and time t0.
func syncSample(t *testing.T, f *fsm.FSM) {
	t.Helper()
	applyOK(t, f, 1, fsm.CmdInventorySync, fsm.InventorySync{Header: fsm.Header{At: t0}, Inventory: sampleInventory()})
}

// memSink is a raft.SnapshotSink in memory.
type memSink struct {
	bytes.Buffer
	closed, cancelled bool
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Close() error  { s.closed = true; return nil }
func (s *memSink) Cancel() error { s.cancelled = true; return nil }

var _ raft.SnapshotSink = (*memSink)(nil)

// snapshotBytes takes a snapshot of f, persists it into memory and returns
// its records uncompressed (which Restore reads too), so that a failed
// comparison can show them (snapshotText).
func snapshotBytes(t *testing.T, f *fsm.FSM) []byte {
	t.Helper()
	return uncompressed(t, persistedBytes(t, f))
}

// persistedBytes takes a snapshot of f and returns what Persist writes.
func persistedBytes(t *testing.T, f *fsm.FSM) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	require.NoError(t, err)
	defer snap.Release()
	sink := &memSink{}
	require.NoError(t, snap.Persist(sink))
	require.True(t, sink.closed, "Persist must close the sink")
	require.False(t, sink.cancelled, "Persist cancelled the sink")
	return sink.Bytes()
}

// uncompressed returns the records of a persisted snapshot: one zstd frame.
func uncompressed(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := zstd.NewReader(nil)
	require.NoError(t, err)
	defer zr.Close()
	out, err := zr.DecodeAll(b, nil)
	require.NoError(t, err, "a persisted snapshot is one zstd frame")
	return out
}

// snapshotText renders snapshot bytes one record per line ("type json") so
// that a failed comparison shows a readable diff. Bytes it cannot parse are
// rendered in hex.
func snapshotText(b []byte) string {
	var sb strings.Builder
	for len(b) > 0 {
		n, k := binary.Uvarint(b[1:])
		if k <= 0 || uint64(len(b)-1-k) < n {
			fmt.Fprintf(&sb, "garbage %x\n", b)
			break
		}
		fmt.Fprintf(&sb, "%d %s\n", b[0], b[1+k:1+k+int(n)])
		b = b[1+k+int(n):]
	}
	return sb.String()
}

// requireState requires that f's snapshot equals want, byte for byte, but
// for the applied index in its header: the state is what is compared.
func requireState(t *testing.T, want []byte, f *fsm.FSM, msgAndArgs ...any) {
	t.Helper()
	got, err := fsm.WithoutIndex(snapshotBytes(t, f))
	require.NoError(t, err)
	want, err = fsm.WithoutIndex(want)
	require.NoError(t, err)
	if bytes.Equal(want, got) {
		return
	}
	// Show only the records that differ: the whole state is long.
	wantLines := strings.Split(snapshotText(want), "\n")
	gotLines := strings.Split(snapshotText(got), "\n")
	var diff []string
	for _, l := range wantLines {
		if !slices.Contains(gotLines, l) {
			diff = append(diff, "- "+l)
		}
	}
	for _, l := range gotLines {
		if !slices.Contains(wantLines, l) {
			diff = append(diff, "+ "+l)
		}
	}
	require.Fail(t, "snapshots differ (- want, + got):\n"+strings.Join(diff, "\n"), msgAndArgs...)
}

// restore returns a new FSM restored from snapshot bytes.
func restore(t *testing.T, b []byte) *fsm.FSM {
	t.Helper()
	f := testFSM(t)
	require.NoError(t, f.Restore(io.NopCloser(bytes.NewReader(b))))
	return f
}

func TestApply_RaftLog(t *testing.T) {
	f := testFSM(t)
	res := f.Apply(makeLog(1, encode(t, fsm.CmdImageUpsert, fsm.ImageUpsert{
		Header: fsm.Header{At: t0}, Image: fsm.ImageSpec{Name: "b2g"},
	})))
	require.IsType(t, fsm.Result{}, res)
	require.NoError(t, res.(fsm.Result).Error())
	require.Equal(t, uint64(1), f.AppliedIndex())

	// Entries that are not commands (no-ops, configuration changes) are
	// not the FSM's business.
	res = f.Apply(&raft.Log{Index: 2, Type: raft.LogNoop})
	require.Equal(t, fsm.Result{}, res)
}

// TestApply_Corrupt checks that a corrupt or unknown entry panics
// rather than let replicas diverge; an unknown entry that older nodes may skip
// is skipped.
func TestApply_Corrupt(t *testing.T) {
	tests := []struct {
		name string
		data []byte
	}{
		{"empty entry", nil},
		{"invalid type", []byte{byte(fsm.CmdInvalid), '{', '}'}},
		{"bad json for a known type", append([]byte{byte(fsm.CmdImageUpsert)}, "{not json"...)},
		{"wrong json type for a field", append([]byte{byte(fsm.CmdDeviceSetComments)}, `{"device": 7}`...)},
		{"unknown type without ignore bit", []byte{0x7e, '{', '}'}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := testFSM(t)
			require.Panics(t, func() { f.ApplyCommand(1, tc.data) })
		})
	}
}

func TestApply_IgnoreUnknown(t *testing.T) {
	f := testFSM(t)
	syncSample(t, f)
	before := snapshotBytes(t, f)

	res := f.ApplyCommand(2, []byte{byte(fsm.IgnoreUnknown | 0x7e), '{', '}'})
	require.Equal(t, fsm.Result{}, res)
	require.Equal(t, uint64(2), f.AppliedIndex())
	requireState(t, before, f, "state changed by an ignored command")

	// The bit on a known type does not stop it from being applied.
	res = apply(t, f, 3, fsm.CmdImageUpsert|fsm.IgnoreUnknown, fsm.ImageUpsert{
		Header: fsm.Header{At: t0}, Image: fsm.ImageSpec{Name: "new-image"},
	})
	require.NoError(t, res.Error())
	f.Read(func(s *fsm.State) { require.Contains(t, s.Images, "new-image") })
}

func TestEncodeDecode(t *testing.T) {
	in := fsm.DeviceSetComments{Header: fsm.Header{At: t0, IdempotencyKey: "k"}, Device: "panda-0001", Comments: "flaky"}
	b, err := fsm.Encode(fsm.CmdDeviceSetComments, in)
	require.NoError(t, err)
	require.Equal(t, byte(fsm.CmdDeviceSetComments), b[0])

	var out fsm.DeviceSetComments
	typ, err := fsm.Decode(b, &out)
	require.NoError(t, err)
	require.Equal(t, fsm.CmdDeviceSetComments, typ)
	require.Equal(t, in, out)

	typ, err = fsm.Decode(b, nil)
	require.NoError(t, err)
	require.Equal(t, fsm.CmdDeviceSetComments, typ)

	_, err = fsm.Decode(nil, &out)
	require.ErrorIs(t, err, fsm.ErrShortCommand)

	require.Equal(t, "device_set_comments", fsm.CmdDeviceSetComments.String())
	require.Equal(t, "device_set_comments", (fsm.CmdDeviceSetComments | fsm.IgnoreUnknown).String())
	require.Equal(t, "command(126)", fsm.CommandType(126).String())
}

// mixedLog builds a deterministic log of n commands of every type, some of
// which fail, some of which carry idempotency keys and some of which repeat.
func mixedLog(t *testing.T, n int) [][]byte {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	at := t0
	inv := sampleInventory()
	devName := func() string { return fmt.Sprintf("panda-%04d", 1+rng.IntN(5)) } // panda-0005 does not exist
	var log [][]byte
	add := func(typ fsm.CommandType, cmd any) { log = append(log, encode(t, typ, cmd)) }
	add(fsm.CmdInventorySync, fsm.InventorySync{Header: fsm.Header{At: at}, Inventory: inv})
	for len(log) < n {
		at = at.Add(time.Duration(rng.IntN(3600)) * time.Second)
		h := fsm.Header{At: at}
		if rng.IntN(4) == 0 {
			h.IdempotencyKey = fmt.Sprintf("key-%d", rng.IntN(8))
		}
		switch rng.IntN(9) {
		case 0:
			node := rng.IntN(3)
			add(fsm.CmdServerUpsert, fsm.ServerUpsert{Header: h, Name: fmt.Sprintf("mobile-imaging-%03d", 1+rng.IntN(3)),
				NodeID: fmt.Sprintf("node-%d", node), RaftAddr: fmt.Sprintf("10.0.0.%d:8300", node), HTTPAddr: fmt.Sprintf("http://10.0.0.%d:8010", node)})
		case 1:
			add(fsm.CmdServerRemove, fsm.ServerRemove{Header: h, NodeID: fmt.Sprintf("node-%d", rng.IntN(4))})
		case 2:
			inv.Devices[rng.IntN(len(inv.Devices))].FQDN = fmt.Sprintf("host-%d.lab", rng.IntN(100))
			if rng.IntN(3) == 0 {
				inv.Devices = inv.Devices[:len(inv.Devices)-1]
			}
			add(fsm.CmdInventorySync, fsm.InventorySync{Header: h, Inventory: inv})
		case 3:
			add(fsm.CmdImageUpsert, fsm.ImageUpsert{Header: h, Image: fsm.ImageSpec{Name: fmt.Sprintf("img-%d", rng.IntN(4)), CanReuse: rng.IntN(2) == 0}})
		case 4:
			desc := fmt.Sprintf("d%d", rng.IntN(10))
			add(fsm.CmdPXEConfigUpsert, fsm.PXEConfigUpsert{Header: h, Name: fmt.Sprintf("pxe-%d", rng.IntN(3)), Description: &desc, Create: rng.IntN(2) == 0})
		case 5:
			add(fsm.CmdImagePXEConfigSet, fsm.ImagePXEConfigSet{Header: h, Image: fmt.Sprintf("img-%d", rng.IntN(4)),
				HardwareType: "panda", HardwareModel: "ES Rev B2", PXEConfig: fmt.Sprintf("pxe-%d", rng.IntN(3))})
		case 6:
			add(fsm.CmdDeviceSetComments, fsm.DeviceSetComments{Header: h, Device: devName(), Comments: fmt.Sprintf("c%d", rng.IntN(100))})
		case 7:
			add(fsm.CmdDeviceSetEnvironment, fsm.DeviceSetEnvironment{Header: h, Device: devName(), Environment: fmt.Sprintf("env-%d", rng.IntN(3))})
		case 8:
			add(fsm.CmdLogAppend, fsm.LogAppend{Header: h, Entries: []fsm.LogEntry{{Kind: fsm.LogDevice, Name: devName(), Source: "syslog", Message: "hello"}}})
		}
	}
	return log
}

func TestApply_Deterministic(t *testing.T) {
	log := mixedLog(t, 60)
	f1, rec1 := testFSMNotify(t)
	f2, rec2 := testFSMNotify(t)
	var res1, res2 []fsm.Result
	for i, b := range log {
		res1 = append(res1, f1.Apply(makeLog(uint64(i+1), b)).(fsm.Result))
	}
	for i, b := range log {
		res2 = append(res2, f2.Apply(makeLog(uint64(i+1), b)).(fsm.Result))
	}
	require.Equal(t, res1, res2, "results differ")
	require.Equal(t, rec1.notes, rec2.notes, "notifications differ")
	requireState(t, snapshotBytes(t, f1), f2, "states differ")
	require.Equal(t, uint64(len(log)), f2.AppliedIndex())

	// The log must exercise both outcomes, or the test proves little.
	var failed int
	for _, r := range res1 {
		if r.Error() != nil {
			failed++
		}
	}
	require.Positive(t, failed, "no command failed")
	require.Less(t, failed, len(res1), "every command failed")

	// A node that restores f1's snapshot holds the same state.
	requireState(t, snapshotBytes(t, f1), restore(t, snapshotBytes(t, f1)))
}
