package client

import (
	"context"
	"net/url"
	"strconv"
)

// Device is one entry of the detailed device list. The pointer fields are
// null when unset, as in the original API.
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
}

// DeviceDetail is one device with the fields only its details page shows.
type DeviceDetail struct {
	Device
	HardwareType string `json:"hardware_type"`
	// StateDeadline is when the current state times out, as the server
	// writes it ("" or null when it has no timeout).
	StateDeadline  string `json:"state_deadline"`
	Generation     uint64 `json:"generation"`
	NextImage      string `json:"next_image"`
	NextBootConfig string `json:"next_boot_config"`
}

// LogEntry is one line of a device's log.
type LogEntry struct {
	ID        int64  `json:"id"`
	Timestamp string `json:"timestamp"`
	Source    string `json:"source"`
	Message   string `json:"message"`
}

func devicePath(name, op string) string {
	return "/api/device/" + url.PathEscape(name) + "/" + op + "/"
}

// Devices returns the names of all devices.
func (c *Client) Devices(ctx context.Context) ([]string, error) {
	var out struct {
		Devices []string `json:"devices"`
	}
	err := c.get(ctx, "/api/device/list/", nil, &out)
	return out.Devices, err
}

// DeviceDetails returns every device with its details.
func (c *Client) DeviceDetails(ctx context.Context) ([]Device, error) {
	var out struct {
		Devices []Device `json:"devices"`
	}
	err := c.get(ctx, "/api/device/list/", url.Values{"details": {"1"}}, &out)
	return out.Devices, err
}

// Device returns one device's details.
func (c *Client) Device(ctx context.Context, name string) (DeviceDetail, error) {
	var out struct {
		Device DeviceDetail `json:"device"`
	}
	err := c.get(ctx, devicePath(name, "details"), nil, &out)
	return out.Device, err
}

// DeviceState returns a device's lifeguard state.
func (c *Client) DeviceState(ctx context.Context, name string) (string, error) {
	var out struct {
		State string `json:"state"`
	}
	err := c.get(ctx, devicePath(name, "state"), nil, &out)
	return out.State, err
}

// DeviceLog returns a device's log, oldest first; limit > 0 keeps only the
// newest limit entries.
func (c *Client) DeviceLog(ctx context.Context, name string, limit int) ([]LogEntry, error) {
	var q url.Values
	if limit > 0 {
		q = url.Values{"limit": {strconv.Itoa(limit)}}
	}
	var out struct {
		Log []LogEntry `json:"log"`
	}
	err := c.get(ctx, devicePath(name, "log"), q, &out)
	return out.Log, err
}

// SetComments replaces a device's comments ("" clears them).
func (c *Client) SetComments(ctx context.Context, name, comments string) error {
	return c.post(ctx, devicePath(name, "set-comments"), map[string]string{"comments": comments}, nil)
}

// SetEnvironment sets a device's environment.
func (c *Client) SetEnvironment(ctx context.Context, name, env string) error {
	return c.post(ctx, devicePath(name, "set-environment"), map[string]string{"environment": env}, nil)
}
