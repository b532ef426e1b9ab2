package lifeguard

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/fsm"
)

// The happy paths (docs/design.md#the-device-machine), as events and
// timeouts with the state after each, and every state the device passes
// through.

func TestFlow_Image(t *testing.T) {
	tests := []struct {
		name       string
		image      string
		bootConfig string
		steps      []flowStep
		path       []State
	}{
		{
			name: "b2g", image: "b2g", bootConfig: b2gBootConfig,
			steps: concatSteps([]flowStep{pleaseB2G}, toSDCardVerifying, []flowStep{eventStep(EventSUTSDCardOK, StateReady)}),
			path: []State{StateStartPXEBoot, StatePXEPowerCycling, StatePXEBooting, StateMobileInitStarted,
				StateB2GDownloading, StateB2GExtracting, StateSUTVerifying, StateSUTSDCardVerifying, StateOperationComplete, StateReady},
		},
		{
			name: "android", image: "android", bootConfig: "",
			steps: concatSteps([]flowStep{pleaseAndroid}, toAndExtracting, []flowStep{
				eventStep(EventAndroidRebooting, StateSUTVerifying), eventStep(EventSUTVerifyOK, StateSUTSDCardVerifying), eventStep(EventSUTSDCardOK, StateReady),
			}),
			path: []State{StateStartPXEBoot, StatePXEPowerCycling, StatePXEBooting, StateMobileInitStarted,
				StateAndroidDownloading, StateAndroidExtracting, StateSUTVerifying, StateSUTSDCardVerifying, StateOperationComplete, StateReady},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			r.toReady(pandaA)
			mark := r.mark()
			r.run(pandaA, tc.steps[0])
			d := r.device(pandaA)
			require.Equal(t, tc.image, d.NextImage, "next image while imaging")
			require.Equal(t, tc.bootConfig, d.NextBootConfig, "next boot config while imaging")
			r.run(pandaA, tc.steps[1:]...)
			require.Equal(t, tc.path, r.entered(pandaA, mark), "states entered (want the happy path)")

			d = r.device(pandaA)
			require.Equal(t, tc.image, d.Image, "image after the flow")
			require.Equal(t, tc.bootConfig, d.BootConfig, "boot config after the flow")
			require.Empty(t, d.NextImage, "next image after the flow")
			require.Empty(t, d.NextBootConfig, "next boot config after the flow")
			require.Empty(t, d.Counters, "counters after the flow")
			require.False(t, d.StateDeadline.IsZero(), "ready has a deadline")
		})
	}
}

// The card is overwritten once extracting starts: from then until the flow
// completes, the device carries no usable image.
func TestFlow_ImageClobbers(t *testing.T) {
	r := newRig(t)
	r.toReady(pandaA)
	r.run(pandaA, concatSteps([]flowStep{pleaseAndroid}, toAndExtracting, []flowStep{
		eventStep(EventAndroidRebooting, StateSUTVerifying), eventStep(EventSUTVerifyOK, StateSUTSDCardVerifying), eventStep(EventSUTSDCardOK, StateReady),
	})...)
	require.Equal(t, "android", r.device(pandaA).Image)

	r.run(pandaA, concatSteps([]flowStep{pleaseB2G}, toB2GDownloading)...)
	require.Equal(t, "android", r.device(pandaA).Image, "image while downloading (card untouched)")
	r.run(pandaA, eventStep(EventB2GExtracting, StateB2GExtracting))
	require.Empty(t, r.device(pandaA).Image, "image while extracting")
}

func TestFlow_Reboot(t *testing.T) {
	r := newRig(t)
	r.toReady(pandaA)
	r.run(pandaA, concatSteps([]flowStep{pleaseB2G}, toSDCardVerifying, []flowStep{eventStep(EventSUTSDCardOK, StateReady)})...)

	mark := r.mark()
	r.run(pandaA, pleasePowerCycle, eventStep(EventPowerCycleOK, StatePCRebooting), timeoutStep(StatePCPinging), eventStep(EventPingOK, StateReady))
	require.Equal(t, []State{StatePCPowerCycling, StatePCRebooting, StatePCPinging, StateOperationComplete, StateReady}, r.entered(pandaA, mark))
	d := r.device(pandaA)
	require.Equal(t, "b2g", d.Image, "a reboot keeps the image")
	require.Equal(t, b2gBootConfig, d.BootConfig, "a reboot keeps the boot config")
	require.Empty(t, d.NextImage)
	require.Empty(t, d.Counters)
}

func TestFlow_SelfTest(t *testing.T) {
	selfTest := []flowStep{eventStep(EventPowerCycleOK, StatePXEBooting), eventStep(EventMobileInitStarted, StateMobileInitStarted),
		eventStep(EventSelfTestRunning, StateSelfTestRunning)}
	selfTestPath := []State{StateStartSelfTest, StatePXEPowerCycling, StatePXEBooting, StateMobileInitStarted, StateSelfTestRunning}
	tests := []struct {
		name string
		end  flowStep
		path []State
	}{
		{"self_test_ok", eventStep(EventSelfTestOK, StateReady), slices.Concat(selfTestPath, []State{StateReady})},
		{"failed_self_test", eventStep(EventFailedSelfTest, StateFailedSelfTest), slices.Concat(selfTestPath, []State{StateFailedSelfTest})},
		// A hung self-test is net-booted again once; the second hang fails
		// the device.
		{"timeout", timeoutStep(StateFailedSelfTest), slices.Concat(selfTestPath, []State{StateFailedSelfTest})},
	}
	hungOnce := []flowStep{timeoutStep(StatePXEPowerCycling)}
	hungOnce = append(hungOnce, selfTest...)
	for _, tc := range tests {
		// A new device self-tests on its first timeout.
		t.Run("new/"+tc.name, func(t *testing.T) {
			r := newRig(t)
			mark := r.mark()
			r.run(pandaA, timeoutStep(StatePXEPowerCycling))
			require.Equal(t, "self-test", r.device(pandaA).NextImage)
			require.Empty(t, r.device(pandaA).NextBootConfig)
			r.run(pandaA, selfTest...)
			path := tc.path
			if tc.name == "timeout" {
				r.run(pandaA, hungOnce...)
				path = slices.Concat(selfTestPath, selfTestPath[1:], []State{StateFailedSelfTest})
			}
			r.run(pandaA, tc.end)
			require.Equal(t, path, r.entered(pandaA, mark))
			require.Equal(t, tc.end.Want, r.state(pandaA))
		})
		t.Run("imaged/"+tc.name, func(t *testing.T) {
			r := newRig(t)
			r.toReady(pandaA)
			r.run(pandaA, concatSteps([]flowStep{pleaseB2G}, toSDCardVerifying, []flowStep{eventStep(EventSUTSDCardOK, StateReady)})...)
			require.Equal(t, "b2g", r.device(pandaA).Image)

			mark := r.mark()
			r.run(pandaA, eventStep(EventPleaseSelfTest, StatePXEPowerCycling))
			r.run(pandaA, selfTest...)
			d := r.device(pandaA)
			require.Empty(t, d.Image, "image once the self-test runs")
			require.Empty(t, d.BootConfig, "boot config once the self-test runs")
			require.Empty(t, d.NextImage, "next image once the self-test runs")
			path := tc.path
			if tc.name == "timeout" {
				r.run(pandaA, hungOnce...)
				path = slices.Concat(tc.path[:len(selfTestPath)], selfTestPath[1:], []State{StateFailedSelfTest})
			}
			r.run(pandaA, tc.end)
			require.Equal(t, path, r.entered(pandaA, mark))
			require.Empty(t, r.device(pandaA).Image, "image after the self-test")
		})
	}
}

// Without a self-test PXE config a self-test is a reboot and
// a ping.
func TestFlow_SelfTestWithoutPXE(t *testing.T) {
	r := newRig(t, withoutPXE("self-test"))
	mark := r.mark()
	r.run(pandaA, timeoutStep(StatePCPowerCycling), eventStep(EventPowerCycleOK, StatePCRebooting), timeoutStep(StatePCPinging), eventStep(EventPingOK, StateReady))
	require.Equal(t, []State{StateStartSelfTest, StatePCPowerCycling, StatePCRebooting, StatePCPinging, StateOperationComplete, StateReady},
		r.entered(pandaA, mark))
	require.Empty(t, r.device(pandaA).NextImage)
}

// Maintenance: PXE-boot the maintenance image and stay in maintenance_mode,
// which ignores please_image and please_power_cycle but leaves through
// please_self_test or please_start_maintenance.
func TestFlow_Maintenance(t *testing.T) {
	r := newRig(t)
	r.toReady(pandaA)
	mark := r.mark()
	r.run(pandaA, eventStep(EventPleaseStartMaintenance, StatePXEPowerCycling))
	require.Equal(t, "maintenance", r.device(pandaA).NextImage)
	r.run(pandaA, eventStep(EventPowerCycleOK, StatePXEBooting), eventStep(EventMobileInitStarted, StateMobileInitStarted), eventStep(EventMaintMode, StateMaintenanceMode))
	require.Equal(t, []State{StateStartMaintenance, StatePXEPowerCycling, StatePXEBooting, StateMobileInitStarted, StateMaintenanceMode},
		r.entered(pandaA, mark))
	d := r.device(pandaA)
	require.Empty(t, d.Image, "image in maintenance mode")
	require.True(t, d.StateDeadline.IsZero(), "maintenance_mode has a deadline")

	for _, e := range []Event{EventPleaseImage, EventPleasePowerCycle, EventPowerCycleOK, EventMaintMode} {
		got := r.event(pandaA, e, argsFor(e))
		require.True(t, got.Ignored, "Handle(maintenance_mode, %s) not ignored (now %s)", e, got.State)
		require.Equal(t, StateMaintenanceMode, got.State, "Handle(maintenance_mode, %s) = %s, want maintenance_mode", e, got.State)
	}
	require.True(t, r.timeout(pandaA).Ignored, "Handle(maintenance_mode, timeout) not ignored")

	c := r.clone(t)
	c.run(pandaA, eventStep(EventPleaseStartMaintenance, StatePXEPowerCycling))
	r.run(pandaA, eventStep(EventPleaseSelfTest, StatePXEPowerCycling))
	require.Equal(t, "self-test", r.device(pandaA).NextImage)
}

func TestFlow_Ready(t *testing.T) {
	t.Run("timeout re-enters", func(t *testing.T) {
		r := newRig(t)
		r.toReady(pandaA)
		before := r.device(pandaA)
		r.run(pandaA, timeoutStep(StateReady))
		after := r.device(pandaA)
		require.Equal(t, before.Generation+1, after.Generation, "generation after the ready timeout")
		require.True(t, after.StateDeadline.After(before.StateDeadline), "deadline %v not after %v", after.StateDeadline, before.StateDeadline)
	})
	// A failed health check starts a self-test.
	t.Run("failed", func(t *testing.T) {
		r := newRig(t)
		r.toReady(pandaA)
		mark := r.mark()
		r.run(pandaA, eventStep(EventFailed, StatePXEPowerCycling))
		require.Equal(t, []State{StateStartSelfTest, StatePXEPowerCycling}, r.entered(pandaA, mark))
	})
	t.Run("please in new and troubleshooting", func(t *testing.T) {
		for _, from := range []State{StateNew, StateTroubleshooting} {
			r := newRig(t)
			if from != StateNew {
				r.force(pandaA, StateNew, from)
			}
			c := r.clone(t)
			c.run(pandaA, pleaseB2G)
			c = r.clone(t)
			c.run(pandaA, pleasePowerCycle)
			c = r.clone(t)
			c.run(pandaA, eventStep(EventPleaseStartMaintenance, StatePXEPowerCycling))
			r.run(pandaA, eventStep(EventPleaseSelfTest, StatePXEPowerCycling))
		}
	})
	t.Run("no please while busy", func(t *testing.T) {
		r := newRig(t)
		r.toReady(pandaA)
		r.run(pandaA, concatSteps([]flowStep{pleaseB2G}, toPXEBooting)...)
		for _, e := range pleaseEvents {
			got := r.event(pandaA, e, argsFor(e))
			require.True(t, got.Ignored, "Handle(pxe_booting, %s) not ignored (now %s)", e, got.State)
		}
		require.Equal(t, "b2g", r.device(pandaA).NextImage, "a busy device cannot be re-targeted")
	})
}

// A result of a hardware action carries the generation of the entry that
// started it; a late one is dropped (docs/design.md#generations).
func TestFlow_StaleResult(t *testing.T) {
	r := newRig(t)
	r.toReady(pandaA)
	r.run(pandaA, pleaseB2G)
	first := r.device(pandaA).Generation
	r.run(pandaA, eventStep(EventPowerCycleFailed, StatePXEPowerCycling))

	var res fsm.EventResult
	err := r.apply(fsm.CmdDeviceEvent, &fsm.DeviceEvent{Device: pandaA, Event: string(EventPowerCycleOK), Generation: first}).Decode(&res)
	require.NoError(t, err)
	require.True(t, res.Ignored, "power_cycle_ok of generation %d handled in generation %d", first, r.device(pandaA).Generation)
	require.Equal(t, StatePXEPowerCycling, State(res.State))

	res = fsm.EventResult{}
	err = r.apply(fsm.CmdDeviceEvent, &fsm.DeviceEvent{Device: pandaA, Event: string(EventPowerCycleOK), Generation: r.device(pandaA).Generation}).Decode(&res)
	require.NoError(t, err)
	require.False(t, res.Ignored)
	require.Equal(t, StatePXEBooting, State(res.State))
}
