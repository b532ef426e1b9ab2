package lifeguard

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// concatSteps concatenates step lists into a new one.
func concatSteps(parts ...[]flowStep) []flowStep {
	var out []flowStep
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// sameSteps returns the same steps for every failure.
func sameSteps(steps ...flowStep) func(int) []flowStep {
	return func(int) []flowStep { return steps }
}

// Steps from a pxe_power_cycling device back to each imaging step, as a
// device that is net-booted again walks them.
var (
	toPXEBooting       = []flowStep{eventStep(EventPowerCycleOK, StatePXEBooting)}
	toMobileInit       = concatSteps(toPXEBooting, []flowStep{eventStep(EventMobileInitStarted, StateMobileInitStarted)})
	toB2GDownloading   = concatSteps(toMobileInit, []flowStep{eventStep(EventB2GDownloading, StateB2GDownloading)})
	toB2GExtracting    = concatSteps(toB2GDownloading, []flowStep{eventStep(EventB2GExtracting, StateB2GExtracting)})
	toAndDownloading   = concatSteps(toMobileInit, []flowStep{eventStep(EventAndroidDownloading, StateAndroidDownloading)})
	toAndExtracting    = concatSteps(toAndDownloading, []flowStep{eventStep(EventAndroidExtracting, StateAndroidExtracting)})
	toSUTVerifying     = concatSteps(toB2GExtracting, []flowStep{eventStep(EventB2GRebooting, StateSUTVerifying)})
	toSDCardVerifying  = concatSteps(toSUTVerifying, []flowStep{eventStep(EventSUTVerifyOK, StateSUTSDCardVerifying)})
	pleaseB2G          = flowStep{Event: EventPleaseImage, Args: pleaseImageArgs("b2g", b2gBootConfig), Want: StatePXEPowerCycling}
	pleaseAndroid      = flowStep{Event: EventPleaseImage, Args: pleaseImageArgs("android", ""), Want: StatePXEPowerCycling}
	pleasePowerCycle   = eventStep(EventPleasePowerCycle, StatePCPowerCycling)
	toPCPinging        = []flowStep{eventStep(EventPowerCycleOK, StatePCRebooting), timeoutStep(StatePCPinging)}
	pxeAgain           = func(to []flowStep) []flowStep { return concatSteps([]flowStep{timeoutStep(StatePXEPowerCycling)}, to) }
	selfTestAfterFail  = []State{StateStartSelfTest, StatePXEPowerCycling}
	sutPowerCycleSteps = []flowStep{timeoutStep(StateSUTVerifyPowerCycle), eventStep(EventPowerCycleOK, StateSUTVerifying)}
)

// TestBudgets checks each retry budget of the table (Mozpool's, and the new one of
// the ping loop): within the budget a failure retries, the next one enters
// the failed state, which either stays or starts a self-test.
func TestBudgets(t *testing.T) {
	tests := []struct {
		name string
		// reach leads a ready device to the state under test.
		reach []flowStep
		// limit failures are retried, each by the steps retry(i) gives
		// (i counts from 1); the next failure is last.
		limit int
		retry func(i int) []flowStep
		last  flowStep
		// failed is the state the last failure enters; last.Want is where
		// the device then rests.
		failed State
	}{
		{
			name:  "pc_power_cycling timeouts",
			reach: []flowStep{pleasePowerCycle}, limit: powerCycleLimit,
			retry: sameSteps(timeoutStep(StatePCPowerCycling)), last: timeoutStep(StateFailedPowerCycling), failed: StateFailedPowerCycling,
		},
		{
			name:  "pc_power_cycling power_cycle_failed",
			reach: []flowStep{pleasePowerCycle}, limit: powerCycleLimit,
			retry: sameSteps(eventStep(EventPowerCycleFailed, StatePCPowerCycling)),
			last:  eventStep(EventPowerCycleFailed, StateFailedPowerCycling), failed: StateFailedPowerCycling,
		},
		{
			name:  "pxe_power_cycling timeouts",
			reach: []flowStep{pleaseB2G}, limit: powerCycleLimit,
			retry: sameSteps(timeoutStep(StatePXEPowerCycling)), last: timeoutStep(StateFailedPowerCycling), failed: StateFailedPowerCycling,
		},
		{
			// 12 pings re-ping, the 13th power-cycles again; the ping
			// budget running out a (pingRoundsLimit+1)-th time retires the
			// device instead of looping forever.
			name:  "pc_pinging rounds",
			reach: concatSteps([]flowStep{pleasePowerCycle}, toPCPinging), limit: (pingLimit+1)*(pingRoundsLimit+1) - 1,
			retry: func(i int) []flowStep {
				if i%(pingLimit+1) != 0 {
					return []flowStep{timeoutStep(StatePCPinging)}
				}
				return concatSteps([]flowStep{timeoutStep(StatePCPowerCycling)}, toPCPinging)
			},
			last: timeoutStep(StateFailedPowerCycling), failed: StateFailedPowerCycling,
		},
		{
			name:  "pxe_booting",
			reach: concatSteps([]flowStep{pleaseB2G}, toPXEBooting), limit: pxeBootLimit,
			retry: sameSteps(pxeAgain(toPXEBooting)...), last: timeoutStep(StateFailedPXEBooting), failed: StateFailedPXEBooting,
		},
		{
			name:  "mobile_init_started",
			reach: concatSteps([]flowStep{pleaseB2G}, toMobileInit), limit: mobileInitLimit,
			retry: sameSteps(pxeAgain(toMobileInit)...), last: timeoutStep(StateFailedMobileInitStarted), failed: StateFailedMobileInitStarted,
		},
		{
			// A board stuck downloading is PXE-booted again, within the
			// budget; then it fails and self-tests.
			name:  "b2g_downloading",
			reach: concatSteps([]flowStep{pleaseB2G}, toB2GDownloading), limit: downloadLimit,
			retry: sameSteps(pxeAgain(toB2GDownloading)...), last: timeoutStep(StatePXEPowerCycling), failed: StateFailedB2GDownloading,
		},
		{
			name:  "android_downloading",
			reach: concatSteps([]flowStep{pleaseAndroid}, toAndDownloading), limit: downloadLimit,
			retry: sameSteps(pxeAgain(toAndDownloading)...), last: timeoutStep(StatePXEPowerCycling), failed: StateFailedAndroidDownloading,
		},
		{
			name:  "b2g_extracting",
			reach: concatSteps([]flowStep{pleaseB2G}, toB2GExtracting), limit: extractLimit,
			retry: sameSteps(pxeAgain(toB2GExtracting)...), last: timeoutStep(StatePXEPowerCycling), failed: StateFailedB2GExtracting,
		},
		{
			name:  "android_extracting",
			reach: concatSteps([]flowStep{pleaseAndroid}, toAndExtracting), limit: extractLimit,
			retry: sameSteps(pxeAgain(toAndExtracting)...), last: timeoutStep(StatePXEPowerCycling), failed: StateFailedAndroidExtracting,
		},
		{
			// Power cycles at timeouts 10, 20 and 30, failure
			// at 31, then a self-test.
			name:  "sut_verifying",
			reach: concatSteps([]flowStep{pleaseB2G}, toSUTVerifying), limit: sutVerifyLimit,
			retry: func(i int) []flowStep {
				if i%10 == 0 {
					return sutPowerCycleSteps
				}
				return []flowStep{timeoutStep(StateSUTVerifying)}
			},
			last: timeoutStep(StatePXEPowerCycling), failed: StateFailedSUTVerifying,
		},
		{
			name: "sut_verify_power_cycle",
			reach: concatSteps([]flowStep{pleaseB2G}, toSUTVerifying,
				[]flowStep{timeoutStep(StateSUTVerifying), timeoutStep(StateSUTVerifying), timeoutStep(StateSUTVerifying), timeoutStep(StateSUTVerifying), timeoutStep(StateSUTVerifying),
					timeoutStep(StateSUTVerifying), timeoutStep(StateSUTVerifying), timeoutStep(StateSUTVerifying), timeoutStep(StateSUTVerifying), timeoutStep(StateSUTVerifyPowerCycle)}),
			limit: sutPowerCycleLimit,
			retry: sameSteps(timeoutStep(StateSUTVerifyPowerCycle)), last: timeoutStep(StatePXEPowerCycling), failed: StateFailedSUTVerifying,
		},
		{
			name:  "sut_sdcard_verifying timeouts",
			reach: concatSteps([]flowStep{pleaseB2G}, toSDCardVerifying), limit: sdcardLimit,
			retry: sameSteps(timeoutStep(StateSUTSDCardVerifying)), last: timeoutStep(StatePXEPowerCycling), failed: StateFailedSUTSDCardVerifying,
		},
		{
			name:  "sut_sdcard_verifying sut_sdcard_failed",
			reach: concatSteps([]flowStep{pleaseB2G}, toSDCardVerifying), limit: sdcardLimit,
			retry: sameSteps(eventStep(EventSUTSDCardFailed, StateSUTSDCardVerifying)),
			last:  eventStep(EventSUTSDCardFailed, StatePXEPowerCycling), failed: StateFailedSUTSDCardVerifying,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			r.toReady(pandaA)
			r.run(pandaA, tc.reach...)
			for i := 1; i <= tc.limit; i++ {
				r.run(pandaA, tc.retry(i)...)
			}
			mark := r.mark()
			r.run(pandaA, tc.last)
			entered := r.entered(pandaA, mark)
			require.Equal(t, tc.failed, entered[0], "failure %d entered %v, want %s first", tc.limit+1, entered, tc.failed)
			if tc.last.Want == tc.failed {
				require.Equal(t, []State{tc.failed}, entered, "failure %d", tc.limit+1)
				require.True(t, r.device(pandaA).StateDeadline.IsZero(), "%s has a deadline", tc.failed)
				return
			}
			// Self-test-retrying failure: straight into the self-test.
			require.Equal(t, append([]State{tc.failed}, selfTestAfterFail...), entered, "failure %d", tc.limit+1)
			d := r.device(pandaA)
			require.Equal(t, "self-test", d.NextImage, "next image after %s", tc.failed)
			require.Empty(t, d.Counters, "counters after the self-test started")
		})
	}
}

// A successful ping ends the ping loop and clears its budgets, so a later
// reboot has the whole budget again.
func TestBudgets_PingOKClears(t *testing.T) {
	r := newRig(t)
	r.toReady(pandaA)
	r.run(pandaA, concatSteps([]flowStep{pleasePowerCycle}, toPCPinging)...)
	for i := 0; i < pingRoundsLimit; i++ {
		for j := 0; j < pingLimit; j++ {
			r.run(pandaA, timeoutStep(StatePCPinging))
		}
		r.run(pandaA, concatSteps([]flowStep{timeoutStep(StatePCPowerCycling)}, toPCPinging)...)
	}
	require.Equal(t, pingRoundsLimit, r.device(pandaA).Counters[counterPingRounds])
	r.run(pandaA, eventStep(EventPingOK, StateReady))
	require.Empty(t, r.device(pandaA).Counters, "counters after ping_ok")

	r.run(pandaA, concatSteps([]flowStep{pleasePowerCycle}, toPCPinging)...)
	for j := 0; j < pingLimit; j++ {
		r.run(pandaA, timeoutStep(StatePCPinging))
	}
	r.run(pandaA, timeoutStep(StatePCPowerCycling))
}
