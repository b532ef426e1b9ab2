package requests

import (
	"time"

	"github.com/mozpool/mozpool/fsm"
	"github.com/mozpool/mozpool/lifeguard"
)

// noTimeout marks a state without a deadline.
const noTimeout = time.Duration(-1)

// Budgets, as the original (counters are lifetime counts of the request).
const (
	// An "any" request waits for its device 20 × 60 s before trying
	// another one.
	pendingLimit = 20
	// A second bad-image result fails the request.
	badImageLimit = 2
)

type transition func(m *fsm.RequestTx, args fsm.RequestEventArgs) error

// stateSpec is one row of the request state table.
type stateSpec struct {
	Timeout   time.Duration
	OnEntry   func(m *fsm.RequestTx)
	OnTimeout func(m *fsm.RequestTx)
	Events    map[Event]transition
	// Open states may hold a device and expire.
	Open bool
}

// Counter names (the request's lifetime counts).
const (
	// counterSearches counts the request's entries into the queue.
	counterSearches  = string(StateFindingDevice)
	counterPolls     = string(StatePending)
	counterBadImages = "bad-images"
)

var requestStates map[State]stateSpec

func init() { requestStates = stateTable() }

// closable are the events every open state accepts: a return or an expiry
// closes the request.
func closable(events map[Event]transition) map[Event]transition {
	if events == nil {
		events = map[Event]transition{}
	}
	events[EventClose] = on(StateClosed)
	events[EventExpire] = on(StateClosed)
	return events
}

func stateTable() map[State]stateSpec {
	return map[State]stateSpec{
		StateNew: {Timeout: noTimeout, Open: true,
			Events: closable(map[Event]transition{EventFindDevice: on(StateFindingDevice)})},
		// finding_device: wait in the queue until a board is assigned
		// or the request's max_wait passes (its timeout is the
		// request's; see enter).
		StateFindingDevice: {Timeout: fsm.DefaultMaxWait, Open: true, OnEntry: findDevice,
			OnTimeout: waitedTooLong, Events: closable(nil)},
		// pending: the device is being imaged; poll the result every 60 s
		// in case the notification was missed.
		StatePending: {Timeout: 60 * time.Second, Open: true, OnEntry: pendingEntry, OnTimeout: pendingTimeout,
			Events: closable(map[Event]transition{EventLifeguardFinished: func(m *fsm.RequestTx, a fsm.RequestEventArgs) error {
				handleResult(m, a.ImagingResult)
				return nil
			}})},
		StateReady:  {Timeout: noTimeout, Open: true, Events: closable(nil)},
		StateClosed: {Timeout: noTimeout, OnEntry: release},
		// expired: a legacy state (≤ 3.0.1) that stored requests may hold.
		StateExpired:              {Timeout: noTimeout, OnEntry: release, Events: closable(nil)},
		StateFailedDeviceNotFound: {Timeout: noTimeout, OnEntry: release},
		StateFailedBadImage:       {Timeout: noTimeout, OnEntry: release},
		StateFailedBadDevice:      {Timeout: noTimeout, OnEntry: release},
		StateFailedDeviceBusy:     {Timeout: noTimeout, OnEntry: release},
	}
}

func spec(state State) (stateSpec, bool) {
	s, ok := requestStates[state]
	return s, ok
}

func enter(m *fsm.RequestTx, state State) {
	s, ok := spec(state)
	timeout := s.Timeout
	if !ok {
		timeout = noTimeout
	}
	if state == StateFindingDevice {
		timeout = m.MaxWait()
	}
	m.Goto(string(state), timeout)
	if s.OnEntry != nil {
		s.OnEntry(m)
	}
}

func on(state State) transition {
	return func(m *fsm.RequestTx, _ fsm.RequestEventArgs) error { enter(m, state); return nil }
}

func gotoState(state State) func(m *fsm.RequestTx) {
	return func(m *fsm.RequestTx) { enter(m, state) }
}

func release(m *fsm.RequestTx) { m.Release() }

// findDevice puts the request in the queue: the FSM assigns it a board
// (Machine.Assign) as soon as one it matches is free and it is first in
// line for it, in the Apply that frees the board. A request for a named
// board that has failed fails at once, as the original.
func findDevice(m *fsm.RequestTx) {
	m.Inc(counterSearches)
	m.Release()
	if !m.Any() && lifeguard.IsFailed(m.RequestedDeviceState()) {
		enter(m, StateFailedBadDevice)
		return
	}
	m.Enqueue()
}

// waitedTooLong ends a wait past the request's max_wait. A request in
// finding_device that is not in the queue entered the state before the
// queue existed (its timeout was the old search timer): it joins the
// queue now.
func waitedTooLong(m *fsm.RequestTx) {
	if !m.Waiting() {
		enter(m, StateFindingDevice)
		return
	}
	if m.Any() {
		m.Log("mozpool", "no device found within max_wait")
		enter(m, StateFailedDeviceNotFound)
		return
	}
	m.Log("mozpool", "device %s not free within max_wait", m.Request().RequestedDevice)
	if lifeguard.IsFailed(m.RequestedDeviceState()) {
		enter(m, StateFailedBadDevice)
		return
	}
	enter(m, StateFailedDeviceBusy)
}

// pendingEntry handles a result that arrived before the request got here
// (a device that failed at once).
func pendingEntry(m *fsm.RequestTx) {
	if r := m.Request().ImagingResult; r != "" {
		handleResult(m, r)
	}
}

// stalled are device states from which an operation will not finish by
// itself: the device was taken over by an operator ("": it is gone).
var stalled = map[lifeguard.State]bool{
	lifeguard.StateLockedOut: true, lifeguard.StateTroubleshooting: true,
	lifeguard.StateMaintenanceMode: true, lifeguard.StateReady: true, "": true,
}

func pendingTimeout(m *fsm.RequestTx) {
	if r := m.Request().ImagingResult; r != "" {
		handleResult(m, r)
		return
	}
	if ds := m.DeviceState(); stalled[lifeguard.State(ds)] {
		m.Log("mozpool", "device %s is %s, not imaging", m.Request().Device, orNone(ds))
		if m.Any() {
			enter(m, StateFindingDevice)
		} else {
			enter(m, StateFailedBadDevice)
		}
		return
	}
	if !m.Any() {
		enter(m, StatePending)
		return
	}
	if m.Inc(counterPolls) < pendingLimit {
		enter(m, StatePending)
		return
	}
	enter(m, StateFindingDevice)
}

func orNone(s string) string {
	if s == "" {
		return "gone"
	}
	return s
}

// handleResult moves the request on the device's imaging result.
func handleResult(m *fsm.RequestTx, result string) {
	switch lifeguard.Result(result) {
	case lifeguard.ResultComplete:
		m.MarkReady()
		enter(m, StateReady)
	case lifeguard.ResultFailedBadImage:
		if m.Inc(counterBadImages) < badImageLimit {
			enter(m, StateFindingDevice)
		} else {
			enter(m, StateFailedBadImage)
		}
	case lifeguard.ResultFailedBadDevice:
		if m.Any() {
			enter(m, StateFindingDevice)
		} else {
			enter(m, StateFailedBadDevice)
		}
	default:
		m.Log("mozpool", "unknown imaging result %q", result)
		enter(m, StateFindingDevice)
	}
}
