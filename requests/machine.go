package requests

import (
	"time"

	"github.com/mozpool/mozpool/fsm"
)

// Machine is the request state machine; it implements fsm.RequestMachine.
type Machine struct{}

var _ fsm.RequestMachine = Machine{}

// Initial is the state of a new request.
func (Machine) Initial() (string, time.Duration) {
	s, _ := spec(StateNew)
	return string(StateNew), s.Timeout
}

// Start sends a new request looking for a device.
func (m Machine) Start(tx *fsm.RequestTx) error {
	return m.Event(tx, string(EventFindDevice), fsm.RequestEventArgs{})
}

// Expire closes a request whose time is up.
func (m Machine) Expire(tx *fsm.RequestTx) error {
	return m.Event(tx, string(EventExpire), fsm.RequestEventArgs{})
}

// DeviceFinished hands the request the result of its device's operation.
func (m Machine) DeviceFinished(tx *fsm.RequestTx, result string) {
	if err := m.Event(tx, string(EventLifeguardFinished), fsm.RequestEventArgs{ImagingResult: result}); err != nil {
		tx.Log("statemachine", "ignored %s (%s) in state %s", EventLifeguardFinished, result, tx.State())
	}
}

// Assign claims the board the queue chose for a waiting request and sets
// it imaging; the request goes on to pending.
func (Machine) Assign(tx *fsm.RequestTx, device string) bool {
	if State(tx.State()) != StateFindingDevice {
		return false
	}
	if !claimAndContact(tx, device) {
		return false
	}
	enter(tx, StatePending)
	return true
}

// GiveUp fails a request the queue cannot serve.
func (Machine) GiveUp(tx *fsm.RequestTx, busy bool) {
	tx.Log("mozpool", "%s", tx.Request().Reason)
	switch {
	case busy && !tx.Any():
		enter(tx, StateFailedDeviceBusy)
	default:
		enter(tx, StateFailedDeviceNotFound)
	}
}

// Known reports whether state is in the table.
func (Machine) Known(state string) bool { _, ok := spec(State(state)); return ok }

// Open reports whether a request in state may hold a device and expire.
func (Machine) Open(state string) bool { return State(state).Open() }

// Event handles event in the request's current state.
func (Machine) Event(m *fsm.RequestTx, event string, args fsm.RequestEventArgs) error {
	s, _ := spec(State(m.State()))
	if t, ok := s.Events[Event(event)]; ok {
		return t(m, args)
	}
	return fsm.ErrIgnored
}

// Timeout handles the passing of the current state's deadline.
func (Machine) Timeout(m *fsm.RequestTx) {
	s, _ := spec(State(m.State()))
	if s.OnTimeout == nil {
		return
	}
	s.OnTimeout(m)
}

// IsFailed reports whether a request state (as fsm stores it) is a failure.
func IsFailed(state string) bool { return State(state).Failed() }
