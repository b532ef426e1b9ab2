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

	got := r.force(pandaA, "ready", "locked_out")
	require.Equal(t, "locked_out", got.State)
	require.True(t, r.device(pandaA).StateDeadline.IsZero(), "locked_out has a deadline")

	_, err := r.tryForce(pandaA, "ready", "locked_out")
	require.ErrorIs(t, err, fsm.ErrConflict, "state-change ready → locked_out of a locked_out device")
	require.Equal(t, "locked_out", r.state(pandaA))

	gen := r.device(pandaA).Generation
	for _, e := range allEvents() {
		if e == "timeout" {
			continue
		}
		got := r.event(pandaA, e, argsFor(e))
		require.True(t, got.Ignored, "Handle(locked_out, %s) not ignored (now %s)", e, got.State)
		require.Equal(t, "locked_out", got.State, "Handle(locked_out, %s) = %s, want locked_out", e, got.State)
	}
	require.True(t, r.timeout(pandaA).Ignored, "Handle(locked_out, timeout) not ignored")
	require.Equal(t, gen, r.device(pandaA).Generation, "generation after ignored events")

	mark := r.mark()
	got = r.force(pandaA, "locked_out", "ready")
	require.Equal(t, "ready", got.State)
	d := r.device(pandaA)
	require.Equal(t, r.at.Add(600*time.Second), d.StateDeadline, "deadline of ready after the forced change")
	require.Equal(t, gen+1, d.Generation)
	// The entry is reported, so the owner runs ready's health check.
	require.Equal(t, []string{"ready"}, r.entered(pandaA, mark))
	require.Equal(t, ActionHealthCheck, ActionFor("ready"))
}

// A device in a state the machine does not know can be forced
// anywhere, whatever the caller thinks its state is.
func TestScenario_UnknownState(t *testing.T) {
	base := newRig(t)
	got := base.force(pandaA, "new", "off")
	require.Equal(t, "off", got.State)
	require.True(t, base.device(pandaA).StateDeadline.IsZero(), "unknown state has a deadline")
	require.True(t, base.timeout(pandaA).Ignored, "Handle(off, timeout) not ignored")

	for _, from := range []string{"anything", "off", "ready", ""} {
		t.Run("from "+from, func(t *testing.T) {
			r := base.clone(t)
			got := r.force(pandaA, from, "ready")
			require.Equal(t, "ready", got.State, "state-change %s → ready of a device in off", from)
		})
	}
	// An unknown state accepts every please_*.
	for _, tc := range []flowStep{pleaseB2G, pleasePowerCycle, eventStep("please_self_test", "pxe_power_cycling"), eventStep("please_start_maintenance", "pxe_power_cycling")} {
		t.Run(tc.Event, func(t *testing.T) {
			r := base.clone(t)
			r.run(pandaA, tc)
		})
	}
	t.Run("other events", func(t *testing.T) {
		r := base.clone(t)
		got := r.event(pandaA, "power_cycle_ok", fsm.EventArgs{})
		require.True(t, got.Ignored, "Handle(off, power_cycle_ok) not ignored")
		require.Equal(t, "off", got.State)
	})
}

func TestStateChange_Refused(t *testing.T) {
	tests := []struct {
		name     string
		from, to string
		want     error
	}{
		{"wrong from", "ready", "locked_out", fsm.ErrConflict},
		{"empty from", "", "locked_out", fsm.ErrConflict},
		{"no target", "new", "", fsm.ErrInvalid},
		{"target too long", "new", strings.Repeat("x", 65), fsm.ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			gen := r.device(pandaA).Generation
			_, err := r.tryForce(pandaA, tc.from, tc.to)
			require.ErrorIs(t, err, tc.want, "state-change %q → %q of a new device", tc.from, tc.to)
			require.Equal(t, "new", r.state(pandaA))
			require.Equal(t, gen, r.device(pandaA).Generation)
		})
	}
}

// An image without a PXE config for the device's hardware
// type is not an error; the device stays where it is.
func TestScenario_ImageWithoutPXE(t *testing.T) {
	for _, image := range []string{"fennec", "no-such-image"} {
		t.Run(image, func(t *testing.T) {
			r := newRig(t)
			r.toReady(pandaA)
			before := r.device(pandaA)
			got := r.event(pandaA, "please_image", pleaseImageArgs(image, ""))
			require.False(t, got.Ignored, "Handle(ready, please_image %s) ignored", image)
			require.Equal(t, "ready", got.State, "Handle(ready, please_image %s) = %s, want ready", image, got.State)
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
	r.run(pandaNoRelay, eventStep("please_power_cycle", "failed_power_cycling"))
	require.Equal(t, []string{"pc_power_cycling", "failed_power_cycling"}, r.entered(pandaNoRelay, mark))
	require.True(t, r.timeout(pandaNoRelay).Ignored, "Handle(failed_power_cycling, timeout) not ignored")
	require.Equal(t, "failed_power_cycling", r.state(pandaNoRelay))

	// A self-test cannot power-cycle it either.
	mark = r.mark()
	r.run(pandaNoRelay, eventStep("please_self_test", "failed_power_cycling"))
	require.Equal(t, []string{"start_self_test", "pxe_power_cycling", "failed_power_cycling"}, r.entered(pandaNoRelay, mark))

	// The other devices are not affected.
	require.Equal(t, "new", r.state(pandaA))
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
			_, err := r.tryEvent(pandaA, "please_image", tc.args)
			require.ErrorIs(t, err, fsm.ErrInvalid, "Handle(ready, please_image %s)", tc.name)
			d := r.device(pandaA)
			require.Equal(t, "ready", d.State)
			require.Equal(t, gen, d.Generation)
			require.Empty(t, d.NextImage)
		})
		t.Run(tc.name+"/not accepting", func(t *testing.T) {
			for _, state := range []string{"pxe_booting", "locked_out", "maintenance_mode", "failed_pxe_booting"} {
				r := newRig(t)
				r.force(pandaA, "new", state)
				got, err := r.tryEvent(pandaA, "please_image", tc.args)
				require.NoError(t, err, "Handle(%s, please_image %s)", state, tc.name)
				require.True(t, got.Ignored, "Handle(%s, please_image %s) not ignored", state, tc.name)
				require.Equal(t, state, got.State)
			}
		})
	}
}
