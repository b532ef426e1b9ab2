package fsm

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"time"
)

// RequestMachine is the Mozpool request state table, registered at
// construction (Config.Requests) like the device machine; Apply runs it.
// Like the device machine, it alone knows its states and events by name.
type RequestMachine interface {
	// Initial is the state a request is created in, and how long it lasts
	// (as RequestTx.Goto's timeout); Start runs next, in the same Apply.
	Initial() (state string, timeout time.Duration)
	// Start sets a request just created on its way (its device search).
	Start(tx *RequestTx) error
	// Event handles an event (a return, from the API); ErrIgnored when
	// the state does not accept it.
	Event(tx *RequestTx, event string, args RequestEventArgs) error
	// Timeout handles the passing of the current state's deadline.
	Timeout(tx *RequestTx)
	// Expire handles the passing of the request's expiry; ErrIgnored
	// when its state has nothing to close.
	Expire(tx *RequestTx) error
	// DeviceFinished tells the request how the operation of the device it
	// holds ended (DeviceTx.ImagingResult, in the same Apply); the result
	// is already in the request's record.
	DeviceFinished(tx *RequestTx, result string)
	// Known reports whether state is one of the machine's states.
	Known(state string) bool
	// Open reports whether a request in state still counts as open: it
	// may hold a device and expires.
	Open(state string) bool
}

// RequestEventArgs are the arguments of a request event.
type RequestEventArgs struct {
	ImagingResult string `json:"imaging_result,omitempty"`
}

// RequestTx is the view of one request that the machine gets inside Apply.
type RequestTx struct {
	tx *txn
	r  *Request
}

// Request returns the request record.
func (m *RequestTx) Request() *Request { return m.r }

// State is the request's current state.
func (m *RequestTx) State() string { return m.r.State }

// At is the command's time.
func (m *RequestTx) At() time.Time { return m.tx.at }

// Goto enters state (generation, deadline and log as DeviceTx.Goto).
func (m *RequestTx) Goto(state string, timeout time.Duration) {
	r := m.r
	if r.State != state {
		m.Log("statemachine", "entering state %s", state)
	}
	r.State, r.StateEntered = state, m.tx.at
	r.Generation++
	r.StateDeadline = m.tx.deadline(timeout)
	m.tx.touchRequest(r.ID)
}

// Inc increments a counter and returns its new value.
func (m *RequestTx) Inc(name string) int {
	if m.r.Counters == nil {
		m.r.Counters = map[string]int{}
	}
	m.r.Counters[name]++
	return m.r.Counters[name]
}

// ClearCounter resets a counter.
func (m *RequestTx) ClearCounter(name string) { delete(m.r.Counters, name) }

// Log files a line in the request's log.
func (m *RequestTx) Log(source, format string, args ...any) {
	m.tx.logs = append(m.tx.logs, LogEntry{Kind: LogRequest, Name: strconv.FormatInt(m.r.ID, 10), At: m.tx.at,
		Source: source, Message: fmt.Sprintf(format, args...)})
}

// Any reports whether the request is for any device.
func (m *RequestTx) Any() bool { return m.r.RequestedDevice == "any" }

// DeviceState is the state of the claimed device ("" when none).
func (m *RequestTx) DeviceState() string {
	if d, ok := m.tx.s.Devices[m.r.Device]; ok && m.r.Device != "" {
		return d.State
	}
	return ""
}

// RequestedDeviceState is the state of the named requested device ("" for
// any or an unknown name).
func (m *RequestTx) RequestedDeviceState() string {
	if d, ok := m.tx.s.Devices[m.r.RequestedDevice]; ok {
		return d.State
	}
	return ""
}

// Release drops the request's claim on its device, if any.
func (m *RequestTx) Release() {
	r := m.r
	d, ok := m.tx.s.Devices[r.Device]
	if r.Device == "" || !ok {
		r.Device, r.ImagingResult = "", ""
		return
	}
	// Lifeguard is not told (as the original): a device that is still
	// busy finishes its operation with no request. Both logs say so.
	var busy string
	if m.tx.devices == nil || !m.tx.devices.Available(d.State) {
		busy = fmt.Sprintf(" in state %s; the device goes on without a request", d.State)
	}
	if d.RequestID == r.ID {
		d.RequestID = 0
		m.tx.touchDevice(d.Name)
		m.tx.logDevice(d.Name, "mozpool", "released by request %d (%s)%s", r.ID, r.State, busy)
	}
	m.Log("mozpool", "released device %s%s", d.Name, busy)
	r.Device, r.ImagingResult = "", ""
}

// ClaimAndContact chooses a device for the request, claims it and tells its
// machine to image it (or only to power-cycle it when it already carries
// the reusable image with an equal boot config) — all in this Apply. It
// returns false when no device could be claimed. Choice (deterministic): a
// device in state ready, unclaimed, matching the requested device and
// environment, whose hardware has a PXE config for the image; among those,
// a device already carrying the reusable image with an equal boot config;
// then the least recently used, then by name.
func (m *RequestTx) ClaimAndContact() bool {
	s, r := m.tx.s, m.r
	img, ok := s.Images[r.Image]
	if !ok || m.tx.devices == nil {
		return false
	}
	var cands []*Device
	consider := func(d *Device) {
		if d.State != "ready" || d.RequestID != 0 {
			return
		}
		if srv, ok := s.Servers[d.ImagingServer]; ok && srv.Down {
			return // its rack is frozen until its node returns
		}
		if r.Environment != "" && r.Environment != "any" && d.Environment != r.Environment {
			return
		}
		if s.PXEConfigFor(r.Image, d.HardwareType) == "" {
			return
		}
		cands = append(cands, d)
	}
	if m.Any() {
		for _, d := range s.Devices {
			consider(d)
		}
	} else if d, ok := s.Devices[r.RequestedDevice]; ok {
		consider(d)
	}
	if len(cands) == 0 {
		return false
	}
	reusable := func(d *Device) bool {
		return img.CanReuse && d.Image == r.Image && sameBootConfig(d.BootConfig, r.BootConfig)
	}
	sort.Slice(cands, func(i, j int) bool {
		a, b := cands[i], cands[j]
		if ra, rb := reusable(a), reusable(b); ra != rb {
			return ra
		}
		if !a.LastUsed.Equal(b.LastUsed) {
			return a.LastUsed.Before(b.LastUsed)
		}
		return a.Name < b.Name
	})
	d := cands[0]
	event, args := "please_image", EventArgs{Image: &r.Image}
	if reusable(d) {
		event, args = "please_power_cycle", EventArgs{}
	} else {
		bc, _ := json.Marshal(r.BootConfig)
		args.BootConfig = bc
	}
	// Claim first: the device machine's effects (an imaging result) must
	// find the claim.
	d.RequestID, d.LastUsed = r.ID, m.tx.at
	r.Device, r.ImagingResult = d.Name, ""
	m.tx.touchDevice(d.Name)
	dm := &DeviceTx{tx: m.tx, d: d}
	before := d.Generation
	if err := m.tx.devices.Event(dm, event, args); err != nil || d.Generation == before {
		d.RequestID = 0
		r.Device = ""
		m.Log("mozpool", "device %s did not accept %s", d.Name, event)
		return false
	}
	m.Log("mozpool", "claimed device %s and sent it %s", d.Name, event)
	m.tx.logDevice(d.Name, "mozpool", "claimed by request %d (%s for %s)", r.ID, event, r.Assignee)
	return true
}

// sameBootConfig compares two boot configs as parsed JSON; unparsable or
// empty strings compare as {} (as the original).
func sameBootConfig(a, b string) bool {
	parse := func(s string) any {
		var v any
		if json.Unmarshal([]byte(s), &v) != nil || v == nil {
			return map[string]any{}
		}
		return v
	}
	return reflect.DeepEqual(parse(a), parse(b))
}

// requestResult tells the request holding a device how its operation ended
// (from DeviceTx.ImagingResult, in the same Apply).
func (tx *txn) requestResult(d *Device, result string) {
	r, ok := tx.s.Requests[d.RequestID]
	if !ok || d.RequestID == 0 || r.Device != d.Name {
		return
	}
	r.ImagingResult = result
	tx.touchRequest(r.ID)
	if tx.requests == nil {
		return
	}
	tx.requests.DeviceFinished(&RequestTx{tx: tx, r: r}, result)
}
