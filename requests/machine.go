package requests

import (
	"strings"

	"github.com/mozpool/mozpool/fsm"
)

// Machine is the request state machine; it implements fsm.RequestMachine.
type Machine struct{}

var _ fsm.RequestMachine = Machine{}

// Known reports whether state is in the table.
func (Machine) Known(state string) bool { _, ok := spec(state); return ok }

// Open reports whether a request in state may hold a device and expire.
func (Machine) Open(state string) bool { s, _ := spec(state); return s.Open }

// Event handles event in the request's current state.
func (Machine) Event(m *fsm.RequestTx, event string, args fsm.RequestEventArgs) error {
	s, _ := spec(m.State())
	if t, ok := s.Events[event]; ok {
		return t(m, args)
	}
	return fsm.ErrIgnored
}

// Timeout handles the passing of the current state's deadline.
func (Machine) Timeout(m *fsm.RequestTx) {
	s, _ := spec(m.State())
	if s.OnTimeout == nil {
		return
	}
	s.OnTimeout(m)
}

// IsFailed reports whether a request state is a failure.
func IsFailed(state string) bool { return strings.HasPrefix(state, "failed_") }
