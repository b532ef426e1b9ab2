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
	toPXEBooting       = []flowStep{eventStep("power_cycle_ok", "pxe_booting")}
	toMobileInit       = concatSteps(toPXEBooting, []flowStep{eventStep("mobile_init_started", "mobile_init_started")})
	toB2GDownloading   = concatSteps(toMobileInit, []flowStep{eventStep("b2g_downloading", "b2g_downloading")})
	toB2GExtracting    = concatSteps(toB2GDownloading, []flowStep{eventStep("b2g_extracting", "b2g_extracting")})
	toAndDownloading   = concatSteps(toMobileInit, []flowStep{eventStep("android_downloading", "android_downloading")})
	toAndExtracting    = concatSteps(toAndDownloading, []flowStep{eventStep("android_extracting", "android_extracting")})
	toSUTVerifying     = concatSteps(toB2GExtracting, []flowStep{eventStep("b2g_rebooting", "sut_verifying")})
	toSDCardVerifying  = concatSteps(toSUTVerifying, []flowStep{eventStep("sut_verify_ok", "sut_sdcard_verifying")})
	pleaseB2G          = flowStep{Event: "please_image", Args: pleaseImageArgs("b2g", b2gBootConfig), Want: "pxe_power_cycling"}
	pleaseAndroid      = flowStep{Event: "please_image", Args: pleaseImageArgs("android", ""), Want: "pxe_power_cycling"}
	pleasePowerCycle   = eventStep("please_power_cycle", "pc_power_cycling")
	toPCPinging        = []flowStep{eventStep("power_cycle_ok", "pc_rebooting"), timeoutStep("pc_pinging")}
	pxeAgain           = func(to []flowStep) []flowStep { return concatSteps([]flowStep{timeoutStep("pxe_power_cycling")}, to) }
	selfTestAfterFail  = []string{"start_self_test", "pxe_power_cycling"}
	sutPowerCycleSteps = []flowStep{timeoutStep("sut_verify_power_cycle"), eventStep("power_cycle_ok", "sut_verifying")}
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
		failed string
	}{
		{
			name:  "pc_power_cycling timeouts",
			reach: []flowStep{pleasePowerCycle}, limit: powerCycleLimit,
			retry: sameSteps(timeoutStep("pc_power_cycling")), last: timeoutStep("failed_power_cycling"), failed: "failed_power_cycling",
		},
		{
			name:  "pc_power_cycling power_cycle_failed",
			reach: []flowStep{pleasePowerCycle}, limit: powerCycleLimit,
			retry: sameSteps(eventStep("power_cycle_failed", "pc_power_cycling")),
			last:  eventStep("power_cycle_failed", "failed_power_cycling"), failed: "failed_power_cycling",
		},
		{
			name:  "pxe_power_cycling timeouts",
			reach: []flowStep{pleaseB2G}, limit: powerCycleLimit,
			retry: sameSteps(timeoutStep("pxe_power_cycling")), last: timeoutStep("failed_power_cycling"), failed: "failed_power_cycling",
		},
		{
			// 12 pings re-ping, the 13th power-cycles again; the ping
			// budget running out a (pingRoundsLimit+1)-th time retires the
			// device instead of looping forever.
			name:  "pc_pinging rounds",
			reach: concatSteps([]flowStep{pleasePowerCycle}, toPCPinging), limit: (pingLimit+1)*(pingRoundsLimit+1) - 1,
			retry: func(i int) []flowStep {
				if i%(pingLimit+1) != 0 {
					return []flowStep{timeoutStep("pc_pinging")}
				}
				return concatSteps([]flowStep{timeoutStep("pc_power_cycling")}, toPCPinging)
			},
			last: timeoutStep("failed_power_cycling"), failed: "failed_power_cycling",
		},
		{
			name:  "pxe_booting",
			reach: concatSteps([]flowStep{pleaseB2G}, toPXEBooting), limit: pxeBootLimit,
			retry: sameSteps(pxeAgain(toPXEBooting)...), last: timeoutStep("failed_pxe_booting"), failed: "failed_pxe_booting",
		},
		{
			name:  "mobile_init_started",
			reach: concatSteps([]flowStep{pleaseB2G}, toMobileInit), limit: mobileInitLimit,
			retry: sameSteps(pxeAgain(toMobileInit)...), last: timeoutStep("failed_mobile_init_started"), failed: "failed_mobile_init_started",
		},
		{
			// A board stuck downloading is PXE-booted again, within the
			// budget; then it fails and self-tests.
			name:  "b2g_downloading",
			reach: concatSteps([]flowStep{pleaseB2G}, toB2GDownloading), limit: downloadLimit,
			retry: sameSteps(pxeAgain(toB2GDownloading)...), last: timeoutStep("pxe_power_cycling"), failed: "failed_b2g_downloading",
		},
		{
			name:  "android_downloading",
			reach: concatSteps([]flowStep{pleaseAndroid}, toAndDownloading), limit: downloadLimit,
			retry: sameSteps(pxeAgain(toAndDownloading)...), last: timeoutStep("pxe_power_cycling"), failed: "failed_android_downloading",
		},
		{
			name:  "b2g_extracting",
			reach: concatSteps([]flowStep{pleaseB2G}, toB2GExtracting), limit: extractLimit,
			retry: sameSteps(pxeAgain(toB2GExtracting)...), last: timeoutStep("pxe_power_cycling"), failed: "failed_b2g_extracting",
		},
		{
			name:  "android_extracting",
			reach: concatSteps([]flowStep{pleaseAndroid}, toAndExtracting), limit: extractLimit,
			retry: sameSteps(pxeAgain(toAndExtracting)...), last: timeoutStep("pxe_power_cycling"), failed: "failed_android_extracting",
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
				return []flowStep{timeoutStep("sut_verifying")}
			},
			last: timeoutStep("pxe_power_cycling"), failed: "failed_sut_verifying",
		},
		{
			name: "sut_verify_power_cycle",
			reach: concatSteps([]flowStep{pleaseB2G}, toSUTVerifying,
				[]flowStep{timeoutStep("sut_verifying"), timeoutStep("sut_verifying"), timeoutStep("sut_verifying"), timeoutStep("sut_verifying"), timeoutStep("sut_verifying"),
					timeoutStep("sut_verifying"), timeoutStep("sut_verifying"), timeoutStep("sut_verifying"), timeoutStep("sut_verifying"), timeoutStep("sut_verify_power_cycle")}),
			limit: sutPowerCycleLimit,
			retry: sameSteps(timeoutStep("sut_verify_power_cycle")), last: timeoutStep("pxe_power_cycling"), failed: "failed_sut_verifying",
		},
		{
			name:  "sut_sdcard_verifying timeouts",
			reach: concatSteps([]flowStep{pleaseB2G}, toSDCardVerifying), limit: sdcardLimit,
			retry: sameSteps(timeoutStep("sut_sdcard_verifying")), last: timeoutStep("pxe_power_cycling"), failed: "failed_sut_sdcard_verifying",
		},
		{
			name:  "sut_sdcard_verifying sut_sdcard_failed",
			reach: concatSteps([]flowStep{pleaseB2G}, toSDCardVerifying), limit: sdcardLimit,
			retry: sameSteps(eventStep("sut_sdcard_failed", "sut_sdcard_verifying")),
			last:  eventStep("sut_sdcard_failed", "pxe_power_cycling"), failed: "failed_sut_sdcard_verifying",
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
				require.Equal(t, []string{tc.failed}, entered, "failure %d", tc.limit+1)
				require.True(t, r.device(pandaA).StateDeadline.IsZero(), "%s has a deadline", tc.failed)
				return
			}
			// Self-test-retrying failure: straight into the self-test.
			require.Equal(t, append([]string{tc.failed}, selfTestAfterFail...), entered, "failure %d", tc.limit+1)
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
			r.run(pandaA, timeoutStep("pc_pinging"))
		}
		r.run(pandaA, concatSteps([]flowStep{timeoutStep("pc_power_cycling")}, toPCPinging)...)
	}
	require.Equal(t, pingRoundsLimit, r.device(pandaA).Counters[counterPingRounds])
	r.run(pandaA, eventStep("ping_ok", "ready"))
	require.Empty(t, r.device(pandaA).Counters, "counters after ping_ok")

	r.run(pandaA, concatSteps([]flowStep{pleasePowerCycle}, toPCPinging)...)
	for j := 0; j < pingLimit; j++ {
		r.run(pandaA, timeoutStep("pc_pinging"))
	}
	r.run(pandaA, timeoutStep("pc_power_cycling"))
}
