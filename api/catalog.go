package api

// Image is an image as /api/image/list/ shows it: its id and its spec.
type Image struct {
	ID int64 `json:"id"`
	ImageSpec
}

// ImageSpec is the body of /api/image/ (add an image or modify the one with
// the same name) and an image of an Inventory.
type ImageSpec struct {
	Name           string   `json:"name"`
	BootConfigKeys []string `json:"boot_config_keys"`
	CanReuse       bool     `json:"can_reuse"`
	Hidden         bool     `json:"hidden"`
	HasSUTAgent    bool     `json:"has_sut_agent"`
	// InAdvance (new, present only when true): idle boards may be
	// imaged with it in advance, with the boot config requests last
	// asked for, and handed to a request for exactly that without
	// imaging again.
	InAdvance bool `json:"in_advance,omitempty"`
}

// Images answers /api/image/list/, sorted by name.
type Images struct {
	Images []Image `json:"images"`
}

// ImageReply answers /api/image/.
type ImageReply struct {
	Image Image `json:"image"`
}

// PXEConfig is a PXE config as .../details/ shows it. It is also the body
// of a creation (/api/bmm/pxe_config/).
type PXEConfig struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Contents    string `json:"contents"`
	Active      bool   `json:"active"`
}

// PXEConfigUpdate is the body of /api/bmm/pxe_config/:name/update/; nil
// fields are left unchanged. The server reads a creation's body as one
// too (Name is then required).
type PXEConfigUpdate struct {
	Name        string  `json:"name,omitempty"`
	Description *string `json:"description,omitempty"`
	Contents    *string `json:"contents,omitempty"`
	Active      *bool   `json:"active,omitempty"`
}

// PXEConfigNames answers /api/bmm/pxe_config/list/, sorted.
type PXEConfigNames struct {
	PXEConfigs []string `json:"pxe_configs"`
}

// PXEConfigReply answers a PXE config's details, creation and update.
type PXEConfigReply struct {
	Details PXEConfig `json:"details"`
}

// ImagePXEConfig maps an image on a hardware type and model to the PXE
// config that installs it: the body of /api/bmm/image_pxe_config/ (an empty
// PXEConfig removes the mapping) and an entry of an Inventory.
type ImagePXEConfig struct {
	Image         string `json:"image"`
	HardwareType  string `json:"hardware_type"`
	HardwareModel string `json:"hardware_model"`
	PXEConfig     string `json:"pxe_config"`
}
