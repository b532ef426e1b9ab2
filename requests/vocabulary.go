package requests

import "strings"

// State is a state of the request machine. fsm stores it as the string of
// fsm.Request.State; the values are part of the API and never change.
type State string

// The states of the request table (request_states.go).
const (
	StateNew           State = "new"
	StateFindingDevice State = "finding_device"
	StatePending       State = "pending"
	StateReady         State = "ready"
	StateClosed        State = "closed"
	// StateExpired is a legacy state (≤ 3.0.1) that stored requests may
	// hold.
	StateExpired State = "expired"

	StateFailedDeviceNotFound State = "failed_device_not_found"
	StateFailedBadImage       State = "failed_bad_image"
	StateFailedBadDevice      State = "failed_bad_device"
	StateFailedDeviceBusy     State = "failed_device_busy"
)

// Failed reports whether s is a failed_* state.
func (s State) Failed() bool { return strings.HasPrefix(string(s), "failed_") }

// Open reports whether a request in s still counts: it may hold a device,
// and it expires.
func (s State) Open() bool { return requestStates[s].Open }

// Event is an event of the request machine. fsm carries it as the string
// of fsm.RequestEvent.Event; the values never change.
type Event string

const (
	// EventFindDevice puts a new request in the queue.
	EventFindDevice Event = "find_device"
	// EventClose is a return (the API's request close).
	EventClose Event = "close"
	// EventExpire is the passing of the request's expiry.
	EventExpire Event = "expire"
	// EventLifeguardFinished reports how its device's operation ended.
	EventLifeguardFinished Event = "lifeguard_finished"
)
