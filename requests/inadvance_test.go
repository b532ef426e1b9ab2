package requests

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/fsm"
	"github.com/mozpool/mozpool/lifeguard"
)

// An image marked in_advance is written on idle boards before anyone asks,
// with what requests last asked for; a request for exactly that is handed
// such a board without imaging it again, and the board, once used, is
// imaged afresh before it is handed out again.
func TestImageInAdvance(t *testing.T) {
	r := newRig(t)
	res := r.apply(fsm.CmdImageUpsert, &fsm.ImageUpsert{Image: fsm.ImageSpec{
		Name: "b2g", BootConfigKeys: []string{"b2gbase"}, HasSUTAgent: true, InAdvance: true}})
	require.NoError(t, res.Error())
	r.ready(even1, even2)

	// Nobody has asked yet: the idle board stays as it is.
	require.Equal(t, lifeguard.StateReady, r.deviceTimeout(even2).State)

	// The first request images its board as ever.
	q := r.createB2G(even1, "any")
	r.install(even1, "b2g")
	r.requireRequest(q.ID, StateReady, even1)
	require.False(t, r.device(even1).Fresh, "imaged for a request")

	// The idle board is imaged in advance at the end of its period.
	require.Equal(t, lifeguard.StatePXEPowerCycling, r.deviceTimeout(even2).State)
	require.Equal(t, "b2g", r.device(even2).NextImage)
	require.Equal(t, b2gConfig, r.device(even2).NextBootConfig)
	// It is imaged again until it has net-booted provenBoots times in a
	// row (lifeguard): four imagings from no history.
	require.Equal(t, 4, r.imageUntilReady(even2))
	require.True(t, r.device(even2).Fresh)

	// A request for exactly that gets it at once, without imaging; the
	// queue prefers it to the board the first request used.
	r.closeRequest(q.ID)
	q2 := r.createB2G("any", "any")
	r.requireRequest(q2.ID, StateReady, even2)
	require.False(t, r.device(even2).Fresh, "handed out")

	// The used board (even1) is imaged in advance at the end of its
	// period; even2, once returned, too.
	require.Equal(t, lifeguard.StatePXEPowerCycling, r.deviceTimeout(even1).State)
	r.closeRequest(q2.ID)
	require.Equal(t, lifeguard.StatePXEPowerCycling, r.deviceTimeout(even2).State)

	// Another boot config is imaged as ever.
	r.imageUntilReady(even1)
	q3 := r.create("any", "b2g", "any", `{"b2gbase": "http://builds/other"}`)
	require.Equal(t, StatePending, State(q3.State))
	require.Equal(t, lifeguard.StatePXEPowerCycling, r.deviceState(q3.Device))
}

// imageUntilReady drives dev, which must be in pxe_power_cycling, through
// b2g installs until it stays ready, and returns how many it took.
func (r *rig) imageUntilReady(dev string) int {
	r.t.Helper()
	for n := 1; n <= 5; n++ {
		require.Equal(r.t, lifeguard.StatePXEPowerCycling, r.deviceState(dev))
		for _, s := range imagingSteps("b2g") {
			r.deviceEvent(dev, s.event, hardwareResults[s.event])
		}
		if r.deviceState(dev) == lifeguard.StateReady {
			return n
		}
	}
	r.t.Fatalf("%s not ready after 5 imagings", dev)
	return 0
}

// A board whose net boot hung during the imaging of a request for any
// device is not handed to it, even when the retry succeeds: the request
// takes another board. A request for that very board gets it.
func TestHungBoardNotHandedOut(t *testing.T) {
	r := newRig(t)
	r.ready(even1)
	q := r.createB2G("any", "any")
	r.requireRequest(q.ID, StatePending, even1)
	r.deviceEvent(even1, lifeguard.EventPowerCycleOK, true)
	require.Equal(t, lifeguard.StatePXEPowerCycling, r.deviceTimeout(even1).State, "pxe_booting timed out: hung")
	r.ready(even2)
	r.install(even1, "b2g")
	require.Equal(t, StatePending, r.requestState(q.ID))
	require.Equal(t, even2, r.request(q.ID).Device, "took another board")
	require.Zero(t, r.device(even1).RequestID)

	// Named: handed out after the retry.
	r2 := newRig(t)
	r2.ready(even1)
	q2 := r2.createB2G(even1, "any")
	r2.deviceEvent(even1, lifeguard.EventPowerCycleOK, true)
	require.Equal(t, lifeguard.StatePXEPowerCycling, r2.deviceTimeout(even1).State)
	r2.install(even1, "b2g")
	r2.requireRequest(q2.ID, StateReady, even1)
}
