package api

// Request is a request as its details route and its creation show it.
type Request struct {
	ID              int64  `json:"id"`
	RequestedDevice string `json:"requested_device"`
	Assignee        string `json:"assignee"`
	// Expires is the expiry time in the wire time format.
	Expires     string `json:"expires"`
	Environment string `json:"environment"`
	Image       string `json:"image"`
	// BootConfig is the JSON string of the image's boot-config keys.
	BootConfig string `json:"boot_config"`
	// AssignedDevice is the claimed device, "" while there is none.
	AssignedDevice string `json:"assigned_device"`
	// URL is the request's absolute URL, ending in "/"; status/,
	// details/, renew/ and return/ are relative to it.
	URL string `json:"url"`
	// CallbackURL is notified of the request's outcomes ("" when none).
	CallbackURL string `json:"callback_url,omitempty"`
	// Claims is the request's claim history, oldest first (details/
	// only; omitted when the request never held a device).
	Claims []Claim `json:"claims,omitempty"`
}

// Claim is one span of a request's hold on a device, in Raft log indexes:
// claimed by the entry at From, released by the entry at To (0 while
// held). Spans are half-open: [From, To).
type Claim struct {
	Device string `json:"device"`
	From   uint64 `json:"from"`
	To     uint64 `json:"to,omitempty"`
}

// RequestReply answers a request's creation
// (/api/device/:id/request/): 200, or 409 when the request was closed at
// once (no device could be found).
type RequestReply struct {
	Request Request `json:"request"`
}

// RequestSummary is one row of /api/request/list/.
type RequestSummary struct {
	ID              int64  `json:"id"`
	ImagingServer   string `json:"imaging_server"`
	Assignee        string `json:"assignee"`
	BootConfig      string `json:"boot_config"`
	State           string `json:"state"`
	Expires         string `json:"expires"`
	RequestedDevice string `json:"requested_device"`
	Environment     string `json:"environment"`
	// AssignedDevice and DeviceState are "" when no device is claimed.
	AssignedDevice string `json:"assigned_device"`
	DeviceState    string `json:"device_state"`
	// Image is not in the original's list (nor in this server's); it is
	// filled only by servers that add it. Request always has it.
	Image string `json:"image,omitempty"`
}

// RequestList answers /api/request/list/, sorted by id.
type RequestList struct {
	Requests []RequestSummary `json:"requests"`
}

// Renew is the body of /api/request/:id/renew/: the new lifetime from now,
// in seconds. (The server, like the original, also takes a float or a
// numeric string.)
type Renew struct {
	Duration int64 `json:"duration"`
}

// QueueInfo is what a request's details and status add while it waits in
// the queue (and, for the fields it asked for, at any time). Every key is
// absent when unset, so the original's clients see the keys they know.
type QueueInfo struct {
	// Priority, Group and the constraints are what the request asked for.
	Priority      *int              `json:"priority,omitempty"`
	Group         string            `json:"group,omitempty"`
	HardwareType  string            `json:"hardware_type,omitempty"`
	HardwareModel string            `json:"hardware_model,omitempty"`
	Tags          map[string]string `json:"tags,omitempty"`
	// MaxWait is how long the request may wait for a board, in seconds
	// (unscaled).
	MaxWait int64 `json:"max_wait,omitempty"`
	// QueuePosition is 1 for the request served next among those that
	// compete for the same boards; QueueLength counts those (itself
	// included). Both are absent when the request does not wait.
	QueuePosition int `json:"queue_position,omitempty"`
	QueueLength   int `json:"queue_length,omitempty"`
	// ETA is when the request is expected to be ready (wire time
	// format); absent when it does not wait or no board is expected.
	ETA string `json:"eta,omitempty"`
	// Reason says why the queue gave up on the request.
	Reason string `json:"reason,omitempty"`
}

// RequestDetails answers /api/request/:id/details/: the request and its
// queue information.
type RequestDetails struct {
	Request
	QueueInfo
}

// RequestStatus answers /api/request/:id/status/: the state and newest log
// lines (as StatusReply) and the queue information. The answer's
// HeaderIndex is what to pass as ?index= (with ?wait=) to block until the
// next change.
type RequestStatus struct {
	Log   []LogEntry `json:"log"`
	State string     `json:"state"`
	QueueInfo
}

// QueueEntry is one row of /api/queue/.
type QueueEntry struct {
	ID              int64             `json:"id"`
	Assignee        string            `json:"assignee"`
	Group           string            `json:"group"`
	Priority        int               `json:"priority"`
	RequestedDevice string            `json:"requested_device"`
	Environment     string            `json:"environment"`
	Image           string            `json:"image"`
	HardwareType    string            `json:"hardware_type,omitempty"`
	HardwareModel   string            `json:"hardware_model,omitempty"`
	Tags            map[string]string `json:"tags,omitempty"`
	// QueuedAt is when the request entered the queue; WaitUntil when its
	// max_wait ends (wire time format).
	QueuedAt  string `json:"queued_at"`
	WaitUntil string `json:"wait_until,omitempty"`
	// Aged: it has waited long enough to be served before every request
	// that has not, whatever their priorities.
	Aged          bool   `json:"aged,omitempty"`
	QueuePosition int    `json:"queue_position"`
	QueueLength   int    `json:"queue_length"`
	ETA           string `json:"eta,omitempty"`
}

// QueueReply answers /api/queue/: the waiting requests, grouped by the
// boards they compete for, each group in service order.
type QueueReply struct {
	Queue []QueueEntry `json:"queue"`
	// Index is the applied log index the answer reflects.
	Index uint64 `json:"index"`
	// Weights are the fair-share weights set (other groups weigh 1).
	Weights map[string]int `json:"weights,omitempty"`
}

// QueueWeight is the body of POST /api/queue/weight/.
type QueueWeight struct {
	Group  string `json:"group"`
	Weight int    `json:"weight"`
}
