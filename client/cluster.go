package client

import (
	"context"

	"github.com/mozpool/mozpool/cluster"
	"github.com/mozpool/mozpool/fsm"
)

// Version returns the server's version string.
func (c *Client) Version(ctx context.Context) (string, error) {
	var out struct {
		Version string `json:"version"`
	}
	err := c.get(ctx, "/api/version/", nil, &out)
	return out.Version, err
}

// SyncResult is the answer to an inventory sync.
type SyncResult struct {
	Diff fsm.InventoryDiff `json:"diff"`
	// Applied is true when the sync changed the state (never for a dry run).
	Applied bool `json:"applied"`
	// WouldRefuse is set by a dry run whose changes exceed the safety
	// valve: the real sync would need shipIt.
	WouldRefuse bool `json:"would_refuse,omitempty"`
}

// SyncInventory merges a lab inventory (requires the token). dryRun only
// computes the diff; shipIt lifts the safety valve on device changes. Over
// the valve the server answers 409 (an *Error with Status 409).
func (c *Client) SyncInventory(ctx context.Context, inv fsm.Inventory, dryRun, shipIt bool) (SyncResult, error) {
	in := struct {
		Inventory fsm.Inventory `json:"inventory"`
		DryRun    bool          `json:"dry_run"`
		ShipIt    bool          `json:"ship_it"`
	}{inv, dryRun, shipIt}
	var out SyncResult
	err := c.post(ctx, "/api/inventory/sync/", in, &out)
	return out, err
}

// ClusterStatus is a node's view of the cluster plus device counts.
type ClusterStatus struct {
	cluster.Status
	// DevicesByState counts devices per lifeguard state.
	DevicesByState map[string]int `json:"devices_by_state"`
	// DevicesByRack counts devices per rack, then per state.
	DevicesByRack map[string]map[string]int `json:"devices_by_rack"`
}

// ClusterStatus returns the node's view of the cluster.
func (c *Client) ClusterStatus(ctx context.Context) (ClusterStatus, error) {
	var out ClusterStatus
	err := c.get(ctx, "/api/cluster/status/", nil, &out)
	return out, err
}

// Health returns nil when the node has a leader and is caught up, else the
// server's reason as an *Error (Status 503).
func (c *Client) Health(ctx context.Context) error {
	// The health path is spelled without a trailing slash (load balancers
	// probe it as is); a server that redirects it is followed.
	return c.get(ctx, "/api/cluster/health", nil, nil)
}

// Self returns the identity of the node the client talks to.
func (c *Client) Self(ctx context.Context) (cluster.Identity, error) {
	var out cluster.Identity
	err := c.get(ctx, "/api/cluster/self/", nil, &out)
	return out, err
}

// Join adds the node described by id to the cluster (requires the token).
// Joining a member again is a no-op with Action "unchanged".
func (c *Client) Join(ctx context.Context, id cluster.Identity) (cluster.JoinResult, error) {
	var out struct {
		Result cluster.JoinResult `json:"result"`
	}
	err := c.post(ctx, "/api/cluster/join/", id, &out)
	return out.Result, err
}

// Remove removes the node with the given id from the cluster (requires the
// token).
func (c *Client) Remove(ctx context.Context, id string) error {
	return c.post(ctx, "/api/cluster/remove/", map[string]string{"id": id}, nil)
}
