package lifeguard

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/fsm"
)

// Bugs of Mozpool 4.2.1 that the table fixes (docs/api.md#differences-from-mozpool-421).

// The original stayed in start_maintenance, with no timeout, when the
// maintenance image or its PXE config was missing.
func TestFix_MaintenanceWithoutPXE(t *testing.T) {
	for _, tc := range []struct {
		name string
		opt  rigOption
	}{
		{"no pxe config", withoutPXE("maintenance")},
		{"no image", withoutImage("maintenance")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, tc.opt)
			r.toReady(pandaA)
			mark := r.mark()
			r.run(pandaA, eventStep(EventPleaseStartMaintenance, StateFailedPXEBooting))
			require.Equal(t, []State{StateStartMaintenance, StateFailedPXEBooting}, r.entered(pandaA, mark))
			require.Empty(t, r.device(pandaA).NextImage)
		})
	}
}

// The original, having decided failed_pxe_booting because the next image
// had no PXE config, still power-cycled the device.
func TestFix_NoPowerCycleAfterFailedPXE(t *testing.T) {
	r := newRig(t)
	r.toReady(pandaA)
	r.run(pandaA, concatSteps([]flowStep{pleaseB2G}, toPXEBooting)...)
	pxeGen := r.device(pandaA).Generation - 1 // the entry of pxe_power_cycling

	// The operator drops the mapping while the device boots.
	res := r.apply(fsm.CmdImagePXEConfigSet, &fsm.ImagePXEConfigSet{Image: "b2g", HardwareType: pandaType, HardwareModel: pandaModel})
	require.NoError(t, res.Error())

	mark := r.mark()
	r.run(pandaA, timeoutStep(StateFailedPXEBooting))
	var trs []fsm.Transition
	for _, n := range r.notes[mark:] {
		trs = append(trs, n.Transitions...)
	}
	require.Len(t, trs, 2, "transitions %v", trs)
	require.Equal(t, StatePXEPowerCycling, State(trs[0].State))
	require.Equal(t, StateFailedPXEBooting, State(trs[1].State), "last transition (no power cycle after failing)")
	d := r.device(pandaA)
	require.Equal(t, trs[1].Generation, d.Generation)
	require.Less(t, trs[0].Generation, d.Generation, "the pxe_power_cycling entry is already stale")

	// Results of the earlier power cycle change nothing.
	for _, gen := range []uint64{0, pxeGen, trs[0].Generation} {
		var got fsm.EventResult
		err := r.apply(fsm.CmdDeviceEvent, &fsm.DeviceEvent{Device: pandaA, Event: string(EventPowerCycleOK), Generation: gen}).Decode(&got)
		require.NoError(t, err)
		require.True(t, got.Ignored, "power_cycle_ok of generation %d in failed_pxe_booting not ignored", gen)
		require.Equal(t, StateFailedPXEBooting, State(got.State))
	}
	require.False(t, slices.Contains(r.entered(pandaA, mark)[1:], StatePXEPowerCycling), "entered %v", r.entered(pandaA, mark))

	// A forced PXE power cycle without a next image fails the same way.
	r2 := newRig(t)
	mark = r2.mark()
	got := r2.force(pandaA, StateNew, StatePXEPowerCycling)
	require.Equal(t, StateFailedPXEBooting, got.State)
	require.Equal(t, []State{StatePXEPowerCycling, StateFailedPXEBooting}, r2.entered(pandaA, mark))
}

// An imaging attempt that ends in a plain reboot must not leave its image
// recorded as the one on the card: pc_power_cycling drops the next image.
func TestFix_StaleNextImage(t *testing.T) {
	androidFlow := concatSteps([]flowStep{pleaseAndroid}, toAndExtracting, []flowStep{
		eventStep(EventAndroidRebooting, StateSUTVerifying), eventStep(EventSUTVerifyOK, StateSUTSDCardVerifying), eventStep(EventSUTSDCardOK, StateReady),
	})
	reboot := []flowStep{eventStep(EventPowerCycleOK, StatePCRebooting), timeoutStep(StatePCPinging), eventStep(EventPingOK, StateReady)}
	tests := []struct {
		name string
		// fail takes a device being imaged with b2g to pc_power_cycling.
		fail func(r *rig)
	}{
		{"download fails, self-test is a reboot", func(r *rig) {
			r.run(pandaA, toB2GDownloading...)
			for i := 0; i < downloadLimit; i++ {
				r.run(pandaA, pxeAgain(toB2GDownloading)...)
			}
			r.run(pandaA, timeoutStep(StatePCPowerCycling))
		}},
		{"pxe boot fails, operator asks for a self-test", func(r *rig) {
			r.run(pandaA, toPXEBooting...)
			for i := 0; i < pxeBootLimit; i++ {
				r.run(pandaA, pxeAgain(toPXEBooting)...)
			}
			r.run(pandaA, timeoutStep(StateFailedPXEBooting), eventStep(EventPleaseSelfTest, StatePCPowerCycling))
		}},
		{"forced to a plain reboot", func(r *rig) {
			r.run(pandaA, toMobileInit...)
			r.force(pandaA, StateMobileInitStarted, StatePCPowerCycling)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, withoutPXE("self-test"))
			r.toReady(pandaA)
			r.run(pandaA, androidFlow...)
			r.run(pandaA, pleaseB2G)
			require.Equal(t, "b2g", r.device(pandaA).NextImage)

			tc.fail(r)
			require.Equal(t, StatePCPowerCycling, r.state(pandaA))
			require.Empty(t, r.device(pandaA).NextImage, "next image in pc_power_cycling")
			r.run(pandaA, reboot...)
			d := r.device(pandaA)
			require.Equal(t, "android", d.Image, "image after the reboot (b2g was never written)")
			require.Empty(t, d.BootConfig, "boot config after the reboot")
		})
	}
}
