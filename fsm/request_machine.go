package fsm

import (
	"fmt"
	"slices"
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
	// Start sets a request just created on its way (into the queue).
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
	// Assign gives a waiting request the board the queue chose for it
	// (the request is already out of the queue): the machine claims the
	// board and sets it working. It returns false, having changed
	// nothing, when the board would not take the request; the queue then
	// puts the request back.
	Assign(tx *RequestTx, device string) bool
	// GiveUp ends the wait of a request the queue cannot serve (already
	// out of the queue; Request().Reason says why): busy is true when
	// no suitable board is free and the request asked not to wait,
	// false when no board of the inventory matches its constraints.
	GiveUp(tx *RequestTx, busy bool)
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

// Goto enters state (generation, deadline and log as DeviceTx.Goto). A
// request that was waiting in the queue leaves it.
func (m *RequestTx) Goto(state string, timeout time.Duration) {
	r := m.r
	m.tx.dequeue(r)
	if r.State != state {
		m.Log("statemachine", "entering state %s", state)
		m.tx.requestTransitions = append(m.tx.requestTransitions, RequestTransition{Request: r.ID, State: state})
	}
	r.State, r.StateEntered = state, m.tx.at
	r.Generation++
	r.StateDeadline = m.tx.deadline(timeout)
	m.tx.touchRequest(r.ID)
	m.tx.noteCallback(r)
}

// Enqueue puts the request in the queue of requests waiting for a board.
// At the end of the Apply, the queue gives it a free board it matches if
// there is one (RequestMachine.Assign), or gives up on it
// (RequestMachine.GiveUp); otherwise it waits until a board that comes
// free chooses it, or until the machine moves it on (its wait's deadline:
// see MaxWait).
func (m *RequestTx) Enqueue() { m.tx.enqueue(m.r) }

// Waiting reports whether the request is in the queue.
func (m *RequestTx) Waiting() bool { return m.r.QueueSeq != 0 }

// MaxWait is how long (unscaled) the request may wait in the queue.
func (m *RequestTx) MaxWait() time.Duration {
	if m.r.MaxWait > 0 {
		return m.r.MaxWait
	}
	return DefaultMaxWait
}

// MarkReady records that the request's board is ready for it: the
// queue's history learns the imaging time of the board's hardware type
// and the request's image.
func (m *RequestTx) MarkReady() {
	r := m.r
	r.ReadyAt = m.tx.at
	if d, ok := m.tx.s.Devices[r.Device]; ok && r.Device != "" && !r.ClaimedAt.IsZero() {
		m.tx.s.History.observeImaging(d.HardwareType, r.Image, r.Reused, m.tx.at.Sub(r.ClaimedAt))
	}
}

// SetReused records whether the claimed board already carried the
// request's image (it is only power-cycled): the history times the two
// apart.
func (m *RequestTx) SetReused(reused bool) { m.r.Reused = reused }

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
		r.closeClaim(m.tx.index)
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
	if !r.ReadyAt.IsZero() {
		m.tx.s.History.observeHold(r.FairGroup(), m.tx.at.Sub(r.ReadyAt))
	}
	r.closeClaim(m.tx.index)
	r.Device, r.ImagingResult, r.ReadyAt = "", "", time.Time{}
}

// DeviceView is a read-only copy of what a request machine chooses a
// device by.
type DeviceView struct {
	Name         string
	State        string
	Environment  string
	HardwareType string // HardwareKey
	// Image and BootConfig are what the device's card carries.
	Image      string
	BootConfig string
	// Generation counts the device's state entries.
	Generation uint64
	// Claimed: a request holds the device.
	Claimed bool
	// ServerDown: the device's imaging server is marked down (its rack
	// is frozen until its node returns).
	ServerDown bool
	LastUsed   time.Time
}

func (m *RequestTx) view(d *Device) DeviceView {
	srv, ok := m.tx.s.Servers[d.ImagingServer]
	return DeviceView{
		Name: d.Name, State: d.State, Environment: d.Environment, HardwareType: d.HardwareType,
		Image: d.Image, BootConfig: d.BootConfig, Generation: d.Generation,
		Claimed: d.RequestID != 0, ServerDown: ok && srv.Down, LastUsed: d.LastUsed,
	}
}

// EachDevice calls fn with every device, in no particular order. Without a
// device machine there is none: no device could be contacted.
func (m *RequestTx) EachDevice(fn func(DeviceView)) {
	if m.tx.devices == nil {
		return
	}
	for _, d := range m.tx.s.Devices {
		fn(m.view(d))
	}
}

// LookupDevice returns the device named name (none without a device
// machine, as EachDevice).
func (m *RequestTx) LookupDevice(name string) (DeviceView, bool) {
	d, ok := m.tx.s.Devices[name]
	if !ok || m.tx.devices == nil {
		return DeviceView{}, false
	}
	return m.view(d), true
}

// Image returns a copy of the record of the request's image.
func (m *RequestTx) Image() (Image, bool) {
	img, ok := m.tx.s.Images[m.r.Image]
	if !ok {
		return Image{}, false
	}
	out := *img
	out.BootConfigKeys = slices.Clone(img.BootConfigKeys)
	return out, true
}

// PXEConfigFor returns the PXE config that installs image on hardware of
// type hardwareType (a HardwareKey; "" if none).
func (m *RequestTx) PXEConfigFor(image, hardwareType string) string {
	return m.tx.s.PXEConfigFor(image, hardwareType)
}

// Claim makes the request the holder of the device and stamps the device's
// last use. The request must hold no device (Release first) and the device
// must be unclaimed (ErrConflict).
func (m *RequestTx) Claim(device string) error {
	r := m.r
	d, ok := m.tx.s.Devices[device]
	switch {
	case !ok:
		return fmt.Errorf("%w: %q", ErrUnknownDevice, device)
	case r.Device != "":
		return fmt.Errorf("%w: request %d already holds device %s", ErrConflict, r.ID, r.Device)
	case d.RequestID != 0:
		return fmt.Errorf("%w: device %s is held by request %d", ErrConflict, d.Name, d.RequestID)
	}
	d.RequestID, d.LastUsed = r.ID, m.tx.at
	r.Device, r.ImagingResult, r.ClaimedAt, r.ReadyAt, r.Reused = d.Name, "", m.tx.at, time.Time{}, false
	r.openClaim(d.Name, m.tx.index)
	m.tx.touchDevice(d.Name)
	return nil
}

// Unclaim takes back a Claim whose device would not take the request's
// event. Unlike Release it logs nothing (the claim was never announced);
// the device's last use stays stamped.
func (m *RequestTx) Unclaim() {
	if d, ok := m.tx.s.Devices[m.r.Device]; ok && d.RequestID == m.r.ID {
		d.RequestID = 0
	}
	// The claim was made in this entry: its span goes too.
	if n := len(m.r.Claims); m.r.Device != "" && n > 0 && m.r.Claims[n-1].To == 0 {
		m.r.Claims = m.r.Claims[:n-1]
	}
	m.r.Device = ""
}

// SendDeviceEvent runs the device machine on event for device, in this
// Apply (as a DeviceEvent would, without its generation check and log
// line). It returns the machine's error (ErrIgnored when the device's
// state does not accept the event), or ErrNoMachine or ErrUnknownDevice.
func (m *RequestTx) SendDeviceEvent(device, event string, args EventArgs) error {
	dm, err := m.tx.deviceTx(device)
	if err != nil {
		return err
	}
	return m.tx.devices.Event(dm, event, args)
}

// LogDevice files a line in a device's log.
func (m *RequestTx) LogDevice(device, source, format string, args ...any) {
	m.tx.logDevice(device, source, format, args...)
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
