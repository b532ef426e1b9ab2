package httpapi

import (
	"net/http"
	"sort"

	"github.com/julienschmidt/httprouter"

	"github.com/mozpool/mozpool/api"
	"github.com/mozpool/mozpool/fsm"
)

// getImageList answers the images sorted by name; hidden ones only with
// ?all (an operator extension; the original never lists them).
func (s *Server) getImageList(r *http.Request, _ httprouter.Params) (any, error) {
	all := flag(r.URL.Query(), "all")
	images := []api.Image{}
	s.fsm.Read(func(st *fsm.State) {
		for _, img := range st.Images {
			if all || !img.Hidden {
				images = append(images, newImage(img))
			}
		}
	})
	sort.Slice(images, func(i, j int) bool { return images[i].Name < images[j].Name })
	return api.Images{Images: images}, nil
}

// postImage adds an image or modifies the one with the same name; body is
// an api.ImageSpec.
func (s *Server) postImage(r *http.Request, _ httprouter.Params) (any, error) {
	var spec api.ImageSpec
	if err := decodeObject(r, &spec, maxBodyBytes); err != nil {
		return nil, err
	}
	res, err := s.apply(r, fsm.CmdImageUpsert, &fsm.ImageUpsert{Image: spec})
	if err != nil {
		return nil, err
	}
	var img fsm.Image
	if err := res.Decode(&img); err != nil {
		return nil, err
	}
	return api.ImageReply{Image: newImage(&img)}, nil
}

// getPXEConfigList answers the PXE config names, sorted; with
// ?active_only only the active ones.
func (s *Server) getPXEConfigList(r *http.Request, _ httprouter.Params) (any, error) {
	activeOnly := flag(r.URL.Query(), "active_only")
	names := []string{}
	s.fsm.Read(func(st *fsm.State) {
		for name, pc := range st.PXEConfigs {
			if pc.Active || !activeOnly {
				names = append(names, name)
			}
		}
	})
	sort.Strings(names)
	return api.PXEConfigNames{PXEConfigs: names}, nil
}

func (s *Server) getPXEConfigDetails(_ *http.Request, ps httprouter.Params) (any, error) {
	name := ps.ByName("name")
	var out *api.PXEConfigReply
	s.fsm.Read(func(st *fsm.State) {
		if pc, ok := st.PXEConfigs[name]; ok {
			out = &api.PXEConfigReply{Details: newPXEConfig(pc)}
		}
	})
	if out == nil {
		return nil, unknown(fsm.ErrUnknownPXEConfig, name)
	}
	return out, nil
}

// postPXEConfig creates a PXE config (409 if the name is taken); absent
// fields of the body take their zero value.
func (s *Server) postPXEConfig(r *http.Request, _ httprouter.Params) (any, error) {
	var b api.PXEConfigUpdate
	if err := decodeObject(r, &b, maxBodyBytes); err != nil {
		return nil, err
	}
	return s.upsertPXEConfig(r, &fsm.PXEConfigUpsert{
		Name: b.Name, Description: b.Description, Contents: b.Contents, Active: b.Active, Create: true,
	})
}

// postPXEConfigUpdate modifies an existing PXE config (404 if unknown);
// absent fields of the body are left unchanged.
func (s *Server) postPXEConfigUpdate(r *http.Request, ps httprouter.Params) (any, error) {
	var b api.PXEConfigUpdate
	if err := decodeObject(r, &b, maxBodyBytes); err != nil {
		return nil, err
	}
	return s.upsertPXEConfig(r, &fsm.PXEConfigUpsert{
		Name: ps.ByName("name"), Description: b.Description, Contents: b.Contents, Active: b.Active,
	})
}

func (s *Server) upsertPXEConfig(r *http.Request, cmd *fsm.PXEConfigUpsert) (any, error) {
	res, err := s.apply(r, fsm.CmdPXEConfigUpsert, cmd)
	if err != nil {
		return nil, err
	}
	var pc fsm.PXEConfig
	if err := res.Decode(&pc); err != nil {
		return nil, err
	}
	return api.PXEConfigReply{Details: newPXEConfig(&pc)}, nil
}

// postImagePXEConfig maps (image, hardware type) to a PXE config; an empty
// pxe_config removes the mapping.
func (s *Server) postImagePXEConfig(r *http.Request, _ httprouter.Params) (any, error) {
	var b api.ImagePXEConfig
	if err := decodeObject(r, &b, maxBodyBytes); err != nil {
		return nil, err
	}
	if b.Image == "" || b.HardwareType == "" {
		return nil, badRequestf("image and hardware_type are required")
	}
	_, err := s.apply(r, fsm.CmdImagePXEConfigSet, &fsm.ImagePXEConfigSet{
		Image: b.Image, HardwareType: b.HardwareType, HardwareModel: b.HardwareModel, PXEConfig: b.PXEConfig,
	})
	if err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

// postInventorySync merges a lab inventory. A dry run computes the diff
// locally without proposing anything.
func (s *Server) postInventorySync(r *http.Request, _ httprouter.Params) (any, error) {
	var b api.InventorySync
	if err := decodeObject(r, &b, maxInventoryBodyBytes); err != nil {
		return nil, err
	}
	if b.Inventory == nil {
		return nil, badRequestf("missing %q", "inventory")
	}
	if b.DryRun {
		diff, err := s.fsm.DryRunInventory(*b.Inventory)
		if err != nil {
			return nil, err
		}
		refuse := !b.ShipIt && diff.DeviceChanges > diff.Limit
		return api.SyncResult{Diff: *diff, WouldRefuse: &refuse}, nil
	}
	res, err := s.apply(r, fsm.CmdInventorySync, &fsm.InventorySync{Inventory: *b.Inventory, ShipIt: b.ShipIt})
	if err != nil {
		return nil, err
	}
	out := api.SyncResult{Applied: true}
	if err := res.Decode(&out.Diff); err != nil {
		return nil, err
	}
	return out, nil
}
