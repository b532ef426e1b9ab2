package fsm_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/fsm"
)

func TestHealthScore(t *testing.T) {
	at := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	ok := fsm.Outcome{At: at, Op: "imaging"}
	bad := fsm.Outcome{At: at, Op: "boot", Fail: "pxe_booting"}
	reset := fsm.Outcome{At: at, Op: fsm.OpReset}
	tests := []struct {
		name string
		h    []fsm.Outcome
		want int
	}{
		{"no history", nil, 100},
		{"all good", []fsm.Outcome{ok, ok}, 100},
		{"one in three failed", []fsm.Outcome{bad, ok, ok}, 67},
		{"all failed", []fsm.Outcome{bad, bad}, 0},
		{"only what follows a reset", []fsm.Outcome{bad, bad, reset, ok}, 100},
		{"reset last", []fsm.Outcome{bad, reset}, 100},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, fsm.HealthScore(tc.h))
			require.Equal(t, tc.want, fsm.HealthScore(tc.h), "deterministic")
		})
	}
	require.Equal(t, []fsm.Outcome{ok}, fsm.SinceReset([]fsm.Outcome{bad, reset, ok}))
}

// A device stored before histories existed restores without one and
// scores 100; one with a history writes it compactly.
func TestDeviceHistoryWire(t *testing.T) {
	var d fsm.Device
	require.NoError(t, json.Unmarshal([]byte(`{"id": 1, "name": "panda-0001", "state": "ready", "generation": 3}`), &d))
	require.Nil(t, d.History)
	require.Equal(t, 100, fsm.HealthScore(d.History))
	b, err := json.Marshal(d)
	require.NoError(t, err)
	require.NotContains(t, string(b), "history")

	d.History = []fsm.Outcome{{At: time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC), Op: "boot", Fail: "pxe_booting"}, {At: time.Date(2024, 3, 1, 12, 1, 0, 0, time.UTC), Op: "imaging"}}
	b, err = json.Marshal(d)
	require.NoError(t, err)
	require.Contains(t, string(b), `"history":[{"at":"2024-03-01T12:00:00Z","op":"boot","fail":"pxe_booting"},{"at":"2024-03-01T12:01:00Z","op":"imaging"}]`)
	var back fsm.Device
	require.NoError(t, json.Unmarshal(b, &back))
	require.Equal(t, d.History, back.History)
}
