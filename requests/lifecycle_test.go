package requests

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/fsm"
	"github.com/mozpool/mozpool/lifeguard"
)

// Request lifecycles through fsm.Apply.

// A b2g request is ready once its device has gone through the
// whole install; the device carries the image and the request's boot config.
func TestEndToEndB2G(t *testing.T) {
	r := newRig(t)
	r.ready(pandas...)
	mark := r.mark()
	q := r.createB2G("any", "any")
	dev := q.Device
	require.Equal(t, even1, dev, "least recently used, then by name")
	r.install(dev, "b2g")

	r.requireRequest(q.ID, StateReady, dev)
	d := r.device(dev)
	require.Equal(t, lifeguard.StateReady, lifeguard.State(d.State))
	require.Equal(t, "b2g", d.Image)
	require.Equal(t, q.BootConfig, d.BootConfig, "the device carries the request's boot config")
	require.Empty(t, d.NextImage)
	require.Equal(t, q.ID, d.RequestID, "a ready request keeps its device")

	var entered []lifeguard.State
	for _, n := range r.notes[mark:] {
		for _, tr := range n.Transitions {
			if tr.Device == dev {
				entered = append(entered, lifeguard.State(tr.State))
			}
		}
	}
	require.Equal(t, []lifeguard.State{lifeguard.StateStartPXEBoot, lifeguard.StatePXEPowerCycling, lifeguard.StatePXEBooting, lifeguard.StateMobileInitStarted,
		lifeguard.StateB2GDownloading, lifeguard.StateB2GExtracting, lifeguard.StateSUTVerifying, lifeguard.StateSUTSDCardVerifying, lifeguard.StateOperationComplete, lifeguard.StateReady}, entered)
	logs := r.requestLogs(mark, q.ID)
	requireLogged(t, logs, "device "+dev+" finished: complete")
	require.Equal(t, "entering state ready", logs[len(logs)-1])

	// A ready request has no timer; only its expiry ends it.
	require.True(t, r.request(q.ID).StateDeadline.IsZero())
}

// A return closes the request and drops the claim; the device
// is not touched. A device still imaging finishes with no request, and
// both logs record the release.
func TestReturn(t *testing.T) {
	t.Run("while imaging", func(t *testing.T) {
		r := newRig(t)
		r.ready(even1)
		q := r.createB2G("any", "any")
		r.deviceEvent(even1, lifeguard.EventPowerCycleOK, true)
		before := r.device(even1)

		mark := r.mark()
		res := r.closeRequest(q.ID)
		require.False(t, res.Ignored)
		require.Equal(t, StateClosed, res.State)
		r.requireRequest(q.ID, StateClosed, "")
		d := r.device(even1)
		require.Zero(t, d.RequestID, "the claim is gone")
		require.Equal(t, before.State, d.State, "the device is not told")
		require.Equal(t, before.Generation, d.Generation, "the device is not told")
		require.Equal(t, "b2g", d.NextImage, "the install goes on")
		requireLogged(t, r.requestLogs(mark, q.ID), "released device "+even1)
		requireLogged(t, r.requestLogs(mark, q.ID), string(lifeguard.StatePXEBooting))
		requireLogged(t, r.deviceLogs(mark, even1), "released by request 1 (closed)")
		requireLogged(t, r.deviceLogs(mark, even1), string(lifeguard.StatePXEBooting))
		require.True(t, r.request(q.ID).StateDeadline.IsZero(), "closed has no timer")

		// The device finishes its install and stays ready with nobody.
		mark = r.mark()
		for _, s := range imagingSteps("b2g")[1:] {
			r.deviceEvent(even1, s.event, hardwareResults[s.event])
		}
		d = r.device(even1)
		require.Equal(t, lifeguard.StateReady, lifeguard.State(d.State))
		require.Equal(t, "b2g", d.Image)
		require.Zero(t, d.RequestID)
		require.Empty(t, r.requestLogs(mark, q.ID), "the closed request hears nothing more")
		r.requireRequest(q.ID, StateClosed, "")

		// A second return changes nothing.
		res = r.closeRequest(q.ID)
		require.True(t, res.Ignored)
		require.Equal(t, StateClosed, res.State)
	})
	t.Run("when ready", func(t *testing.T) {
		r := newRig(t)
		r.ready(even1)
		q := r.createB2G("any", "any")
		r.install(even1, "b2g")
		r.requireRequest(q.ID, StateReady, even1)
		before := r.device(even1)
		r.closeRequest(q.ID)
		r.requireRequest(q.ID, StateClosed, "")
		d := r.device(even1)
		require.Equal(t, lifeguard.StateReady, lifeguard.State(d.State), "not rebooted")
		require.Equal(t, before.Generation, d.Generation, "not rebooted")
		require.Zero(t, d.RequestID)
		// The device can be claimed at once.
		next := r.createB2G("any", "any")
		r.requireRequest(next.ID, StatePending, even1)
	})
	t.Run("while finding a device", func(t *testing.T) {
		r := newRig(t)
		q := r.createB2G("any", "any")
		r.requireRequest(q.ID, StateFindingDevice, "")
		r.closeRequest(q.ID)
		r.requireRequest(q.ID, StateClosed, "")
		require.True(t, r.request(q.ID).StateDeadline.IsZero())
	})
}

// A renewal rewrites expires in every state, closed and
// failed ones included, without changing the state.
func TestRenew(t *testing.T) {
	setups := []struct {
		name  string
		setup func(r *rig) int64
		want  State
	}{
		{"finding_device", func(r *rig) int64 { return r.createB2G("any", "odd").ID }, StateFindingDevice},
		{"pending", func(r *rig) int64 { return r.createB2G("any", "any").ID }, StatePending},
		{"ready", func(r *rig) int64 {
			q := r.createB2G("any", "any")
			r.install(q.Device, "b2g")
			return q.ID
		}, StateReady},
		{"closed", func(r *rig) int64 {
			q := r.createB2G("any", "any")
			r.closeRequest(q.ID)
			return q.ID
		}, StateClosed},
		{"failed", func(r *rig) int64 {
			r.force(odd1, lifeguard.StateNew, lifeguard.StateFailedPXEBooting)
			return r.createB2G(odd1, "any").ID
		}, StateFailedBadDevice},
	}
	for _, tc := range setups {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			r.ready(even1)
			id := tc.setup(r)
			before := r.request(id)
			require.Equal(t, tc.want, State(before.State))

			mark := r.mark()
			want := r.at.Add(time.Second + 2*time.Hour) // the renew's time + 7200 s
			res := r.apply(fsm.CmdRequestRenew, &fsm.RequestRenew{ID: id, Expires: want})
			require.NoError(t, res.Error())
			after := r.request(id)
			require.Equal(t, want, after.Expires)
			require.Equal(t, tc.want, State(after.State), "a renewal does not change the state")
			require.Equal(t, before.Generation, after.Generation)
			require.Equal(t, before.Device, after.Device)
			requireLogged(t, r.requestLogs(mark, id), "renewed until")

			// Shortening works too.
			res = r.apply(fsm.CmdRequestRenew, &fsm.RequestRenew{ID: id, Expires: r.at.Add(time.Second)})
			require.NoError(t, res.Error())
		})
	}
	t.Run("refused", func(t *testing.T) {
		r := newRig(t)
		q := r.createB2G("any", "any")
		for _, c := range []struct {
			cmd  *fsm.RequestRenew
			want error
		}{
			{&fsm.RequestRenew{ID: q.ID, Expires: r.at.Add(-time.Minute)}, fsm.ErrInvalid},
			{&fsm.RequestRenew{ID: q.ID, Expires: r.at.Add(fsm.MaxRequestDuration + 24*time.Hour)}, fsm.ErrInvalid},
			{&fsm.RequestRenew{ID: 99, Expires: r.at.Add(time.Hour)}, fsm.ErrUnknownRequest},
		} {
			err := r.apply(fsm.CmdRequestRenew, c.cmd).Error()
			require.ErrorIs(t, err, c.want, "renew %+v", c.cmd)
		}
		require.Equal(t, q.Expires, r.request(q.ID).Expires, "refused renewals change nothing")
	})
}

// The leader proposes the expiry; Apply checks it against the
// command time, so an early or outdated proposal is ignored.
func TestExpiry(t *testing.T) {
	r := newRig(t)
	r.ready(even1)
	c := r.createCmd("any", "b2g", "any", b2gConfig)
	c.Expires = r.at.Add(time.Minute)
	q, err := r.tryCreateCmd(c)
	require.NoError(t, err)
	r.requireRequest(q.ID, StatePending, even1)

	res := r.expire(q.ID)
	require.True(t, res.Ignored, "expire before expires")
	require.Equal(t, "not expired", res.Reason)
	r.requireRequest(q.ID, StatePending, even1)

	// Renewed after the leader proposed: still not expired.
	r.at = q.Expires.Add(-2 * time.Second)
	res2 := r.apply(fsm.CmdRequestRenew, &fsm.RequestRenew{ID: q.ID, Expires: q.Expires.Add(time.Hour)})
	require.NoError(t, res2.Error())
	r.at = q.Expires.Add(time.Second)
	require.True(t, r.expire(q.ID).Ignored, "expire of a renewed request")

	// Past expires: closed and released; the device goes on imaging.
	r.deviceEvent(even1, lifeguard.EventPowerCycleOK, true)
	r.at = q.Expires.Add(time.Hour)
	mark := r.mark()
	res = r.expire(q.ID)
	require.False(t, res.Ignored)
	require.Equal(t, StateClosed, res.State)
	r.requireRequest(q.ID, StateClosed, "")
	require.Zero(t, r.device(even1).RequestID)
	require.Equal(t, lifeguard.StatePXEBooting, lifeguard.State(r.device(even1).State))
	requireLogged(t, r.requestLogs(mark, q.ID), "released device "+even1)
	requireLogged(t, r.deviceLogs(mark, even1), "released by request 1 (closed)")
	for _, s := range imagingSteps("b2g")[1:] {
		r.deviceEvent(even1, s.event, hardwareResults[s.event])
	}
	require.Equal(t, lifeguard.StateReady, lifeguard.State(r.device(even1).State))
	require.Zero(t, r.device(even1).RequestID)

	// Expiring again is ignored.
	require.True(t, r.expire(q.ID).Ignored)
	require.ErrorIs(t, r.apply(fsm.CmdRequestExpire, &fsm.RequestExpire{ID: 42}).Error(), fsm.ErrUnknownRequest)
}

func TestExpiryInEveryOpenState(t *testing.T) {
	for _, state := range []State{StateFindingDevice, StatePending, StateReady} {
		t.Run(string(state), func(t *testing.T) {
			r := newRig(t)
			env := "any"
			if state == StateFindingDevice {
				env = "odd" // no odd device is ready: it waits
			}
			r.ready(even1)
			c := r.createCmd("any", "b2g", env, b2gConfig)
			c.Expires = r.at.Add(time.Minute)
			q, err := r.tryCreateCmd(c)
			require.NoError(t, err)
			if state == StateReady {
				r.install(even1, "b2g")
			}
			require.Equal(t, state, r.requestState(q.ID))
			r.at = q.Expires
			require.Equal(t, StateClosed, r.expire(q.ID).State)
			r.requireRequest(q.ID, StateClosed, "")
		})
	}
}

// A named device held by another request: the request waits in the
// queue, then fails failed_device_busy at its max_wait; the holder is
// unaffected.
func TestSpecificBusyDevice(t *testing.T) {
	r := newRig(t)
	r.ready(even1, even2)
	holder := r.createB2G(even1, "any")
	r.requireRequest(holder.ID, StatePending, even1)

	q := r.createB2G(even1, "any")
	r.requireRequest(q.ID, StateFindingDevice, "")
	require.Equal(t, 1, r.request(q.ID).Counters[counterSearches])
	first := r.request(q.ID)
	require.Equal(t, fsm.DefaultMaxWait, first.StateDeadline.Sub(first.StateEntered), "it waits max_wait")
	res := r.timeout(q.ID)
	require.Equal(t, StateFailedDeviceBusy, res.State, "max_wait passed")
	r.requireRequest(q.ID, StateFailedDeviceBusy, "")
	require.True(t, r.request(q.ID).StateDeadline.IsZero(), "failed states have no timer")
	r.requireRequest(holder.ID, StatePending, even1)
	require.Equal(t, holder.ID, r.device(even1).RequestID)
	require.Zero(t, r.device(even2).RequestID, "a named request never takes another device")
}

// A named device that comes free is claimed by the request waiting for it
// in the Apply that frees it.
func TestSpecificDeviceFreedWhileWaiting(t *testing.T) {
	r := newRig(t)
	r.ready(even1)
	holder := r.createB2G(even1, "any")
	q := r.createB2G(even1, "any")
	r.requireRequest(q.ID, StateFindingDevice, "")
	r.closeRequest(holder.ID)
	r.requireRequest(q.ID, StateFindingDevice, "")
	r.force(even1, lifeguard.StatePXEPowerCycling, lifeguard.StateReady)
	r.requireRequest(q.ID, StatePending, even1)
}

// A named request that asks not to wait fails at once when its device is
// busy.
func TestSpecificDeviceNoWait(t *testing.T) {
	r := newRig(t)
	r.ready(even1)
	r.createB2G(even1, "any")
	c := r.createCmd(even1, "b2g", "any", b2gConfig)
	c.NoWait = true
	q, err := r.tryCreateCmd(c)
	require.NoError(t, err)
	r.requireRequest(q.ID, StateFailedDeviceBusy, "")
	require.Contains(t, r.request(q.ID).Reason, "asked not to wait")
}

// A named device in a failed_* state fails the request at once; a
// device busy with something else (not failed) is waited for until
// max_wait.
func TestSpecificDeviceNotReady(t *testing.T) {
	tests := []struct {
		deviceState lifeguard.State
		wantFirst   State
		wantSecond  State
	}{
		{lifeguard.StateFailedPXEBooting, StateFailedBadDevice, ""},
		{lifeguard.StateFailedPowerCycling, StateFailedBadDevice, ""},
		{lifeguard.StateLockedOut, StateFindingDevice, StateFailedDeviceBusy},
		{lifeguard.StateMaintenanceMode, StateFindingDevice, StateFailedDeviceBusy},
	}
	for _, tc := range tests {
		t.Run(string(tc.deviceState), func(t *testing.T) {
			r := newRig(t)
			r.force(even1, lifeguard.StateNew, tc.deviceState)
			q := r.createB2G(even1, "any")
			r.requireRequest(q.ID, tc.wantFirst, "")
			if tc.wantSecond != "" {
				r.timeout(q.ID)
				r.requireRequest(q.ID, tc.wantSecond, "")
			}
			require.Equal(t, tc.deviceState, r.deviceState(even1), "the device is not touched")
		})
	}
}

// "any" whose hardware no device of the inventory has fails at once,
// saying why; one whose devices are all busy (or, for an environment
// nobody has, missing) waits max_wait (one timer, no searches), then fails
// failed_device_not_found.
func TestNoDeviceFound(t *testing.T) {
	r := newRig(t)
	r.ready(pandas...)
	c := r.createCmd("any", "b2g", "any", b2gConfig)
	c.HardwareType = "beagle"
	q, err := r.tryCreateCmd(c)
	require.NoError(t, err)
	r.requireRequest(q.ID, StateFailedDeviceNotFound, "")
	require.Contains(t, r.request(q.ID).Reason, "hardware_type=beagle")
	nowhere := r.createB2G("any", "nowhere")
	r.requireRequest(nowhere.ID, StateFindingDevice, "")

	for range len(pandas) {
		require.Equal(t, StatePending, State(r.createB2G("any", "any").State))
	}
	q = r.createB2G("any", "any")
	r.requireRequest(q.ID, StateFindingDevice, "")
	first := r.request(q.ID)
	require.Equal(t, fsm.DefaultMaxWait, first.StateDeadline.Sub(first.StateEntered), "it waits max_wait")
	res := r.timeout(q.ID)
	require.Equal(t, StateFailedDeviceNotFound, res.State)
	got := r.request(q.ID)
	require.True(t, got.StateDeadline.IsZero())
	require.Empty(t, got.Device)
	require.Zero(t, got.QueueSeq, "out of the queue")
}

// The claimed device is taken over before it finishes (an
// operator locks it out, parks it, or the inventory drops it): at the next
// pending poll an "any" request searches again and claims another device;
// a named one fails.
func TestClaimedDeviceTakenOver(t *testing.T) {
	takeovers := []struct {
		name string
		do   func(r *rig)
	}{
		{"locked_out", func(r *rig) { r.force(even1, lifeguard.StatePXEPowerCycling, lifeguard.StateLockedOut) }},
		{"troubleshooting", func(r *rig) { r.force(even1, lifeguard.StatePXEPowerCycling, lifeguard.StateTroubleshooting) }},
		{"maintenance_mode", func(r *rig) { r.force(even1, lifeguard.StatePXEPowerCycling, lifeguard.StateMaintenanceMode) }},
		{"ready without a result", func(r *rig) { r.force(even1, lifeguard.StatePXEPowerCycling, lifeguard.StateReady) }},
		{"gone", func(r *rig) {
			inv := rigInventory()
			inv.Devices = inv.Devices[1:] // drop even1
			res := r.apply(fsm.CmdInventorySync, &fsm.InventorySync{Inventory: inv, ShipIt: true})
			require.NoError(r.t, res.Error())
		}},
	}
	for _, tc := range takeovers {
		t.Run(tc.name+"/any", func(t *testing.T) {
			r := newRig(t)
			r.ready(even1, even2)
			q := r.createB2G("any", "even")
			r.requireRequest(q.ID, StatePending, even1)
			tc.do(r)
			// Nothing happens until the poll.
			require.Equal(t, StatePending, State(r.request(q.ID).State))

			mark := r.mark()
			r.timeout(q.ID)
			r.requireRequest(q.ID, StatePending, even2)
			requireLogged(t, r.requestLogs(mark, q.ID), "not imaging")
			requireLogged(t, r.requestLogs(mark, q.ID), "entering state finding_device")
			require.Equal(t, lifeguard.StatePXEPowerCycling, lifeguard.State(r.device(even2).State))
			r.f.Read(func(s *fsm.State) {
				if d, ok := s.Devices[even1]; ok {
					require.Zero(t, d.RequestID, "the taken-over device is released")
				}
			})
			r.install(even2, "b2g")
			r.requireRequest(q.ID, StateReady, even2)
		})
		t.Run(tc.name+"/specific", func(t *testing.T) {
			r := newRig(t)
			r.ready(even1, even2)
			q := r.createB2G(even1, "any")
			r.requireRequest(q.ID, StatePending, even1)
			tc.do(r)
			r.timeout(q.ID)
			r.requireRequest(q.ID, StateFailedBadDevice, "")
		})
	}
}

// Results delivered by lifeguard_finished events.
func TestPendingResultEvents(t *testing.T) {
	t.Run("complete", func(t *testing.T) {
		r := newRig(t)
		r.ready(even1)
		q := r.createB2G("any", "any")
		res := r.requestEvent(q.ID, EventLifeguardFinished, lifeguard.ResultComplete)
		require.Equal(t, StateReady, res.State)
		r.requireRequest(q.ID, StateReady, even1)
	})
	t.Run("bad device, any", func(t *testing.T) {
		r := newRig(t)
		r.ready(even1, even2)
		q := r.createB2G("any", "any")
		r.requireRequest(q.ID, StatePending, even1)
		r.requestEvent(q.ID, EventLifeguardFinished, lifeguard.ResultFailedBadDevice)
		r.requireRequest(q.ID, StatePending, even2)
		require.Zero(t, r.device(even1).RequestID, "the claim moved")
		require.Equal(t, q.ID, r.device(even2).RequestID)
	})
	t.Run("bad device, specific", func(t *testing.T) {
		r := newRig(t)
		r.ready(even1, even2)
		q := r.createB2G(even1, "any")
		res := r.requestEvent(q.ID, EventLifeguardFinished, lifeguard.ResultFailedBadDevice)
		require.Equal(t, StateFailedBadDevice, res.State)
		r.requireRequest(q.ID, StateFailedBadDevice, "")
		require.Zero(t, r.device(even1).RequestID)
	})
	t.Run("bad image twice", func(t *testing.T) {
		r := newRig(t)
		r.ready(even1, even2)
		q := r.createB2G("any", "any")
		r.requestEvent(q.ID, EventLifeguardFinished, lifeguard.ResultFailedBadImage)
		r.requireRequest(q.ID, StatePending, even2)
		res := r.requestEvent(q.ID, EventLifeguardFinished, lifeguard.ResultFailedBadImage)
		require.Equal(t, StateFailedBadImage, res.State)
		r.requireRequest(q.ID, StateFailedBadImage, "")
		require.Zero(t, r.device(even2).RequestID)
		require.Equal(t, 2, r.request(q.ID).Counters["bad-images"])
	})
	t.Run("unknown result", func(t *testing.T) {
		r := newRig(t)
		r.ready(even1, even2)
		q := r.createB2G("any", "any")
		mark := r.mark()
		r.requestEvent(q.ID, EventLifeguardFinished, "on-fire")
		r.requireRequest(q.ID, StatePending, even2)
		requireLogged(t, r.requestLogs(mark, q.ID), `unknown imaging result "on-fire"`)
	})
	t.Run("not pending", func(t *testing.T) {
		r := newRig(t)
		r.ready(even1)
		q := r.createB2G("any", "any")
		r.install(even1, "b2g")
		res := r.requestEvent(q.ID, EventLifeguardFinished, lifeguard.ResultFailedBadDevice)
		require.True(t, res.Ignored)
		r.requireRequest(q.ID, StateReady, even1)
	})
	t.Run("unknown event", func(t *testing.T) {
		r := newRig(t)
		r.ready(even1)
		q := r.createB2G("any", "any")
		res := r.requestEvent(q.ID, "bogus", "")
		require.True(t, res.Ignored)
		r.requireRequest(q.ID, StatePending, even1)
		require.ErrorIs(t, r.apply(fsm.CmdRequestEvent, &fsm.RequestEvent{ID: 77, Event: string(EventClose)}).Error(), fsm.ErrUnknownRequest)
	})
}

// A device that fails during its install reports failed-bad-device, and the
// request moves in the same command.
func TestDeviceFailureMovesRequestInSameCommand(t *testing.T) {
	r := newRig(t)
	r.ready(even1, even2)
	q := r.createB2G("any", "any")
	r.deviceEvent(even1, lifeguard.EventPowerCycleOK, true)
	r.deviceEvent(even1, lifeguard.EventMobileInitStarted, false)
	r.deviceEvent(even1, lifeguard.EventB2GDownloading, false)
	// b2g_downloading's fourth timeout retires the device.
	for range 3 {
		require.Equal(t, lifeguard.StatePXEPowerCycling, r.deviceTimeout(even1).State)
		r.deviceEvent(even1, lifeguard.EventPowerCycleOK, true)
		r.deviceEvent(even1, lifeguard.EventMobileInitStarted, false)
		r.deviceEvent(even1, lifeguard.EventB2GDownloading, false)
	}
	mark := r.mark()
	r.deviceTimeout(even1)
	require.Len(t, r.notes[mark:], 1)
	r.requireRequest(q.ID, StatePending, even2)
	requireLogged(t, r.requestLogs(mark, q.ID), "device "+even1+" finished: failed-bad-device")
	d := r.device(even1)
	require.Zero(t, d.RequestID)
	require.NotEqual(t, lifeguard.StateReady, lifeguard.State(d.State), "the failed device self-tests")
}

// A device that cannot even start (no relay_info) fails inside the claim:
// the request sees the result on entering pending and searches again.
func TestDeviceFailsDuringClaim(t *testing.T) {
	r := newRig(t)
	inv := rigInventory()
	inv.Devices[0].RelayInfo = "" // even1 cannot be power-cycled
	require.NoError(t, r.apply(fsm.CmdInventorySync, &fsm.InventorySync{Inventory: inv, ShipIt: true}).Error())
	r.ready(even1, even2)
	q := r.createB2G("any", "even")
	r.requireRequest(q.ID, StatePending, even2)
	require.Equal(t, lifeguard.StateFailedPowerCycling, lifeguard.State(r.device(even1).State))
	require.Zero(t, r.device(even1).RequestID)
	require.Equal(t, 2, r.request(q.ID).Counters[counterSearches])
}

// setImagingResult stores a result on the request's claim without the
// lifeguard_finished event, as when the original's notification POST was
// lost but the link row was updated. Nothing else runs concurrently, so
// writing through Read is safe here.
func (r *rig) setImagingResult(id int64, result lifeguard.Result) {
	r.f.Read(func(s *fsm.State) { s.Requests[id].ImagingResult = string(result) })
}

// The pending poll picks up a result whose event was missed.
func TestPendingPollsResult(t *testing.T) {
	tests := []struct {
		dev        string
		result     lifeguard.Result
		want       State
		wantDevice string
	}{
		{"any", lifeguard.ResultComplete, StateReady, even1},
		{"any", lifeguard.ResultFailedBadDevice, StatePending, even2},
		{even1, lifeguard.ResultFailedBadDevice, StateFailedBadDevice, ""},
		{"any", lifeguard.ResultFailedBadImage, StatePending, even2},
	}
	for _, tc := range tests {
		t.Run(tc.dev+"/"+string(tc.result), func(t *testing.T) {
			r := newRig(t)
			r.ready(even1, even2)
			q := r.createB2G(tc.dev, "any")
			r.requireRequest(q.ID, StatePending, even1)
			r.setImagingResult(q.ID, tc.result)
			r.timeout(q.ID)
			r.requireRequest(q.ID, tc.want, tc.wantDevice)
		})
	}
}

// A device that never reports. An "any" request gives up on it
// after 20 polls and searches again; a named one waits until it expires.
func TestSilentLifeguard(t *testing.T) {
	t.Run("any", func(t *testing.T) {
		r := newRig(t)
		r.ready(even1)
		q := r.createB2G("any", "any")
		first := r.request(q.ID)
		require.Equal(t, 60*time.Second, first.StateDeadline.Sub(first.StateEntered), "polls are 60 s apart")
		r.timeouts(q.ID, 19)
		r.requireRequest(q.ID, StatePending, even1)
		r.timeout(q.ID)
		r.requireRequest(q.ID, StateFindingDevice, "")
		require.Equal(t, 20, r.request(q.ID).Counters[counterPolls])
		require.Zero(t, r.device(even1).RequestID)
		require.Equal(t, lifeguard.StatePXEPowerCycling, lifeguard.State(r.device(even1).State), "the device is left as it is")

		// The pending counter is a lifetime budget (as the original):
		// the next device, claimed as soon as it is ready, gets one poll.
		r.ready(even2)
		r.requireRequest(q.ID, StatePending, even2)
		r.timeout(q.ID)
		r.requireRequest(q.ID, StateFindingDevice, "")
	})
	t.Run("specific", func(t *testing.T) {
		r := newRig(t)
		r.ready(even1)
		q := r.createB2G(even1, "any")
		r.timeouts(q.ID, 50)
		r.requireRequest(q.ID, StatePending, even1)
		r.at = r.request(q.ID).Expires
		require.Equal(t, StateClosed, r.expire(q.ID).State)
	})
}

// Failed requests ignore close and expire.
func TestFailedRequestsIgnoreCloseAndExpire(t *testing.T) {
	r := newRig(t)
	r.force(even1, lifeguard.StateNew, lifeguard.StateFailedPXEBooting)
	q := r.createB2G(even1, "any")
	r.requireRequest(q.ID, StateFailedBadDevice, "")
	before := r.request(q.ID)

	res := r.closeRequest(q.ID)
	require.True(t, res.Ignored)
	require.Equal(t, StateFailedBadDevice, res.State)
	r.at = q.Expires.Add(time.Hour)
	res = r.expire(q.ID)
	require.True(t, res.Ignored)
	after := r.request(q.ID)
	require.Equal(t, StateFailedBadDevice, State(after.State))
	require.Equal(t, before.Generation, after.Generation)
}
