package client

import (
	"context"
	"net/url"

	"github.com/mozpool/mozpool/fsm"
)

// PXEConfig is a PXE config as the API shows it.
type PXEConfig struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Contents    string `json:"contents"`
	Active      bool   `json:"active"`
}

// PXEConfigUpdate modifies a PXE config; nil fields are left unchanged.
type PXEConfigUpdate struct {
	Description *string `json:"description,omitempty"`
	Contents    *string `json:"contents,omitempty"`
	Active      *bool   `json:"active,omitempty"`
}

// Images returns the images; all includes hidden ones.
func (c *Client) Images(ctx context.Context, all bool) ([]fsm.Image, error) {
	var q url.Values
	if all {
		q = url.Values{"all": {"1"}}
	}
	var out struct {
		Images []fsm.Image `json:"images"`
	}
	err := c.get(ctx, "/api/image/list/", q, &out)
	return out.Images, err
}

// UpsertImage adds an image, or modifies the one with the same name.
func (c *Client) UpsertImage(ctx context.Context, spec fsm.ImageSpec) (fsm.Image, error) {
	if spec.BootConfigKeys == nil {
		spec.BootConfigKeys = []string{}
	}
	var out struct {
		Image fsm.Image `json:"image"`
	}
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
	var out struct {
		PXEConfigs []string `json:"pxe_configs"`
	}
	err := c.get(ctx, "/api/bmm/pxe_config/list/", q, &out)
	return out.PXEConfigs, err
}

func pxeConfigPath(name, op string) string {
	return "/api/bmm/pxe_config/" + url.PathEscape(name) + "/" + op + "/"
}

// PXEConfig returns one PXE config.
func (c *Client) PXEConfig(ctx context.Context, name string) (PXEConfig, error) {
	var out struct {
		Details PXEConfig `json:"details"`
	}
	err := c.get(ctx, pxeConfigPath(name, "details"), nil, &out)
	return out.Details, err
}

// AddPXEConfig creates a PXE config; the server answers 409 when one with
// the same name exists.
func (c *Client) AddPXEConfig(ctx context.Context, pc PXEConfig) (PXEConfig, error) {
	var out struct {
		Details PXEConfig `json:"details"`
	}
	err := c.post(ctx, "/api/bmm/pxe_config/", pc, &out)
	return out.Details, err
}

// UpdatePXEConfig modifies an existing PXE config.
func (c *Client) UpdatePXEConfig(ctx context.Context, name string, u PXEConfigUpdate) (PXEConfig, error) {
	var out struct {
		Details PXEConfig `json:"details"`
	}
	err := c.post(ctx, pxeConfigPath(name, "update"), u, &out)
	return out.Details, err
}

// SetImagePXEConfig maps an image on a hardware type and model to a PXE
// config; an empty pxeConfig removes the mapping.
func (c *Client) SetImagePXEConfig(ctx context.Context, image, hwType, hwModel, pxeConfig string) error {
	in := map[string]string{
		"image":          image,
		"hardware_type":  hwType,
		"hardware_model": hwModel,
		"pxe_config":     pxeConfig,
	}
	return c.post(ctx, "/api/bmm/image_pxe_config/", in, nil)
}
