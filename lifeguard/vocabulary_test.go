package lifeguard

import (
	"encoding/json"
	"maps"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// The names of states and events are the API's (stored records, the event
// route, the state table): the constants must keep spelling them so.
func TestVocabulary_WireNames(t *testing.T) {
	var states []string
	for _, s := range slices.Sorted(maps.Keys(deviceStates)) {
		states = append(states, string(s))
	}
	require.Equal(t, []string{
		"android_downloading", "android_extracting", "b2g_downloading", "b2g_extracting",
		"failed_android_downloading", "failed_android_extracting", "failed_android_pinging",
		"failed_b2g_downloading", "failed_b2g_extracting", "failed_b2g_pinging",
		"failed_flapping", "failed_health_checks", "failed_mobile_init_started", "failed_power_cycling", "failed_pxe_booting", "failed_self_test",
		"failed_sut_sdcard_verifying", "failed_sut_verifying",
		"locked_out", "maintenance_mode", "mobile_init_started", "new", "operation_complete",
		"pc_pinging", "pc_power_cycling", "pc_rebooting", "pc_sut_rebooting",
		"probation", "pxe_booting", "pxe_power_cycling", "pxe_wait", "ready", "relay_wait", "self_test_running",
		"start_maintenance", "start_pxe_boot", "start_self_test",
		"sut_sdcard_verifying", "sut_verify_power_cycle", "sut_verifying", "troubleshooting",
	}, states)

	events := map[string]bool{}
	for _, info := range States() {
		for _, e := range append(info.Please, info.Events...) {
			events[string(e)] = true
		}
	}
	require.Equal(t, []string{
		"android_downloading", "android_extracting", "android_rebooting",
		"b2g_downloading", "b2g_extracting", "b2g_rebooting", "board_rebooted", "boot_hung",
		"failed", "failed_self_test", "kernel_panic", "maint_mode", "mobile_init_started", "ping_ok",
		"please_image", "please_power_cycle", "please_self_test", "please_start_maintenance",
		"power_cycle_failed", "power_cycle_ok", "power_cycle_started", "pxe_fetch_failed", "self_test_ok", "self_test_running",
		"sut_sdcard_failed", "sut_sdcard_ok", "sut_verify_ok",
	}, slices.Sorted(maps.Keys(events)))

	b, err := json.Marshal(States()[0])
	require.NoError(t, err)
	require.JSONEq(t, `{"name": "android_downloading", "timeout_secs": 180, "action": "clear_pxe",
		"accepts_please": [], "events": ["android_extracting", "board_rebooted"], "failed": false}`, string(b))

	require.Equal(t, []string{"complete", "failed-bad-device", "failed-bad-image"},
		[]string{string(ResultComplete), string(ResultFailedBadDevice), string(ResultFailedBadImage)})
}

func TestVocabulary_StateMethods(t *testing.T) {
	for s, spec := range deviceStates {
		require.Equal(t, spec.Failed, s.Failed(), "%s.Failed()", s)
		require.Equal(t, spec.Action, s.Action(), "%s.Action()", s)
		require.Equal(t, s == StateReady, s.Available(), "%s.Available()", s)
	}
	require.False(t, State("off").Failed())
	require.Equal(t, ActionNone, State("off").Action())
	require.False(t, State("off").Available())
}
