package client

import (
	"context"
	"net/url"

	"github.com/mozpool/mozpool/api"
)

// Images returns the images; all includes hidden ones.
func (c *Client) Images(ctx context.Context, all bool) ([]api.Image, error) {
	var q url.Values
	if all {
		q = url.Values{"all": {"1"}}
	}
	var out api.Images
	err := c.get(ctx, "/api/image/list/", q, &out)
	return out.Images, err
}

// UpsertImage adds an image, or modifies the one with the same name.
func (c *Client) UpsertImage(ctx context.Context, spec api.ImageSpec) (api.Image, error) {
	if spec.BootConfigKeys == nil {
		spec.BootConfigKeys = []string{}
	}
	var out api.ImageReply
	err := c.post(ctx, "/api/image/", spec, &out)
	return out.Image, err
}

// PXEConfigs returns the names of the PXE configs, sorted; activeOnly
// leaves out inactive ones.
func (c *Client) PXEConfigs(ctx context.Context, activeOnly bool) ([]string, error) {
	var q url.Values
	if activeOnly {
		q = url.Values{"active_only": {"1"}}
	}
	var out api.PXEConfigNames
	err := c.get(ctx, "/api/bmm/pxe_config/list/", q, &out)
	return out.PXEConfigs, err
}

func pxeConfigPath(name, op string) string {
	return "/api/bmm/pxe_config/" + url.PathEscape(name) + "/" + op + "/"
}

// PXEConfig returns one PXE config.
func (c *Client) PXEConfig(ctx context.Context, name string) (api.PXEConfig, error) {
	var out api.PXEConfigReply
	err := c.get(ctx, pxeConfigPath(name, "details"), nil, &out)
	return out.Details, err
}

// AddPXEConfig creates a PXE config; the server answers 409 when one with
// the same name exists.
func (c *Client) AddPXEConfig(ctx context.Context, pc api.PXEConfig) (api.PXEConfig, error) {
	var out api.PXEConfigReply
	err := c.post(ctx, "/api/bmm/pxe_config/", pc, &out)
	return out.Details, err
}

// UpdatePXEConfig modifies an existing PXE config; nil fields of u are
// left unchanged and u.Name is ignored.
func (c *Client) UpdatePXEConfig(ctx context.Context, name string, u api.PXEConfigUpdate) (api.PXEConfig, error) {
	u.Name = ""
	var out api.PXEConfigReply
	err := c.post(ctx, pxeConfigPath(name, "update"), u, &out)
	return out.Details, err
}

// SetImagePXEConfig maps an image on a hardware type and model to a PXE
// config; an empty pxeConfig removes the mapping.
func (c *Client) SetImagePXEConfig(ctx context.Context, image, hwType, hwModel, pxeConfig string) error {
	in := api.ImagePXEConfig{Image: image, HardwareType: hwType, HardwareModel: hwModel, PXEConfig: pxeConfig}
	return c.post(ctx, "/api/bmm/image_pxe_config/", in, nil)
}
