package client

import (
	"context"
	"net/http"

	"github.com/mozpool/mozpool/api"
)

// Version returns the server's version string.
func (c *Client) Version(ctx context.Context) (string, error) {
	var out api.Version
	err := c.get(ctx, "/api/version/", nil, &out)
	return out.Version, err
}

// SyncInventory merges a lab inventory (requires the token). dryRun only
// computes the diff (and whether the real sync would be refused:
// SyncResult.Refused); shipIt lifts the safety valve on device changes.
// Over the valve the server answers 409 (an *Error with Status 409).
func (c *Client) SyncInventory(ctx context.Context, inv api.Inventory, dryRun, shipIt bool) (api.SyncResult, error) {
	in := api.InventorySync{Inventory: &inv, DryRun: dryRun, ShipIt: shipIt}
	var out api.SyncResult
	err := c.post(ctx, "/api/inventory/sync/", in, &out)
	return out, err
}

// ClusterStatus returns the node's view of the cluster plus device counts.
func (c *Client) ClusterStatus(ctx context.Context) (api.ClusterStatus, error) {
	var out api.ClusterStatus
	err := c.get(ctx, "/api/cluster/status/", nil, &out)
	return out, err
}

// Health returns nil when the node has a leader and is caught up, else the
// server's reason as an *Error (Status 503).
func (c *Client) Health(ctx context.Context) error {
	// The health path is spelled without a trailing slash (load balancers
	// probe it as is); a server that redirects it is followed.
	// Not retried: a 503 is the answer.
	return c.doRetry(ctx, http.MethodGet, "/api/cluster/health", nil, nil, nil, 0)
}

// Self returns the identity of the node the client talks to.
func (c *Client) Self(ctx context.Context) (api.Identity, error) {
	var out api.Identity
	err := c.get(ctx, "/api/cluster/self/", nil, &out)
	return out, err
}

// Join adds the node described by id to the cluster (requires the token).
// Joining a member again is a no-op with Action "unchanged".
func (c *Client) Join(ctx context.Context, id api.Identity) (api.JoinResult, error) {
	var out api.JoinReply
	err := c.post(ctx, "/api/cluster/join/", id, &out)
	return out.Result, err
}

// Remove removes the node with the given id from the cluster (requires the
// token).
func (c *Client) Remove(ctx context.Context, id string) error {
	return c.post(ctx, "/api/cluster/remove/", api.Remove{ID: id}, nil)
}
