package client

import (
	"context"
	"net/url"

	"github.com/mozpool/mozpool/api"
)

// DeviceEvent sends event to a device's state machine (please_image,
// please_power_cycle, ...); args, when not nil, is the event's JSON body.
func (c *Client) DeviceEvent(ctx context.Context, device, event string, args map[string]any) error {
	if args == nil {
		args = map[string]any{}
	}
	return c.post(ctx, devicePath(device, "event/"+url.PathEscape(event)), args, nil)
}

// ForceState moves a device from state from to state to, if it is in from
// (409 otherwise).
func (c *Client) ForceState(ctx context.Context, device, from, to string) error {
	return c.post(ctx, devicePath(device, "state-change/"+url.PathEscape(from)+"/to/"+url.PathEscape(to)), nil, nil)
}

// PowerCycle starts a power cycle of the device through its relay (the PXE
// file is removed, so it boots from its SD card).
func (c *Client) PowerCycle(ctx context.Context, device string) error {
	return c.post(ctx, devicePath(device, "power-cycle"), map[string]any{}, nil)
}

// PowerOff starts turning the device's power off.
func (c *Client) PowerOff(ctx context.Context, device string) error {
	return c.get(ctx, devicePath(device, "power-off"), nil, nil)
}

// Ping reports whether the device answers its imaging server's ping.
func (c *Client) Ping(ctx context.Context, device string) (bool, error) {
	var out api.Success
	err := c.get(ctx, devicePath(device, "ping"), nil, &out)
	return out.Success, err
}

// TransferLeader has the leader hand leadership to node id ("": the most
// up-to-date voter). It needs the cluster token.
func (c *Client) TransferLeader(ctx context.Context, id string) error {
	return c.post(ctx, "/api/cluster/transfer-leader/", api.TransferLeader{ID: id}, nil)
}
