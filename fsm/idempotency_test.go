package fsm_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/fsm"
)

func TestIdempotency_Replay(t *testing.T) {
	f, rec := testFSMNotify(t)
	h := fsm.Header{At: t0, IdempotencyKey: "client-1"}
	applyOK(t, f, 1, fsm.CmdImageUpsert, fsm.ImageUpsert{Header: fsm.Header{At: t0}, Image: fsm.ImageSpec{Name: "b2g"}})

	create := fsm.PXEConfigUpsert{Header: h, Name: "panda-b2g", Contents: ptr("v1"), Create: true}
	first := applyOK(t, f, 2, fsm.CmdPXEConfigUpsert, create)
	var pc fsm.PXEConfig
	require.NoError(t, first.Decode(&pc))
	require.Equal(t, int64(1), pc.ID)
	after := snapshotBytes(t, f)

	// A retry of the same command at a later index returns the first
	// result instead of ErrExists, and changes nothing.
	second := apply(t, f, 3, fsm.CmdPXEConfigUpsert, create)
	require.Equal(t, first, second)
	requireState(t, after, f)
	require.Equal(t, uint64(3), f.AppliedIndex())

	// Without the key the same command is refused.
	create.IdempotencyKey = ""
	res := apply(t, f, 4, fsm.CmdPXEConfigUpsert, create)
	require.ErrorIs(t, res.Error(), fsm.ErrExists)

	// A keyed change replayed after another change is not applied again.
	modify := fsm.PXEConfigUpsert{Header: fsm.Header{At: t0, IdempotencyKey: "client-2"}, Name: "panda-b2g", Contents: ptr("v2")}
	applyOK(t, f, 5, fsm.CmdPXEConfigUpsert, modify)
	applyOK(t, f, 6, fsm.CmdPXEConfigUpsert, fsm.PXEConfigUpsert{Header: fsm.Header{At: t0}, Name: "panda-b2g", Contents: ptr("v3")})
	applyOK(t, f, 7, fsm.CmdPXEConfigUpsert, modify)
	f.Read(func(s *fsm.State) { require.Equal(t, "v3", s.PXEConfigs["panda-b2g"].Contents) })

	// A keyed failure is replayed as the same failure.
	applyOK(t, f, 8, fsm.CmdInventorySync, fsm.InventorySync{Header: fsm.Header{At: t0}, Inventory: sampleInventory()})
	rec.notes = nil
	comments := fsm.DeviceSetComments{Header: fsm.Header{At: t0, IdempotencyKey: "client-3"}, Device: "panda-0009", Comments: "x"}
	res = apply(t, f, 9, fsm.CmdDeviceSetComments, comments)
	require.ErrorIs(t, res.Error(), fsm.ErrUnknownDevice)
	res = apply(t, f, 10, fsm.CmdDeviceSetComments, comments)
	require.ErrorIs(t, res.Error(), fsm.ErrUnknownDevice)

	// A replay logs nothing: the first apply did.
	comments = fsm.DeviceSetComments{Header: fsm.Header{At: t0, IdempotencyKey: "client-4"}, Device: "panda-0001", Comments: "x"}
	applyOK(t, f, 11, fsm.CmdDeviceSetComments, comments)
	applyOK(t, f, 12, fsm.CmdDeviceSetComments, comments)
	require.Len(t, rec.logs(), 1)

	require.Equal(t, []string{"client-1", "client-2", "client-3", "client-4"}, fsm.IdempotencyKeys(f))
}

func TestIdempotency_Expiry(t *testing.T) {
	tests := []struct {
		name      string
		key       string
		retryIn   time.Duration // when the retry is applied, after the first
		wantFirst bool          // the retry returns the first result
	}{
		{"client key after 23h", "client-1", 23 * time.Hour, true},
		{"client key after 24h", "client-1", 24 * time.Hour, true},
		{"client key after 25h", "client-1", 25 * time.Hour, false},
		{"node key after 9m", fsm.AutoKeyPrefix + "node-a-1", 9 * time.Minute, true},
		{"node key after 11m", fsm.AutoKeyPrefix + "node-a-1", 11 * time.Minute, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := testFSM(t)
			create := fsm.PXEConfigUpsert{Header: fsm.Header{At: t0, IdempotencyKey: tc.key}, Name: "panda-b2g", Create: true}
			first := applyOK(t, f, 1, fsm.CmdPXEConfigUpsert, create)

			create.At = t0.Add(tc.retryIn)
			res := apply(t, f, 2, fsm.CmdPXEConfigUpsert, create)
			if tc.wantFirst {
				require.Equal(t, first, res)
			} else {
				require.ErrorIs(t, res.Error(), fsm.ErrExists, "an expired key is forgotten, so the retry runs again")
			}
			require.Equal(t, []string{tc.key}, fsm.IdempotencyKeys(f))
		})
	}
}

func TestIdempotency_Prune(t *testing.T) {
	f := testFSM(t)
	keyed := func(index uint64, at time.Time, key string) {
		applyOK(t, f, index, fsm.CmdImageUpsert, fsm.ImageUpsert{Header: fsm.Header{At: at, IdempotencyKey: key}, Image: fsm.ImageSpec{Name: "b2g"}})
	}
	keyed(1, t0, "client-1")
	keyed(2, t0, fsm.AutoKeyPrefix+"1")
	keyed(3, t0.Add(time.Hour), "client-2")
	keyed(4, t0.Add(time.Hour), fsm.AutoKeyPrefix+"2")
	require.Equal(t, []string{"client-1", "client-2", fsm.AutoKeyPrefix + "2"}, fsm.IdempotencyKeys(f),
		"node keys are kept for minutes")

	keyed(5, t0.Add(24*time.Hour+30*time.Minute), "client-3")
	require.Equal(t, []string{"client-2", "client-3", fsm.AutoKeyPrefix + "2"}, fsm.IdempotencyKeys(f),
		"client keys are kept for a day of command time")

	// Pruning survives a snapshot: the restored FSM forgets the same keys.
	g := restore(t, snapshotBytes(t, f))
	require.Equal(t, fsm.IdempotencyKeys(f), fsm.IdempotencyKeys(g))
}
