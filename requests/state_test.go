package requests

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/fsm"
	"github.com/mozpool/mozpool/lifeguard"
)

// The request table itself, and what the FSM keeps of requests: stale
// timers, compaction, snapshots and the claim invariant under load.

// Every open state can be closed and expired; closed and failed states
// accept nothing and have no timer; states with a timer handle it.
func TestRequestStateTable(t *testing.T) {
	m := Machine{}
	apiStates := []State{StateReady, StateClosed, StateFailedDeviceNotFound, StateFailedBadImage, StateFailedBadDevice, StateFailedDeviceBusy}
	for _, s := range apiStates {
		require.True(t, m.Known(string(s)), "state %s is API and must exist", s)
	}
	for name, s := range requestStates {
		t.Run(string(name), func(t *testing.T) {
			if s.Timeout >= 0 {
				require.NotNil(t, s.OnTimeout, "Timeout(%s) has no handler", name)
			}
			if name.Failed() || name == StateClosed {
				require.True(t, IsFailed(string(name)) || name == StateClosed)
				require.False(t, s.Open, "%s must not be open", name)
				require.Empty(t, s.Events, "%s must accept no event", name)
				require.Equal(t, noTimeout, s.Timeout, "%s must have no timer", name)
				require.NotNil(t, s.OnEntry, "%s must release the device on entry", name)
				return
			}
			for _, ev := range []Event{EventClose, EventExpire} {
				require.Contains(t, s.Events, ev, "%s must accept %s", name, ev)
			}
		})
	}
	require.False(t, m.Known("contacting_lifeguard"), "the contact is part of the claim")
	require.False(t, m.Open("no-such-state"))
}

// A timeout for an older state entry, or in a state without a timer, is
// discarded; so is an event for an older generation.
func TestStaleTimersDiscarded(t *testing.T) {
	r := newRig(t)
	r.ready(even1)
	q := r.createB2G("any", "any")
	old := r.request(q.ID)
	r.timeout(q.ID) // a second poll: a new generation
	cur := r.request(q.ID)
	require.Greater(t, cur.Generation, old.Generation)

	res := r.eventResult(r.apply(fsm.CmdRequestTimeout, &fsm.RequestTimeout{ID: q.ID, Generation: old.Generation}))
	require.True(t, res.Ignored)
	require.Equal(t, "stale generation", res.Reason)
	after := r.request(q.ID)
	require.Equal(t, cur.Generation, after.Generation, "a stale timeout changes nothing")
	require.Equal(t, cur.Counters, after.Counters, "a stale timeout does not poll")

	res = r.eventResult(r.apply(fsm.CmdRequestEvent, &fsm.RequestEvent{ID: q.ID, Event: string(EventClose), Generation: old.Generation}))
	require.True(t, res.Ignored, "stale event")
	r.requireRequest(q.ID, StatePending, even1)

	r.closeRequest(q.ID)
	closed := r.request(q.ID)
	res = r.eventResult(r.apply(fsm.CmdRequestTimeout, &fsm.RequestTimeout{ID: q.ID, Generation: closed.Generation}))
	require.True(t, res.Ignored, "closed has no timer")
	require.ErrorIs(t, r.apply(fsm.CmdRequestTimeout, &fsm.RequestTimeout{ID: 99, Generation: 1}).Error(), fsm.ErrUnknownRequest)
}

// Closed and failed requests are deleted 7 days after they expire; open
// ones and recently expired ones are kept.
func TestCompaction(t *testing.T) {
	r := newRig(t)
	r.ready(even1)
	t0 := r.at
	withExpiry := func(dev, env string, d time.Duration) fsm.Request {
		c := r.createCmd(dev, "b2g", env, b2gConfig)
		c.Expires = t0.Add(d)
		q, err := r.tryCreateCmd(c)
		require.NoError(t, err)
		return q
	}
	oldClosed := withExpiry("any", "nowhere", time.Hour)
	r.closeRequest(oldClosed.ID)
	r.force(odd1, lifeguard.StateNew, lifeguard.StateFailedPXEBooting)
	oldFailed := withExpiry(odd1, "any", time.Hour)
	r.requireRequest(oldFailed.ID, StateFailedBadDevice, "")
	recentClosed := withExpiry("any", "nowhere", 5*24*time.Hour)
	r.closeRequest(recentClosed.ID)
	oldOpen := withExpiry("any", "any", time.Hour) // holds even1
	r.requireRequest(oldOpen.ID, StatePending, even1)

	// Eight days later the leader compacts what expired before now - 7 d.
	r.at = t0.Add(8 * 24 * time.Hour)
	mark := r.mark()
	res := r.apply(fsm.CmdRequestCompact, &fsm.RequestCompact{Before: r.at.Add(-7 * 24 * time.Hour)})
	var got map[string]int
	require.NoError(t, res.Decode(&got))
	require.Equal(t, map[string]int{"deleted": 2}, got)
	require.False(t, r.exists(oldClosed.ID))
	require.False(t, r.exists(oldFailed.ID))
	require.True(t, r.exists(recentClosed.ID), "expired only 3 days ago")
	require.True(t, r.exists(oldOpen.ID), "open requests are never compacted")
	require.Equal(t, oldOpen.ID, r.device(even1).RequestID)
	require.ElementsMatch(t, []int64{oldClosed.ID, oldFailed.ID}, r.notes[mark].Requests, "deleted requests are reported")

	res = r.apply(fsm.CmdRequestCompact, &fsm.RequestCompact{Before: r.at.Add(-7 * 24 * time.Hour)})
	require.NoError(t, res.Decode(&got))
	require.Equal(t, map[string]int{"deleted": 0}, got)

	// Ids are never reused.
	next := r.createB2G("any", "nowhere")
	require.Equal(t, oldOpen.ID+1, next.ID)
}

// A snapshot carries requests, claims and counters; a restored replica
// then applies the same commands to the same state.
func TestSnapshotRestoreRequests(t *testing.T) {
	r := newRig(t)
	r.ready(pandas...)
	ready := r.createB2G("any", "even")
	r.install(ready.Device, "b2g")
	pending := r.createB2G("any", "odd")
	r.timeouts(pending.ID, 3)
	searching := r.createB2G(ready.Device, "any") // waits for a busy device
	closed := r.createB2G("any", "any")
	r.closeRequest(closed.ID)
	r.force(odd3, lifeguard.StateReady, lifeguard.StateFailedPXEBooting)
	failed := r.createB2G(odd3, "any")
	r.requireRequest(failed.ID, StateFailedBadDevice, "")
	r.setImagingResult(pending.ID, lifeguard.ResultFailedBadImage)

	restored := &rig{t: t, f: r.snapshot(), index: r.index, at: r.at}
	requireSameState(t, r.f, restored.f)
	restored.requireRequest(pending.ID, StatePending, r.request(pending.ID).Device)
	require.Equal(t, lifeguard.ResultFailedBadImage, lifeguard.Result(restored.request(pending.ID).ImagingResult))
	require.Equal(t, 3, restored.request(pending.ID).Counters[counterPolls])

	// Both replicas go on from the same log.
	for _, x := range []*rig{r, restored} {
		x.timeout(pending.ID) // the polled result: a new search
		x.timeout(searching.ID)
		x.closeRequest(ready.ID)
		x.createB2G("any", "any")
	}
	requireSameState(t, r.f, restored.f)
	require.NotEqual(t, r.request(pending.ID).Device, "")
}

// requireSameState requires equal devices, requests and id counters.
func requireSameState(t *testing.T, want, got *fsm.FSM) {
	t.Helper()
	want.Read(func(w *fsm.State) {
		got.Read(func(g *fsm.State) {
			require.Equal(t, w.Devices, g.Devices, "devices (want, got)")
			require.Equal(t, w.Requests, g.Requests, "requests (want, got)")
			require.Equal(t, w.NextID, g.NextID, "ids (want, got)")
		})
	})
}

// At the FSM level: 20 creates for "any" with 5 ready devices in
// one log, then the devices finishing, returns and searches interleaved. The
// rig checks after every command that claims pair one device with one
// request.
func TestConcurrentCreatesNeverShareADevice(t *testing.T) {
	r := newRig(t)
	r.ready(pandas...)
	var ids []int64
	for range 20 {
		ids = append(ids, r.createB2G("any", "any").ID)
	}
	claimed := map[string]int64{}
	waiting := 0
	for _, id := range ids {
		q := r.request(id)
		switch State(q.State) {
		case StatePending:
			require.NotContains(t, claimed, q.Device, "device %s claimed twice", q.Device)
			claimed[q.Device] = id
		case StateFindingDevice:
			waiting++
		default:
			require.Failf(t, "unexpected state", "request %d is %s", id, q.State)
		}
	}
	require.Len(t, claimed, 5)
	require.Equal(t, 15, waiting)

	served := map[int64]string{}
	for round := 0; len(served) < 20; round++ {
		require.Less(t, round, 10, "requests still waiting after 10 rounds")
		// The claimed devices finish, the requests are used and returned.
		for _, id := range ids {
			q := r.request(id)
			if State(q.State) != StatePending {
				continue
			}
			r.install(q.Device, "b2g")
			r.requireRequest(id, StateReady, q.Device)
			served[id] = q.Device
			r.closeRequest(id)
		}
		// The waiting ones search again and take the freed devices.
		for _, id := range ids {
			if r.requestState(id) == StateFindingDevice {
				r.timeout(id)
			}
		}
	}
	uses := map[string]int{}
	for _, dev := range served {
		uses[dev]++
	}
	require.Equal(t, map[string]int{even1: 4, even2: 4, odd1: 4, odd2: 4, odd3: 4}, uses, "least recently used spreads the load")
}

// A device's failure and a request's search in the same command must not
// hand the failing device back to the request.
func TestFailedDeviceNotReclaimed(t *testing.T) {
	r := newRig(t)
	r.ready(even1)
	q := r.createB2G("any", "any")
	// failed_sut_verifying reports failed-bad-device, then self-tests at once.
	res := r.apply(fsm.CmdDeviceStateChange, &fsm.DeviceStateChange{Device: even1, From: string(lifeguard.StatePXEPowerCycling), To: string(lifeguard.StateFailedSUTVerifying)})
	require.NoError(t, res.Error())
	r.requireRequest(q.ID, StateFindingDevice, "")
	d := r.device(even1)
	require.Zero(t, d.RequestID)
	require.Equal(t, lifeguard.StatePXEPowerCycling, lifeguard.State(d.State), "the device self-tests")
	require.Equal(t, "self-test", d.NextImage)
}
