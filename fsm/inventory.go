package fsm

import (
	"fmt"
	"maps"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/mozpool/mozpool/api"
)

// The inventory is the body of the inventory sync route and the payload of
// the InventorySync command, so its shape is the wire shape, defined once in
// package api; these aliases keep the fsm names. Changing a JSON tag there
// changes the command format of the Raft log.
type (
	// Inventory is a lab inventory: the file `mozpoolctl inventory sync`
	// reads. Devices are merged by inventory id (added, updated,
	// deleted); the other entities are added or updated, never deleted.
	Inventory             = api.Inventory
	InventoryServer       = api.InventoryServer
	InventoryRack         = api.InventoryRack
	InventoryRelayBoard   = api.InventoryRelayBoard
	InventoryHardwareType = api.InventoryHardwareType
	InventoryPXEConfig    = api.InventoryPXEConfig
	InventoryImagePXE     = api.ImagePXEConfig
	InventoryDevice       = api.InventoryDevice
	// Change is one line of an inventory diff.
	Change = api.Change
	// InventoryDiff is what a sync changed (or, for a dry run, would
	// change).
	InventoryDiff = api.InventoryDiff
)

// SafetyLimit is the most device changes a sync may make without ShipIt:
// max(5, 10% of the devices known, 10% of the devices in the inventory),
// as the original inventory sync.
func SafetyLimit(known, incoming int) int {
	return max(5, known/10, incoming/10)
}

// defaultRelayPort is the ProXR TCP port when relay_info names none.
const defaultRelayPort = 2101

// relayAddr extracts the board address of a relay_info string
// host[:port]:bankB:relayR.
func relayAddr(ri string) (host string, port int, err error) {
	i := strings.Index(ri, ":bank")
	if i <= 0 || !strings.Contains(ri[i:], ":relay") {
		return "", 0, fmt.Errorf("%w: relay_info %q is not host[:port]:bankB:relayR", ErrInvalid, ri)
	}
	return splitRelayHost(ri[:i])
}

// splitRelayHost splits "host[:port]", the port defaulting to 2101.
func splitRelayHost(hp string) (string, int, error) {
	host, port := hp, defaultRelayPort
	if j := strings.LastIndex(hp, ":"); j >= 0 {
		p, err := strconv.Atoi(hp[j+1:])
		if err != nil || p <= 0 || p > 65535 {
			return "", 0, fmt.Errorf("%w: relay board address %q has a bad port", ErrInvalid, hp)
		}
		host, port = hp[:j], p
	}
	if host == "" {
		return "", 0, fmt.Errorf("%w: relay board address %q has no host", ErrInvalid, hp)
	}
	return host, port, nil
}

// relayBoardName derives a board's name from its address: the first label
// of a host name, or "relay-" and the dashed IP address; a port other than
// the default is appended.
func relayBoardName(host string, port int) string {
	name, _, _ := strings.Cut(host, ".")
	if net.ParseIP(host) != nil {
		name = "relay-" + strings.NewReplacer(".", "-", ":", "-").Replace(host)
	}
	if port != defaultRelayPort {
		name += "-" + strconv.Itoa(port)
	}
	return name
}

func (tx *txn) applyInventorySync(b []byte) (any, error) {
	var c InventorySync
	tx.decode(b, &c)
	return tx.mergeInventory(c.Inventory, c.ShipIt)
}

// DryRunInventory returns the diff a sync of inv would produce, without
// changing anything.
func (f *FSM) DryRunInventory(inv Inventory) (*InventoryDiff, error) {
	f.stateMu.RLock()
	b, err := encodeSnapshot(f.s)
	f.stateMu.RUnlock()
	if err != nil {
		return nil, err
	}
	s, err := decodeSnapshot(strings.NewReader(string(b)))
	if err != nil {
		return nil, err
	}
	tx := &txn{s: s}
	diff, err := tx.mergeInventory(inv, true)
	if err != nil {
		return nil, err
	}
	return diff, nil
}

// deviceFields lists which fields of d differ from the inventory entry.
func deviceFields(d *Device, in *InventoryDevice, mac, hw, rack, server string) []string {
	var f []string
	add := func(name string, differ bool) {
		if differ {
			f = append(f, name)
		}
	}
	add("name", d.Name != in.Name)
	add("fqdn", d.FQDN != in.FQDN)
	add("mac_address", d.MAC != mac)
	add("imaging_server", d.ImagingServer != server)
	add("rack", d.Rack != rack)
	add("relay_info", d.RelayInfo != in.RelayInfo)
	add("hardware_type", d.HardwareType != hw)
	add("ip_address", d.IPAddress != in.IPAddress)
	add("environment", in.Environment != "" && d.Environment != in.Environment)
	add("tags", !maps.Equal(d.Tags, in.Tags))
	return f
}

// validateInventory checks the inventory on its own and against the state,
// and returns the MAC addresses normalised, by inventory id.
func (s *State) validateInventory(inv *Inventory) (map[int64]string, error) {
	servers := map[string]bool{}
	for name := range s.Servers {
		servers[name] = true
	}
	for _, srv := range inv.ImagingServers {
		if srv.Name == "" {
			return nil, fmt.Errorf("%w: imaging server without a name", ErrInvalid)
		}
		servers[srv.Name] = true
	}
	hw := map[string]bool{}
	for k := range s.HardwareTypes {
		hw[k] = true
	}
	for _, h := range inv.HardwareTypes {
		if h.Type == "" {
			return nil, fmt.Errorf("%w: hardware type without a type", ErrInvalid)
		}
		hw[HardwareKey(h.Type, h.Model)] = true
	}
	pxes := map[string]bool{}
	for name := range s.PXEConfigs {
		pxes[name] = true
	}
	for _, pc := range inv.PXEConfigs {
		if err := ValidName(pc.Name); err != nil {
			return nil, err
		}
		pxes[pc.Name] = true
	}
	images := map[string]bool{}
	for name := range s.Images {
		images[name] = true
	}
	for _, img := range inv.Images {
		if err := ValidName(img.Name); err != nil {
			return nil, err
		}
		images[img.Name] = true
	}
	for _, m := range inv.ImagePXEConfigs {
		switch hwKey := HardwareKey(m.HardwareType, m.HardwareModel); {
		case !images[m.Image]:
			return nil, fmt.Errorf("%w: image_pxe_config names %q", ErrUnknownImage, m.Image)
		case !hw[hwKey]:
			return nil, fmt.Errorf("%w: image_pxe_config names %q", ErrUnknownHardwareType, hwKey)
		case m.PXEConfig != "" && !pxes[m.PXEConfig]:
			return nil, fmt.Errorf("%w: image_pxe_config names %q", ErrUnknownPXEConfig, m.PXEConfig)
		}
	}
	if err := validateRacks(inv, servers); err != nil {
		return nil, err
	}
	for _, rb := range inv.RelayBoards {
		if rb.FQDN == "" || !servers[rb.ImagingServer] {
			return nil, fmt.Errorf("%w: relay board %q needs an fqdn and a known imaging server", ErrInvalid, rb.FQDN)
		}
		if _, _, err := splitRelayHost(rb.FQDN); err != nil {
			return nil, err
		}
		if rb.Name != "" {
			if err := ValidName(rb.Name); err != nil {
				return nil, fmt.Errorf("relay board: %w", err)
			}
		}
	}
	macs := map[int64]string{}
	names := map[string]bool{}
	seenMAC := map[string]string{}
	for i := range inv.Devices {
		d := &inv.Devices[i]
		if err := ValidName(d.Name); err != nil {
			return nil, fmt.Errorf("device %d: %w", d.InventoryID, err)
		}
		if d.InventoryID <= 0 {
			return nil, fmt.Errorf("%w: device %q needs a positive inventory_id", ErrInvalid, d.Name)
		}
		if _, dup := macs[d.InventoryID]; dup {
			return nil, fmt.Errorf("%w: inventory_id %d listed twice", ErrInvalid, d.InventoryID)
		}
		if names[d.Name] {
			return nil, fmt.Errorf("%w: device name %q listed twice", ErrInvalid, d.Name)
		}
		names[d.Name] = true
		mac, err := NormalizeMAC(d.MAC)
		if err != nil {
			return nil, fmt.Errorf("device %q: %w", d.Name, err)
		}
		if other, dup := seenMAC[mac]; dup {
			return nil, fmt.Errorf("%w: devices %q and %q share mac address %s", ErrInvalid, other, d.Name, mac)
		}
		seenMAC[mac] = d.Name
		macs[d.InventoryID] = mac
		if !servers[d.ImagingServer] {
			return nil, fmt.Errorf("%w: device %q names imaging server %q", ErrUnknownServer, d.Name, d.ImagingServer)
		}
		if !hw[HardwareKey(d.HardwareType, d.HardwareModel)] {
			return nil, fmt.Errorf("%w: device %q is %q", ErrUnknownHardwareType, d.Name, HardwareKey(d.HardwareType, d.HardwareModel))
		}
		if d.RelayInfo != "" {
			if _, _, err := relayAddr(d.RelayInfo); err != nil {
				return nil, fmt.Errorf("device %q: %w", d.Name, err)
			}
		}
		if d.IPAddress != "" && net.ParseIP(d.IPAddress) == nil {
			return nil, fmt.Errorf("%w: device %q ip_address %q", ErrInvalid, d.Name, d.IPAddress)
		}
		if len(d.Environment) > maxEnvironmentLen {
			return nil, fmt.Errorf("%w: device %q environment too long", ErrInvalid, d.Name)
		}
		if err := ValidateTags(d.Tags); err != nil {
			return nil, fmt.Errorf("device %q: %w", d.Name, err)
		}
	}
	return macs, nil
}

// mergeInventory validates inv, checks the safety valve (unless shipIt) and
// merges it into the state. Nothing is changed when it returns an error.
func (tx *txn) mergeInventory(inv Inventory, shipIt bool) (*InventoryDiff, error) {
	s := tx.s
	macs, err := s.validateInventory(&inv)
	if err != nil {
		return nil, err
	}

	// Plan device changes first: the safety valve must be checked before
	// anything is touched.
	byInv := map[int64]*Device{}
	for _, d := range s.Devices {
		byInv[d.InventoryID] = d
	}
	diff := &InventoryDiff{Limit: SafetyLimit(len(s.Devices), len(inv.Devices))}
	var devChanges []Change
	keep := map[int64]bool{}
	for i := range inv.Devices {
		in := &inv.Devices[i]
		keep[in.InventoryID] = true
		hw := HardwareKey(in.HardwareType, in.HardwareModel)
		rack, server := s.effectiveServer(in.ImagingServer)
		if d, ok := byInv[in.InventoryID]; !ok {
			devChanges = append(devChanges, Change{Op: "add", Kind: "device", Name: in.Name})
		} else if f := deviceFields(d, in, macs[in.InventoryID], hw, rack, server); len(f) > 0 {
			devChanges = append(devChanges, Change{Op: "update", Kind: "device", Name: in.Name, Fields: f})
		}
	}
	var gone []*Device
	for _, d := range s.Devices {
		if !keep[d.InventoryID] {
			gone = append(gone, d)
		}
	}
	sort.Slice(gone, func(i, j int) bool { return gone[i].Name < gone[j].Name })
	for _, d := range gone {
		devChanges = append(devChanges, Change{Op: "delete", Kind: "device", Name: d.Name})
	}
	diff.DeviceChanges = len(devChanges)
	if !shipIt && diff.DeviceChanges > diff.Limit {
		return nil, fmt.Errorf("%w: %d device changes exceed the safety limit of %d (use ship-it to apply)",
			ErrTooManyChanges, diff.DeviceChanges, diff.Limit)
	}

	// Everything below is valid by construction; mutate.
	for _, srv := range inv.ImagingServers {
		cur, ok := s.Servers[srv.Name]
		switch {
		case !ok:
			s.Servers[srv.Name] = &ImagingServer{ID: s.nextID("server"), Name: srv.Name, Rack: srv.Rack}
			diff.Changes = append(diff.Changes, Change{Op: "add", Kind: "imaging_server", Name: srv.Name})
		case srv.Rack != "" && cur.Rack != srv.Rack:
			cur.Rack = srv.Rack
			diff.Changes = append(diff.Changes, Change{Op: "update", Kind: "imaging_server", Name: srv.Name, Fields: []string{"rack"}})
		}
	}
	for _, h := range inv.HardwareTypes {
		k := HardwareKey(h.Type, h.Model)
		if _, ok := s.HardwareTypes[k]; !ok {
			s.HardwareTypes[k] = &HardwareType{ID: s.nextID("hardware_type"), Type: h.Type, Model: h.Model}
			diff.Changes = append(diff.Changes, Change{Op: "add", Kind: "hardware_type", Name: k})
		}
	}
	for _, spec := range inv.Images {
		_, existed := s.Images[spec.Name]
		if _, changed, _ := s.upsertImage(spec); changed {
			diff.Changes = append(diff.Changes, Change{Op: opFor(existed), Kind: "image", Name: spec.Name})
		}
	}
	for _, pc := range inv.PXEConfigs {
		active := pc.Active == nil || *pc.Active
		cur, ok := s.PXEConfigs[pc.Name]
		if !ok {
			cur = &PXEConfig{ID: s.nextID("pxe_config"), Name: pc.Name}
			s.PXEConfigs[pc.Name] = cur
		} else if cur.Description == pc.Description && cur.Contents == pc.Contents && cur.Active == active {
			continue
		}
		cur.Description, cur.Contents, cur.Active = pc.Description, pc.Contents, active
		diff.Changes = append(diff.Changes, Change{Op: opFor(ok), Kind: "pxe_config", Name: pc.Name})
	}
	for _, m := range inv.ImagePXEConfigs {
		hw := HardwareKey(m.HardwareType, m.HardwareModel)
		if s.PXEConfigFor(m.Image, hw) == m.PXEConfig {
			continue
		}
		existed := s.PXEConfigFor(m.Image, hw) != ""
		if err := s.setImagePXE(m.Image, m.HardwareType, m.HardwareModel, m.PXEConfig); err != nil {
			// Not reached: validateInventory checks every reference
			// before anything is changed.
			return nil, err
		}
		diff.Changes = append(diff.Changes, Change{Op: opFor(existed), Kind: "image_pxe_config", Name: m.Image + "@" + hw})
	}

	tx.mergeRacks(inv, diff)
	tx.mergeRelayBoards(inv, diff)

	for _, d := range gone {
		tx.deleteDevice(d)
	}
	for i := range inv.Devices {
		in := &inv.Devices[i]
		hw := HardwareKey(in.HardwareType, in.HardwareModel)
		mac := macs[in.InventoryID]
		rack, server := s.effectiveServer(in.ImagingServer)
		d, ok := byInv[in.InventoryID]
		if !ok {
			state, timeout := tx.initialDeviceState()
			d = &Device{
				ID: s.nextID("device"), Name: in.Name, InventoryID: in.InventoryID,
				State: state, StateEntered: tx.at, StateDeadline: tx.deviceDeadline(timeout), Generation: 1,
			}
			tx.logDevice(in.Name, "inventory", "registered from inventory (inventory id %d)", in.InventoryID)
		} else if f := deviceFields(d, in, mac, hw, rack, server); len(f) > 0 {
			tx.logDevice(in.Name, "inventory", "updated from inventory: %s", strings.Join(f, ", "))
		} else {
			continue
		}
		if d.Name != in.Name {
			// Another device may already hold d's old name (names
			// swapped, or a new device took it): only drop d's own
			// entry.
			if s.Devices[d.Name] == d {
				delete(s.Devices, d.Name)
			}
			if r, ok := s.Requests[d.RequestID]; ok && d.RequestID != 0 {
				r.Device = in.Name
				r.closeClaim(tx.index)
				r.openClaim(in.Name, tx.index)
			}
		}
		d.Name, d.FQDN, d.MAC, d.ImagingServer, d.RelayInfo, d.HardwareType = in.Name, in.FQDN, mac, server, in.RelayInfo, hw
		d.Rack = rack
		d.IPAddress = in.IPAddress
		if in.Environment != "" {
			d.Environment = in.Environment
		}
		d.Tags = maps.Clone(in.Tags)
		if len(d.Tags) == 0 {
			d.Tags = nil
		}
		s.Devices[d.Name] = d
		tx.touchDevice(d.Name)
	}
	diff.Changes = append(diff.Changes, devChanges...)
	if s.Queue != nil {
		s.Queue.possible = map[string]bool{}
	}
	return diff, nil
}

func opFor(existed bool) string {
	if existed {
		return "update"
	}
	return "add"
}

// mergeRelayBoards adds the boards listed or named by relay_info, keyed by
// address (host and port); a board named by devices of several imaging
// servers keeps the first one, in inventory order.
func (tx *txn) mergeRelayBoards(inv Inventory, diff *InventoryDiff) {
	s := tx.s
	type board struct {
		host   string
		port   int
		server string
		name   string
	}
	want := map[string]*board{} // host:port
	for _, d := range inv.Devices {
		if d.RelayInfo == "" {
			continue
		}
		host, port, _ := relayAddr(d.RelayInfo)
		key := net.JoinHostPort(host, strconv.Itoa(port))
		if _, ok := want[key]; !ok {
			want[key] = &board{host: host, port: port, server: d.ImagingServer}
		}
	}
	for _, rb := range inv.RelayBoards {
		host, port, _ := splitRelayHost(rb.FQDN)
		key := net.JoinHostPort(host, strconv.Itoa(port))
		want[key] = &board{host: host, port: port, server: rb.ImagingServer, name: rb.Name}
	}
	for _, key := range slices.Sorted(maps.Keys(want)) {
		b := want[key]
		name := b.name
		if name == "" {
			name = relayBoardName(b.host, b.port)
		}
		rack, server := s.effectiveServer(b.server)
		rb, ok := s.RelayBoards[name]
		if ok && rb.FQDN == b.host && rb.Port == b.port && rb.ImagingServer == server && rb.Rack == rack {
			continue
		}
		if !ok {
			rb = &RelayBoard{ID: s.nextID("relay_board"), Name: name}
			s.RelayBoards[name] = rb
		}
		rb.FQDN, rb.Port, rb.ImagingServer, rb.Rack = b.host, b.port, server, rack
		diff.Changes = append(diff.Changes, Change{Op: opFor(ok), Kind: "relay_board", Name: name})
	}
}

// deleteDevice removes a device and releases its claim.
func (tx *txn) deleteDevice(d *Device) {
	if r, ok := tx.s.Requests[d.RequestID]; ok && d.RequestID != 0 {
		r.Device, r.ImagingResult = "", ""
		r.closeClaim(tx.index)
		tx.touchRequest(r.ID)
		tx.logs = append(tx.logs, LogEntry{Kind: LogRequest, Name: strconv.FormatInt(r.ID, 10), At: tx.at,
			Source: "inventory", Message: fmt.Sprintf("device %s was removed from the inventory", d.Name)})
	}
	delete(tx.s.Devices, d.Name)
	if tx.s.Queue != nil {
		delete(tx.s.Queue.trust, d.Name)
	}
	tx.logDevice(d.Name, "inventory", "deleted: no longer in the inventory")
	tx.touchDevice(d.Name)
}
