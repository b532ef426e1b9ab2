package fsm_test

import (
	"bytes"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/fsm"
)

// lab10k is an FSM holding 10,000 devices, each with a comment set by a
// keyed command (so the idempotency table holds 10,000 entries too).
func lab10k(b *testing.B) *fsm.FSM {
	b.Helper()
	inv := sampleInventory()
	inv.Devices = nil
	for i := 1; i <= 10000; i++ {
		inv.Devices = append(inv.Devices, fsm.InventoryDevice{
			Name: fmt.Sprintf("panda-%05d", i), FQDN: fmt.Sprintf("panda-%05d.lab", i), InventoryID: int64(i),
			MAC: fmt.Sprintf("02163e%06x", i), ImagingServer: "mobile-imaging-001",
			RelayInfo: fmt.Sprintf("relay-1.lab:bank%d:relay%d", i%4+1, i%8+1), HardwareType: "panda", HardwareModel: "ES Rev B2",
		})
	}
	f := fsm.New(fsm.Config{})
	enc := func(t fsm.CommandType, c fsm.Command) []byte {
		data, err := fsm.Encode(t, c)
		require.NoError(b, err)
		return data
	}
	require.NoError(b, f.ApplyCommand(1, enc(fsm.CmdInventorySync, &fsm.InventorySync{Header: fsm.Header{At: t0}, Inventory: inv, ShipIt: true})).Error())
	for i := 1; i <= 10000; i++ {
		h := fsm.Header{At: t0.Add(time.Duration(i) * time.Millisecond), IdempotencyKey: fmt.Sprintf("%s%d", fsm.AutoKeyPrefix, i)}
		res := f.ApplyCommand(uint64(1+i), enc(fsm.CmdDeviceSetComments, &fsm.DeviceSetComments{Header: h,
			Device: fmt.Sprintf("panda-%05d", i), Comments: "flaky relay"}))
		require.NoError(b, res.Error())
	}
	return f
}

// BenchmarkSnapshot10k measures, with 10,000 devices, what a snapshot
// costs: Snapshot (Applies wait meanwhile), Persist (concurrent with
// them) and Restore.
func BenchmarkSnapshot10k(b *testing.B) {
	f := lab10k(b)
	var data []byte
	b.Run("Snapshot", func(b *testing.B) {
		for range b.N {
			s, err := f.Snapshot()
			require.NoError(b, err)
			s.Release()
		}
	})
	b.Run("Persist", func(b *testing.B) {
		s, err := f.Snapshot()
		require.NoError(b, err)
		for range b.N {
			sink := &memSink{}
			require.NoError(b, s.Persist(sink))
			data = sink.Bytes()
		}
		b.ReportMetric(float64(len(data))/1e6, "MB")
	})
	b.Run("Restore", func(b *testing.B) {
		for range b.N {
			require.NoError(b, fsm.New(fsm.Config{}).Restore(io.NopCloser(bytes.NewReader(data))))
		}
	})
}
