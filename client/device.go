package client

import (
	"context"
	"net/url"
	"strconv"

	"github.com/mozpool/mozpool/api"
)

func devicePath(name, op string) string {
	return "/api/device/" + url.PathEscape(name) + "/" + op + "/"
}

// Devices returns the names of all devices.
func (c *Client) Devices(ctx context.Context) ([]string, error) {
	var out api.DeviceNames
	err := c.get(ctx, "/api/device/list/", nil, &out)
	return out.Devices, err
}

// DeviceDetails returns every device with its details.
func (c *Client) DeviceDetails(ctx context.Context) ([]api.Device, error) {
	var out api.DeviceList
	err := c.get(ctx, "/api/device/list/", url.Values{"details": {"1"}}, &out)
	return out.Devices, err
}

// Device returns one device's details.
func (c *Client) Device(ctx context.Context, name string) (api.DeviceDetails, error) {
	var out api.DeviceDetailsReply
	err := c.get(ctx, devicePath(name, "details"), nil, &out)
	return out.Device, err
}

// DeviceState returns a device's lifeguard state.
func (c *Client) DeviceState(ctx context.Context, name string) (string, error) {
	var out api.StateReply
	err := c.get(ctx, devicePath(name, "state"), nil, &out)
	return out.State, err
}

// DeviceLog returns a device's log, oldest first; limit > 0 keeps only the
// newest limit entries.
func (c *Client) DeviceLog(ctx context.Context, name string, limit int) ([]api.LogEntry, error) {
	var q url.Values
	if limit > 0 {
		q = url.Values{"limit": {strconv.Itoa(limit)}}
	}
	var out api.LogReply
	err := c.get(ctx, devicePath(name, "log"), q, &out)
	return out.Log, err
}

// SetComments replaces a device's comments ("" clears them).
func (c *Client) SetComments(ctx context.Context, name, comments string) error {
	return c.post(ctx, devicePath(name, "set-comments"), api.SetComments{Comments: comments}, nil)
}

// SetEnvironment sets a device's environment.
func (c *Client) SetEnvironment(ctx context.Context, name, env string) error {
	return c.post(ctx, devicePath(name, "set-environment"), api.SetEnvironment{Environment: env}, nil)
}
