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
