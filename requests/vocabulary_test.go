package requests

import (
	"maps"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// The names of states and events are the API's (stored records, the
// event route): the constants must keep spelling them so.
func TestVocabulary_WireNames(t *testing.T) {
	var states []string
	for _, s := range slices.Sorted(maps.Keys(requestStates)) {
		states = append(states, string(s))
	}
	require.Equal(t, []string{"closed", "expired", "failed_bad_device", "failed_bad_image", "failed_device_busy",
		"failed_device_not_found", "finding_device", "new", "pending", "ready"}, states)

	events := map[string]bool{}
	for _, s := range requestStates {
		for e := range s.Events {
			events[string(e)] = true
		}
	}
	require.Equal(t, []string{"close", "expire", "find_device", "lifeguard_finished"}, slices.Sorted(maps.Keys(events)))
}

func TestVocabulary_StateMethods(t *testing.T) {
	for s, spec := range requestStates {
		require.Equal(t, spec.Open, s.Open(), "%s.Open()", s)
		require.Equal(t, spec.Open, Machine{}.Open(string(s)), "Open(%s)", s)
	}
	require.True(t, StateFailedDeviceBusy.Failed())
	require.False(t, StateClosed.Failed())
	require.False(t, State("no-such-state").Open())
}
