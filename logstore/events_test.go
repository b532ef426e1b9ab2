package logstore

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func ev(index uint64, seq uint32, at time.Time, name, state string) Event {
	return Event{Index: index, Seq: seq, At: at, Kind: "device", Name: name, State: state, ImagingServer: "server1"}
}

func positions(es []Event) [][2]uint64 {
	var out [][2]uint64
	for _, e := range es {
		out = append(out, [2]uint64{e.Index, uint64(e.Seq)})
	}
	return out
}

// Events come back in log order after a position, survive a reopen, a
// replayed entry overwrites its own events, and retention prunes them.
func TestEvents(t *testing.T) {
	cfg := testConfig(t)
	s, err := Open(cfg)
	require.NoError(t, err)
	s.AppendEvents([]Event{ev(10, 0, t0, "a", "ready"), ev(10, 1, t0, "b", "ready")})
	s.AppendEvents([]Event{ev(300, 0, t0.Add(time.Hour), "a", "pc_power_cycling")})
	s.AppendEvents([]Event{ev(12, 0, t0.Add(time.Minute), "b", "failed_pxe_booting")})

	all, err := s.EventsAfter(0, 0, 0)
	require.NoError(t, err)
	require.Equal(t, [][2]uint64{{10, 0}, {10, 1}, {12, 0}, {300, 0}}, positions(all))
	require.Equal(t, "failed_pxe_booting", all[2].State)
	require.True(t, all[0].At.Equal(t0))

	after, err := s.EventsAfter(10, 0, 0)
	require.NoError(t, err)
	require.Equal(t, [][2]uint64{{10, 1}, {12, 0}, {300, 0}}, positions(after))
	page, err := s.EventsAfter(10, 1, 1)
	require.NoError(t, err)
	require.Equal(t, [][2]uint64{{12, 0}}, positions(page))
	none, err := s.EventsAfter(300, 0, 0)
	require.NoError(t, err)
	require.Empty(t, none)

	require.NoError(t, s.Close())
	s = openStore(t, cfg)
	s.AppendEvents([]Event{ev(12, 0, t0.Add(time.Minute), "b", "failed_pxe_booting")}) // replayed
	again, err := s.EventsAfter(0, 0, 0)
	require.NoError(t, err)
	require.Equal(t, all, again)

	n, err := s.Prune(t0.Add(30 * time.Minute))
	require.NoError(t, err)
	require.Equal(t, 3, n)
	left, err := s.EventsAfter(0, 0, 0)
	require.NoError(t, err)
	require.Equal(t, [][2]uint64{{300, 0}}, positions(left))
}
