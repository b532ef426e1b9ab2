package lifeguard

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/fsm"
)

// Lifeguard scenarios that do not need hardware.

// Locking a device out and letting it back in.
func TestScenario_LockedOut(t *testing.T) {
	r := newRig(t)
	r.toReady(pandaA)

	got := r.force(pandaA, StateReady, StateLockedOut)
	require.Equal(t, StateLockedOut, got.State)
	require.True(t, r.device(pandaA).StateDeadline.IsZero(), "locked_out has a deadline")

	_, err := r.tryForce(pandaA, StateReady, StateLockedOut)
	require.ErrorIs(t, err, fsm.ErrConflict, "state-change ready → locked_out of a locked_out device")
	require.Equal(t, StateLockedOut, r.state(pandaA))

	gen := r.device(pandaA).Generation
	for _, e := range allEvents() {
		if e == "timeout" {
			continue
		}
		got := r.event(pandaA, e, argsFor(e))
		require.True(t, got.Ignored, "Handle(locked_out, %s) not ignored (now %s)", e, got.State)
		require.Equal(t, StateLockedOut, got.State, "Handle(locked_out, %s) = %s, want locked_out", e, got.State)
	}
	require.True(t, r.timeout(pandaA).Ignored, "Handle(locked_out, timeout) not ignored")
	require.Equal(t, gen, r.device(pandaA).Generation, "generation after ignored events")

	mark := r.mark()
	got = r.force(pandaA, StateLockedOut, StateReady)
	require.Equal(t, StateReady, got.State)
	d := r.device(pandaA)
	period := spread(&fsm.Device{Name: pandaA, Generation: gen}, deviceStates[StateReady])
	require.Equal(t, r.at.Add(period), d.StateDeadline, "deadline of ready after the forced change")
	require.True(t, period > 480*time.Second && period <= 600*time.Second, "health-check period %s", period)
	require.Equal(t, gen+1, d.Generation)
	// The entry is reported, so the owner runs ready's health check.
	require.Equal(t, []State{StateReady}, r.entered(pandaA, mark))
	require.Equal(t, ActionHealthCheck, StateReady.Action())
}

// A device in a state the machine does not know can be forced
// anywhere, whatever the caller thinks its state is.
func TestScenario_UnknownState(t *testing.T) {
	base := newRig(t)
	got := base.force(pandaA, StateNew, "off")
	require.Equal(t, State("off"), got.State)
	require.True(t, base.device(pandaA).StateDeadline.IsZero(), "unknown state has a deadline")
	require.True(t, base.timeout(pandaA).Ignored, "Handle(off, timeout) not ignored")

	for _, from := range []State{"anything", "off", StateReady, ""} {
		t.Run("from "+string(from), func(t *testing.T) {
			r := base.clone(t)
			got := r.force(pandaA, from, StateReady)
			require.Equal(t, StateReady, got.State, "state-change %s → ready of a device in off", from)
		})
	}
	// An unknown state accepts every please_*.
	for _, tc := range []flowStep{pleaseB2G, pleasePowerCycle, eventStep(EventPleaseSelfTest, StatePXEPowerCycling), eventStep(EventPleaseStartMaintenance, StatePXEPowerCycling)} {
		t.Run(string(tc.Event), func(t *testing.T) {
			r := base.clone(t)
			r.run(pandaA, tc)
		})
	}
	t.Run("other events", func(t *testing.T) {
		r := base.clone(t)
		got := r.event(pandaA, EventPowerCycleOK, fsm.EventArgs{})
		require.True(t, got.Ignored, "Handle(off, power_cycle_ok) not ignored")
		require.Equal(t, State("off"), got.State)
	})
}

func TestStateChange_Refused(t *testing.T) {
	tests := []struct {
		name     string
		from, to State
		want     error
	}{
		{"wrong from", StateReady, StateLockedOut, fsm.ErrConflict},
		{"empty from", "", StateLockedOut, fsm.ErrConflict},
		{"no target", StateNew, "", fsm.ErrInvalid},
		{"target too long", StateNew, State(strings.Repeat("x", 65)), fsm.ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			gen := r.device(pandaA).Generation
			_, err := r.tryForce(pandaA, tc.from, tc.to)
			require.ErrorIs(t, err, tc.want, "state-change %q → %q of a new device", tc.from, tc.to)
			require.Equal(t, StateNew, r.state(pandaA))
			require.Equal(t, gen, r.device(pandaA).Generation)
		})
	}
}

// A refusal is one of fsm's sentinels, the only errors that keep their
// identity in a result forwarded from the leader (the API maps ErrConflict
// to 409): the machine itself refuses no forced change, so it has no error
// of its own for one.
func TestStateChange_RefusalSurvivesTheWire(t *testing.T) {
	r := newRig(t)
	res := r.apply(fsm.CmdDeviceStateChange, &fsm.DeviceStateChange{Device: pandaA, From: string(StateReady), To: string(StateLockedOut)})
	b, err := json.Marshal(res)
	require.NoError(t, err)
	var forwarded fsm.Result
	require.NoError(t, json.Unmarshal(b, &forwarded))
	require.ErrorIs(t, res.Error(), fsm.ErrConflict)
	require.ErrorIs(t, forwarded.Error(), fsm.ErrConflict)
	require.Equal(t, res.Error().Error(), forwarded.Error().Error())
}

// An image without a PXE config for the device's hardware
// type is not an error; the device stays where it is.
func TestScenario_ImageWithoutPXE(t *testing.T) {
	for _, image := range []string{"fennec", "no-such-image"} {
		t.Run(image, func(t *testing.T) {
			r := newRig(t)
			r.toReady(pandaA)
			before := r.device(pandaA)
			got := r.event(pandaA, EventPleaseImage, pleaseImageArgs(image, ""))
			require.False(t, got.Ignored, "Handle(ready, please_image %s) ignored", image)
			require.Equal(t, StateReady, got.State, "Handle(ready, please_image %s) = %s, want ready", image, got.State)
			after := r.device(pandaA)
			require.Equal(t, before.Generation, after.Generation, "generation")
			require.Empty(t, after.NextImage, "next image")
		})
	}
}

// No relay_info, no power cycle, and no self-test either.
func TestScenario_NoRelay(t *testing.T) {
	r := newRig(t)
	r.toReady(pandaNoRelay)
	mark := r.mark()
	r.run(pandaNoRelay, eventStep(EventPleasePowerCycle, StateFailedPowerCycling))
	require.Equal(t, []State{StatePCPowerCycling, StateFailedPowerCycling}, r.entered(pandaNoRelay, mark))
	require.True(t, r.timeout(pandaNoRelay).Ignored, "Handle(failed_power_cycling, timeout) not ignored")
	require.Equal(t, StateFailedPowerCycling, r.state(pandaNoRelay))

	// A self-test cannot power-cycle it either.
	mark = r.mark()
	r.run(pandaNoRelay, eventStep(EventPleaseSelfTest, StateFailedPowerCycling))
	require.Equal(t, []State{StateStartSelfTest, StatePXEPowerCycling, StateFailedPowerCycling}, r.entered(pandaNoRelay, mark))

	// The other devices are not affected.
	require.Equal(t, StateNew, r.state(pandaA))
}

func TestPleaseImage_Args(t *testing.T) {
	b2g := "b2g"
	empty := ""
	tests := []struct {
		name string
		args fsm.EventArgs
	}{
		{"no image", fsm.EventArgs{BootConfig: stringArg(b2gBootConfig)}},
		{"empty image", fsm.EventArgs{Image: &empty, BootConfig: stringArg(b2gBootConfig)}},
		{"no boot_config", fsm.EventArgs{Image: &b2g}},
		{"number boot_config", fsm.EventArgs{Image: &b2g, BootConfig: json.RawMessage(`42`)}},
		{"object boot_config", fsm.EventArgs{Image: &b2g, BootConfig: json.RawMessage(`{"b2gbase":"x"}`)}},
		{"array boot_config", fsm.EventArgs{Image: &b2g, BootConfig: json.RawMessage(`["x"]`)}},
	}
	for _, tc := range tests {
		t.Run(tc.name+"/accepting", func(t *testing.T) {
			r := newRig(t)
			r.toReady(pandaA)
			gen := r.device(pandaA).Generation
			_, err := r.tryEvent(pandaA, EventPleaseImage, tc.args)
			require.ErrorIs(t, err, fsm.ErrInvalid, "Handle(ready, please_image %s)", tc.name)
			d := r.device(pandaA)
			require.Equal(t, StateReady, State(d.State))
			require.Equal(t, gen, d.Generation)
			require.Empty(t, d.NextImage)
		})
		t.Run(tc.name+"/not accepting", func(t *testing.T) {
			for _, state := range []State{StatePXEBooting, StateLockedOut, StateMaintenanceMode, StateFailedPXEBooting} {
				r := newRig(t)
				r.force(pandaA, StateNew, state)
				got, err := r.tryEvent(pandaA, EventPleaseImage, tc.args)
				require.NoError(t, err, "Handle(%s, please_image %s)", state, tc.name)
				require.True(t, got.Ignored, "Handle(%s, please_image %s) not ignored", state, tc.name)
				require.Equal(t, state, got.State)
			}
		})
	}
}
