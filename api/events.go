package api

// Event is one device or request state change in GET /api/events/ (the
// data of a Server-Sent Event whose id is "INDEX-SEQ" and whose event type
// is the kind).
type Event struct {
	// Index is the Raft log index of the command that made the change;
	// Seq its position among that command's events.
	Index uint64 `json:"index"`
	Seq   uint32 `json:"seq"`
	// At is the command's time (RFC 3339).
	At string `json:"at"`
	// Kind is "device" or "request"; Name the device name or request id.
	Kind  string `json:"kind"`
	Name  string `json:"name"`
	State string `json:"state"`
	// ImagingServer is the device's imaging server, or the server that
	// created the request.
	ImagingServer string `json:"imaging_server,omitempty"`
	// Device is a request's device; Request a device's request.
	Device  string `json:"device,omitempty"`
	Request int64  `json:"request,omitempty"`
}

// ID is the event's id in the stream ("INDEX-SEQ").
func (e Event) ID() string {
	return uitoa(e.Index) + "-" + uitoa(uint64(e.Seq))
}

func uitoa(n uint64) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}
