package api

// Device is a device as /api/device/list/?details shows it: exactly these
// 13 keys, the nullable ones null when unset, as in the original.
type Device struct {
	ID            int64   `json:"id"`
	Name          string  `json:"name"`
	FQDN          string  `json:"fqdn"`
	InventoryID   int64   `json:"inventory_id"`
	MAC           string  `json:"mac_address"`
	ImagingServer string  `json:"imaging_server"`
	RelayInfo     string  `json:"relay_info"`
	State         string  `json:"state"`
	Comments      *string `json:"comments"`
	Image         *string `json:"image"`
	BootConfig    *string `json:"boot_config"`
	Environment   *string `json:"environment"`
	RequestID     *int64  `json:"request_id"`
	// HealthScore is 0..100: the share of successes in the device's
	// history since its last reset (100 with none). New: Mozpool 4.x
	// clients ignore it.
	HealthScore int `json:"health_score"`
	// RelaySuspect (new, present only when true) says the device's relay
	// board is the suspect of a shared fault: its boards' failures of that
	// kind are not counted against them.
	RelaySuspect bool `json:"relay_suspect,omitempty"`
	// TFTPSuspect (new, present only when true) says the PXE/TFTP of the
	// device's imaging server is the suspect of a shared fault.
	TFTPSuspect bool `json:"tftp_suspect,omitempty"`
}

// DeviceDetails is a device as /api/device/:id/details/ shows it: the list
// entry plus what operators need.
type DeviceDetails struct {
	Device
	// HardwareType is "type/model".
	HardwareType string `json:"hardware_type"`
	// StateDeadline is when the current state times out (wire time
	// format), null when it has none.
	StateDeadline  *string `json:"state_deadline"`
	Generation     uint64  `json:"generation"`
	NextImage      *string `json:"next_image"`
	NextBootConfig *string `json:"next_boot_config"`
	// History is the device's recent outcomes, oldest first.
	History []DeviceOutcome `json:"history"`
}

// DeviceOutcome is one entry of a device's history: an operation ("boot",
// "imaging", "self_test", "health_check", "ping", "power_cycle", or
// "reset") and, for a failure, its kind.
type DeviceOutcome struct {
	// At is in the wire time format.
	At   string `json:"at"`
	Op   string `json:"op"`
	Fail string `json:"fail,omitempty"`
}

// LogEntry is one line of a device's or a request's log.
type LogEntry struct {
	ID int64 `json:"id"`
	// Timestamp is in the wire time format.
	Timestamp string `json:"timestamp"`
	Source    string `json:"source"`
	Message   string `json:"message"`
}

// DeviceNames answers /api/device/list/.
type DeviceNames struct {
	Devices []string `json:"devices"`
}

// DeviceList answers /api/device/list/?details, sorted by name.
type DeviceList struct {
	Devices []Device `json:"devices"`
}

// DeviceDetailsReply answers /api/device/:id/details/.
type DeviceDetailsReply struct {
	Device DeviceDetails `json:"device"`
}

// StateReply answers /api/device/:id/state/ and a board's registration
// (/api/device/:id/register/).
type StateReply struct {
	State string `json:"state"`
}

// StatusReply answers the device and request status routes: the state and
// the newest log lines (at most 100, oldest first). Its keys are in the
// original's (sorted) order.
type StatusReply struct {
	Log   []LogEntry `json:"log"`
	State string     `json:"state"`
}

// LogReply answers the device and request log routes, oldest first.
type LogReply struct {
	Log []LogEntry `json:"log"`
}

// Environments answers /api/environment/list/: the distinct environments,
// sorted; null stands for devices without one.
type Environments struct {
	Environments []*string `json:"environments"`
}

// SetComments is the body of /api/device/:id/set-comments/ ("" clears
// them).
type SetComments struct {
	Comments string `json:"comments"`
}

// SetEnvironment is the body of /api/device/:id/set-environment/.
type SetEnvironment struct {
	Environment string `json:"environment"`
}

// Success answers the ping and relay test routes.
type Success struct {
	Success bool `json:"success"`
}
