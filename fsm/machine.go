package fsm

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// ErrIgnored is returned (as a result, not an error of the command) when the
// device's current state does not accept an event. The original answered
// such events with 200 and a log line; the API does the same.
var ErrIgnored = errors.New("event ignored in this state")

// DeviceMachine is the lifeguard state table. It is registered at
// construction (Config.Devices) so that this package never imports the
// executors; Apply runs it on every node, so it must be as deterministic as
// Apply itself: everything it knows comes through DeviceTx. This package
// knows no state or event by name: whatever depends on one is asked of the
// machine.
type DeviceMachine interface {
	// Initial is the state a device added by inventory sync starts in,
	// and how long it lasts (as DeviceTx.Goto's timeout).
	Initial() (state string, timeout time.Duration)
	// Event handles an event (a please_* request, a board's report, or a
	// hardware result). It returns ErrIgnored when the state does not
	// accept the event, or a domain error for bad arguments.
	Event(tx *DeviceTx, event string, args EventArgs) error
	// Timeout handles the passing of the current state's deadline.
	Timeout(tx *DeviceTx)
	// Force moves the device to state unconditionally (the caller has
	// checked the expected state).
	Force(tx *DeviceTx, state string)
	// Registered handles the device's board announcing itself with the
	// MAC of its inventory entry.
	Registered(tx *DeviceTx) error
	// Known reports whether state is one of the machine's states.
	Known(state string) bool
	// Available reports whether a device in state is idle: a request may
	// claim it, and one that lets it go leaves no operation running.
	Available(state string) bool
	// Trust grades how far a device with this history has shown it can
	// be trusted with a request (0: not at all): among free devices the
	// queue prefers the most trusted. It must depend on the history alone.
	Trust(history []Outcome) int
}

// EventArgs are the arguments of a device event (the JSON body of the
// event route). Only please_image uses them.
type EventArgs struct {
	Image      *string         `json:"image,omitempty"`
	BootConfig json.RawMessage `json:"boot_config,omitempty"`
}

// DeviceTx is the view of one device that the machine gets inside Apply.
type DeviceTx struct {
	tx *txn
	d  *Device
}

// Device returns the device record; the machine may change its image
// fields directly.
func (m *DeviceTx) Device() *Device { return m.d }

// State is the device's current state.
func (m *DeviceTx) State() string { return m.d.State }

// At is the command's time (stamped by its proposer).
func (m *DeviceTx) At() time.Time { return m.tx.at }

// Goto enters state: it increments the generation, sets the deadline to At
// plus timeout (scaled by the cluster's time scale; no deadline when
// timeout < 0; due at once when 0) and logs the change when the name
// changes. Counters are untouched.
func (m *DeviceTx) Goto(state string, timeout time.Duration) {
	d := m.d
	from := d.State
	if d.State != state {
		m.Log("statemachine", "entering state %s", state)
	}
	d.State = state
	d.StateEntered = m.tx.at
	d.Generation++
	d.StateDeadline = m.tx.deviceDeadline(timeout)
	m.tx.transitions = append(m.tx.transitions, Transition{Device: d.Name, State: state, From: from, Generation: d.Generation, Deadline: d.StateDeadline})
	m.tx.touchDevice(d.Name)
}

// Rearm counts the current state entry's timeout again from At: the
// deadline becomes At plus timeout (scaled as by Goto), and the generation
// stays, so results tagged with it still apply. It is for a state whose
// work starts later than the entry, as a relay operation that waited for
// its board behind others.
func (m *DeviceTx) Rearm(timeout time.Duration) {
	m.d.StateDeadline = m.tx.deviceDeadline(timeout)
	m.tx.touchDevice(m.d.Name)
}

// ClearDeadline leaves the state without a timeout.
func (m *DeviceTx) ClearDeadline() { m.d.StateDeadline = time.Time{} }

// Inc increments a counter and returns its new value.
func (m *DeviceTx) Inc(name string) int {
	if m.d.Counters == nil {
		m.d.Counters = map[string]int{}
	}
	m.d.Counters[name]++
	return m.d.Counters[name]
}

// ClearCounter resets one counter; ClearCounters resets them all.
func (m *DeviceTx) ClearCounter(name string) { delete(m.d.Counters, name) }
func (m *DeviceTx) ClearCounters()           { m.d.Counters = nil }

// Log files a line in the device's log.
func (m *DeviceTx) Log(source, format string, args ...any) {
	m.tx.logDevice(m.d.Name, source, format, args...)
}

// PXEConfigFor returns the PXE config that installs image on this device's
// hardware type ("" if none).
func (m *DeviceTx) PXEConfigFor(image string) string {
	return m.tx.s.PXEConfigFor(image, m.d.HardwareType)
}

// ImageHasSUTAgent reports whether image runs a SUT agent.
func (m *DeviceTx) ImageHasSUTAgent(image string) bool {
	img, ok := m.tx.s.Images[image]
	return ok && img.HasSUTAgent
}

// ImageExists reports whether an image of that name exists.
func (m *DeviceTx) ImageExists(image string) bool {
	_, ok := m.tx.s.Images[image]
	return ok
}

// ImageInAdvance reports whether idle boards may be imaged with image in
// advance (Image.InAdvance).
func (m *DeviceTx) ImageInAdvance(image string) bool {
	img, ok := m.tx.s.Images[image]
	return ok && img.InAdvance
}

// ClaimedForAny reports whether the request holding the device asked for
// any device (it may take another one).
func (m *DeviceTx) ClaimedForAny() bool {
	r, ok := m.tx.s.Requests[m.d.RequestID]
	return ok && m.d.RequestID != 0 && r.RequestedDevice == "any"
}

// Claimed reports whether a request holds the device.
func (m *DeviceTx) Claimed() bool { return m.d.RequestID != 0 }

// ImagingResult reports the outcome of an operation to the request that
// holds the device, if any ("complete" or "failed-bad-device").
// The request's machine handles it in the same Apply.
func (m *DeviceTx) ImagingResult(result string) {
	if m.d.RequestID == 0 {
		return
	}
	if r, ok := m.tx.s.Requests[m.d.RequestID]; ok {
		m.tx.logs = append(m.tx.logs, LogEntry{Kind: LogRequest, Name: fmt.Sprint(r.ID), At: m.tx.at,
			Source: "lifeguard", Message: fmt.Sprintf("device %s finished: %s", m.d.Name, result)})
	}
	m.tx.requestResult(m.d, result)
}

// RequestTransition is a request's change of state (re-entering the same
// state, as a device search does every 10 s, is not one).
type RequestTransition struct {
	Request int64  `json:"request"`
	State   string `json:"state"`
}

// Transition is one state entry, reported to watchers (the executor).
type Transition struct {
	Device string `json:"device"`
	State  string `json:"state"`
	// From is the state the device left (State again for a re-entry, as
	// a health check or a ping round makes).
	From       string    `json:"from,omitempty"`
	Generation uint64    `json:"generation"`
	Deadline   time.Time `json:"deadline,omitzero"`
}

// deadline is when a state entered now with timeout ends: never (zero)
// when timeout < 0, else the command's time plus the scaled timeout.
func (tx *txn) deadline(timeout time.Duration) time.Time {
	if timeout < 0 {
		return time.Time{}
	}
	return tx.at.Add(tx.s.scaled(timeout))
}

// deviceDeadline is deadline for a device state: the scaled timeout is
// never shorter than State.MinDeviceTimeout, nor than the timeout itself
// when that is shorter.
func (tx *txn) deviceDeadline(timeout time.Duration) time.Time {
	if timeout < 0 {
		return time.Time{}
	}
	d := tx.s.scaled(timeout)
	if floor := min(timeout, tx.s.MinDeviceTimeout); d < floor {
		d = floor
	}
	return tx.at.Add(d)
}

// initialDeviceState is the state of a device new to the inventory, from
// the device machine; without one, a device has no state.
func (tx *txn) initialDeviceState() (string, time.Duration) {
	if tx.devices == nil {
		return "", -1
	}
	return tx.devices.Initial()
}

// scaled applies the cluster's time scale to a timeout.
func (s *State) scaled(d time.Duration) time.Duration {
	if s.TimeScale <= 0 || s.TimeScale == 1 {
		return d
	}
	return time.Duration(float64(d) * s.TimeScale)
}
