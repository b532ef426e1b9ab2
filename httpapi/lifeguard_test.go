package httpapi

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/lifeguard"
)

// The forced state change applies only from the state the caller names
// (409 otherwise, the device untouched), unless the device is in a state
// the machine does not know; any target is accepted.
func TestStateChange(t *testing.T) {
	e := newTestEnv(t)
	change := func(dev string, from, to lifeguard.State) response {
		t.Helper()
		return e.post(fmt.Sprintf("/api/device/%s/state-change/%s/to/%s/", dev, from, to), nil)
	}
	state := func(dev string) any { return e.getOK("/api/device/" + dev + "/state/")["state"] }

	msg := change("dev1", lifeguard.StateReady, lifeguard.StateLockedOut).requireError(t, http.StatusConflict)
	require.Contains(t, msg, "is in state new, not ready")
	require.Equal(t, string(lifeguard.StateNew), state("dev1"))

	r := change("dev1", lifeguard.StateNew, lifeguard.StateLockedOut)
	require.Equal(t, http.StatusOK, r.StatusCode, "body %q", r.body)
	require.Equal(t, string(lifeguard.StateLockedOut), state("dev1"))

	// A target the table does not know is taken; from there any old state
	// matches.
	r = change("dev1", lifeguard.StateLockedOut, "off")
	require.Equal(t, http.StatusOK, r.StatusCode, "body %q", r.body)
	r = change("dev1", "anything", lifeguard.StateReady)
	require.Equal(t, http.StatusOK, r.StatusCode, "body %q", r.body)
	require.Equal(t, string(lifeguard.StateReady), state("dev1"))

	change("nosuch", lifeguard.StateNew, lifeguard.StateReady).requireError(t, http.StatusNotFound)

	// A name no state could have is refused, the device untouched.
	for _, bad := range []lifeguard.State{"..", "%2e%2e", "%00", "a%00b", "%ff%fe", "%3Cscript%3E", "%20",
		lifeguard.State(strings.Repeat("x", 65))} {
		msg := change("dev1", lifeguard.StateReady, bad).requireError(t, http.StatusBadRequest)
		require.Contains(t, msg, "state name", bad)
		change("dev1", bad, lifeguard.StateReady).requireError(t, http.StatusBadRequest)
		require.Equal(t, string(lifeguard.StateReady), state("dev1"))
	}
}
