package client

import (
	"context"
	"net/url"

	"github.com/mozpool/mozpool/api"
)

// Whoami returns who the server takes the client for (its token's name
// and role, or an anonymous caller) and the cluster's policy.
func (c *Client) Whoami(ctx context.Context) (api.Whoami, error) {
	var out api.Whoami
	err := c.get(ctx, "/api/auth/whoami/", nil, &out)
	return out, err
}

// CreateToken creates an API token (admin). The answer's Secret is the
// only time the token is shown.
func (c *Client) CreateToken(ctx context.Context, name, role string) (api.Token, error) {
	var out api.Token
	err := c.post(ctx, "/api/token/", api.TokenCreate{Name: name, Role: role}, &out)
	return out, err
}

// Tokens lists the API tokens (admin), without their secrets.
func (c *Client) Tokens(ctx context.Context) ([]api.Token, error) {
	var out api.TokenList
	err := c.get(ctx, "/api/token/list/", nil, &out)
	return out.Tokens, err
}

// RevokeToken deletes an API token by name (admin).
func (c *Client) RevokeToken(ctx context.Context, name string) error {
	return c.post(ctx, "/api/token/"+url.PathEscape(name)+"/revoke/", struct{}{}, nil)
}

// Policy returns the cluster's access policy (api.PolicyOpen or
// api.PolicyStrict).
func (c *Client) Policy(ctx context.Context) (string, error) {
	var out api.Policy
	err := c.get(ctx, "/api/cluster/policy/", nil, &out)
	return out.Policy, err
}

// SetPolicy sets the cluster's access policy (admin).
func (c *Client) SetPolicy(ctx context.Context, policy string) error {
	return c.post(ctx, "/api/cluster/policy/", api.Policy{Policy: policy}, nil)
}
