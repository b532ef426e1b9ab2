package requests

import (
	"strings"
	"time"

	"github.com/mozpool/mozpool/fsm"
)

// noTimeout marks a state without a deadline.
const noTimeout = time.Duration(-1)

// Budgets, as the original (counters are lifetime counts of the request).
const (
	// An "any" request searches for a device every 10 s, 60 times.
	findAnyLimit = 60
	// A named device gets two searches before the request gives up.
	findSpecificLimit = 2
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
	Events    map[string]transition
	// Open states may hold a device and expire.
	Open bool
}

var requestStates map[string]stateSpec

func init() { requestStates = stateTable() }

// closable are the events every open state accepts: a return or an expiry
// closes the request.
func closable(events map[string]transition) map[string]transition {
	if events == nil {
		events = map[string]transition{}
	}
	events["close"] = on("closed")
	events["expire"] = on("closed")
	return events
}

func stateTable() map[string]stateSpec {
	return map[string]stateSpec{
		"new": {Timeout: noTimeout, Open: true,
			Events: closable(map[string]transition{"find_device": on("finding_device")})},
		// finding_device: search on entry, again every 10 s.
		"finding_device": {Timeout: 10 * time.Second, Open: true, OnEntry: findDevice,
			OnTimeout: gotoState("finding_device"), Events: closable(nil)},
		// pending: the device is being imaged; poll the result every 60 s
		// in case the notification was missed.
		"pending": {Timeout: 60 * time.Second, Open: true, OnEntry: pendingEntry, OnTimeout: pendingTimeout,
			Events: closable(map[string]transition{"lifeguard_finished": func(m *fsm.RequestTx, a fsm.RequestEventArgs) error {
				handleResult(m, a.ImagingResult)
				return nil
			}})},
		"ready":  {Timeout: noTimeout, Open: true, Events: closable(nil)},
		"closed": {Timeout: noTimeout, OnEntry: release},
		// expired: a legacy state (≤ 3.0.1) that stored requests may hold.
		"expired":                 {Timeout: noTimeout, OnEntry: release, Events: closable(nil)},
		"failed_device_not_found": {Timeout: noTimeout, OnEntry: release},
		"failed_bad_image":        {Timeout: noTimeout, OnEntry: release},
		"failed_bad_device":       {Timeout: noTimeout, OnEntry: release},
		"failed_device_busy":      {Timeout: noTimeout, OnEntry: release},
	}
}

func spec(state string) (stateSpec, bool) {
	s, ok := requestStates[state]
	return s, ok
}

func enter(m *fsm.RequestTx, state string) {
	s, _ := spec(state)
	timeout := s.Timeout
	if _, ok := requestStates[state]; !ok {
		timeout = noTimeout
	}
	m.Goto(state, timeout)
	if s.OnEntry != nil {
		s.OnEntry(m)
	}
}

func on(state string) transition {
	return func(m *fsm.RequestTx, _ fsm.RequestEventArgs) error { enter(m, state); return nil }
}

func gotoState(state string) func(m *fsm.RequestTx) {
	return func(m *fsm.RequestTx) { enter(m, state) }
}

func release(m *fsm.RequestTx) { m.Release() }

// findDevice is the device search (spec §3.2), with the claim and the
// contact of lifeguard in the same Apply.
func findDevice(m *fsm.RequestTx) {
	count := m.Inc("finding_device")
	m.Release()
	if claimAndContact(m) {
		enter(m, "pending")
		return
	}
	switch {
	case m.Any():
		if count >= findAnyLimit {
			enter(m, "failed_device_not_found")
		}
	case count >= findSpecificLimit:
		enter(m, "failed_device_busy")
	case strings.HasPrefix(m.RequestedDeviceState(), "failed_"):
		enter(m, "failed_bad_device")
	}
}

// pendingEntry handles a result that arrived before the request got here
// (a device that failed at once).
func pendingEntry(m *fsm.RequestTx) {
	if r := m.Request().ImagingResult; r != "" {
		handleResult(m, r)
	}
}

// stalled are device states from which an operation will not finish by
// itself: the device was taken over by an operator.
var stalled = map[string]bool{"locked_out": true, "troubleshooting": true, "maintenance_mode": true, "ready": true, "": true}

func pendingTimeout(m *fsm.RequestTx) {
	if r := m.Request().ImagingResult; r != "" {
		handleResult(m, r)
		return
	}
	if ds := m.DeviceState(); stalled[ds] {
		m.Log("mozpool", "device %s is %s, not imaging", m.Request().Device, orNone(ds))
		if m.Any() {
			enter(m, "finding_device")
		} else {
			enter(m, "failed_bad_device")
		}
		return
	}
	if !m.Any() {
		enter(m, "pending")
		return
	}
	if m.Inc("pending") < pendingLimit {
		enter(m, "pending")
		return
	}
	enter(m, "finding_device")
}

func orNone(s string) string {
	if s == "" {
		return "gone"
	}
	return s
}

// handleResult moves the request on the device's imaging result.
func handleResult(m *fsm.RequestTx, result string) {
	switch result {
	case "complete":
		enter(m, "ready")
	case "failed-bad-image":
		if m.Inc("bad-images") < badImageLimit {
			enter(m, "finding_device")
		} else {
			enter(m, "failed_bad_image")
		}
	case "failed-bad-device":
		if m.Any() {
			enter(m, "finding_device")
		} else {
			enter(m, "failed_bad_device")
		}
	default:
		m.Log("mozpool", "unknown imaging result %q", result)
		enter(m, "finding_device")
	}
}
