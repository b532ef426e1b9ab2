package requests

import "strings"

// CallbackState reports whether a request entering state notifies its
// callback URL (fsm.CallbackStates): on ready, on a failure and once it is
// over (closed or expired).
func (Machine) CallbackState(state string) bool {
	switch State(state) {
	case StateReady, StateClosed, StateExpired:
		return true
	}
	return strings.HasPrefix(state, "failed_")
}
