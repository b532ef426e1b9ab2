package client

import (
	"context"
	"net/url"

	"github.com/mozpool/mozpool/api"
)

// Racks lists the racks: servers, owner, ownership generation, boards.
func (c *Client) Racks(ctx context.Context) ([]api.Rack, error) {
	var out api.RackList
	err := c.get(ctx, "/api/rack/list/", nil, &out)
	return out.Racks, err
}

// Rack returns one rack.
func (c *Client) Rack(ctx context.Context, name string) (api.Rack, error) {
	var out api.Rack
	err := c.get(ctx, "/api/rack/"+url.PathEscape(name)+"/details/", nil, &out)
	return out, err
}

// MoveRack gives a rack to one of its servers (operator). generation, if
// not zero, must be the rack's current one (409 otherwise).
func (c *Client) MoveRack(ctx context.Context, rack, server string, generation uint64) (api.Rack, error) {
	var out api.Rack
	err := c.post(ctx, "/api/rack/"+url.PathEscape(rack)+"/move/", api.RackMoveBody{Server: server, Generation: generation}, &out)
	return out, err
}
