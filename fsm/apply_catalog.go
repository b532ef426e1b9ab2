package fsm

import (
	"fmt"
	"slices"

	"github.com/mozpool/mozpool/api"
)

// ImageSpec describes an image to add or modify: the body of the image
// route and an image of an Inventory, so the wire shape (an alias of
// api.ImageSpec, which is also the ImageUpsert command's payload).
type ImageSpec = api.ImageSpec

func (s *State) upsertImage(spec ImageSpec) (img *Image, changed bool, err error) {
	if err := ValidName(spec.Name); err != nil {
		return nil, false, err
	}
	keys := append([]string{}, spec.BootConfigKeys...)
	img, ok := s.Images[spec.Name]
	if !ok {
		img = &Image{ID: s.nextID("image"), Name: spec.Name}
		s.Images[spec.Name] = img
		changed = true
	} else if !slices.Equal(img.BootConfigKeys, keys) || img.CanReuse != spec.CanReuse ||
		img.Hidden != spec.Hidden || img.HasSUTAgent != spec.HasSUTAgent || img.InAdvance != spec.InAdvance {
		changed = true
	}
	img.BootConfigKeys, img.CanReuse, img.Hidden, img.HasSUTAgent, img.InAdvance = keys, spec.CanReuse, spec.Hidden, spec.HasSUTAgent, spec.InAdvance
	return img, changed, nil
}

func (tx *txn) applyImageUpsert(b []byte) (any, error) {
	var c ImageUpsert
	tx.decode(b, &c)
	img, _, err := tx.s.upsertImage(c.Image)
	if err != nil {
		return nil, err
	}
	out := *img
	return &out, nil
}

func (tx *txn) applyPXEConfigUpsert(b []byte) (any, error) {
	var c PXEConfigUpsert
	tx.decode(b, &c)
	if err := ValidName(c.Name); err != nil {
		return nil, err
	}
	s := tx.s
	pc, ok := s.PXEConfigs[c.Name]
	switch {
	case c.Create && ok:
		return nil, fmt.Errorf("%w: pxe config %q", ErrExists, c.Name)
	case !c.Create && !ok:
		return nil, fmt.Errorf("%w: %q", ErrUnknownPXEConfig, c.Name)
	case c.Create:
		pc = &PXEConfig{ID: s.nextID("pxe_config"), Name: c.Name, Active: true}
		s.PXEConfigs[c.Name] = pc
	}
	if c.Description != nil {
		pc.Description = *c.Description
	}
	if c.Contents != nil {
		pc.Contents = *c.Contents
	}
	if c.Active != nil {
		pc.Active = *c.Active
	}
	out := *pc
	return &out, nil
}

func (tx *txn) applyImagePXEConfigSet(b []byte) (any, error) {
	var c ImagePXEConfigSet
	tx.decode(b, &c)
	if err := tx.s.setImagePXE(c.Image, c.HardwareType, c.HardwareModel, c.PXEConfig); err != nil {
		return nil, err
	}
	// Boards of that hardware may now serve (or no longer serve) waiting
	// requests for the image.
	hw := HardwareKey(c.HardwareType, c.HardwareModel)
	tx.markAllDevices(func(d *Device) bool { return d.HardwareType == hw })
	return nil, nil
}

func (s *State) setImagePXE(image, hwType, hwModel, pxe string) error {
	if _, ok := s.Images[image]; !ok {
		return fmt.Errorf("%w: %q", ErrUnknownImage, image)
	}
	hw := HardwareKey(hwType, hwModel)
	if _, ok := s.HardwareTypes[hw]; !ok {
		return fmt.Errorf("%w: %q", ErrUnknownHardwareType, hw)
	}
	key := imagePXEKey(image, hw)
	if pxe == "" {
		delete(s.ImagePXEConfigs, key)
		return nil
	}
	if _, ok := s.PXEConfigs[pxe]; !ok {
		return fmt.Errorf("%w: %q", ErrUnknownPXEConfig, pxe)
	}
	s.ImagePXEConfigs[key] = &ImagePXEConfig{Image: image, HardwareType: hw, PXEConfig: pxe}
	return nil
}
