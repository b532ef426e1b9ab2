package fsm

import (
	"fmt"
	"maps"
	"slices"
	"time"
)

// Rack is a rack of boards and the imaging servers that may act on them.
// Servers is the owner preference: the first is the preferred owner, the
// others are standbys in the order they take the rack over. Owner is the
// one server that acts on the rack's boards now; Generation increases at
// every change of owner, and every command an imaging server proposes
// about one of the rack's boards names the generation it acted under
// (Fence).
type Rack struct {
	Name       string   `json:"name"`
	Servers    []string `json:"servers"`
	Owner      string   `json:"owner,omitempty"`
	Generation uint64   `json:"generation"`
	// Moved is when the owner last changed; Reason says why ("inventory",
	// "takeover", "move").
	Moved  time.Time `json:"moved,omitzero"`
	Reason string    `json:"reason,omitempty"`
}

// Fence is carried by the commands an imaging server proposes about a
// board it acts on: the server, and the generation of the board's rack
// ownership it acted under. Apply refuses the command (ErrFenced) when the
// server does not own the board's rack, or the generation has passed. A
// command without a server (the API's, or one written before racks had
// owners) is not fenced.
type Fence struct {
	Server         string `json:"server,omitempty"`
	RackGeneration uint64 `json:"rack_generation,omitempty"`
}

// RackTakeover is a standby taking over a rack whose owner is lost. The
// leader proposes it; Generation is the rack's generation the proposer
// saw, and the command is refused (ErrFenced) if the rack has changed
// owner since, so two takeovers decided on the same view make one change.
type RackTakeover struct {
	Header
	Rack       string `json:"rack"`
	Server     string `json:"server"`
	Generation uint64 `json:"generation"`
}

// RackMove gives a rack to one of its servers by hand (an operator moving
// it for maintenance). Generation, when not zero, must be the rack's
// current one (ErrConflict otherwise).
type RackMove struct {
	Header
	Rack       string `json:"rack"`
	Server     string `json:"server"`
	Generation uint64 `json:"generation,omitempty"`
}

// RackOf returns the rack of a device (nil when it has none).
func (s *State) RackOf(d *Device) *Rack {
	if d == nil || d.Rack == "" {
		return nil
	}
	return s.Racks[d.Rack]
}

// OwnerGeneration returns the generation under which server may act on
// device now, and whether it may: it must own the device's rack (or, for a
// device in no rack, be its imaging server; the generation is then 0).
func (s *State) OwnerGeneration(device, server string) (uint64, bool) {
	d, ok := s.Devices[device]
	if !ok || server == "" {
		return 0, false
	}
	if r := s.RackOf(d); r != nil {
		return r.Generation, r.Owner == server
	}
	return 0, d.ImagingServer == server
}

// checkFence refuses a command f fences about device (see Fence).
func (s *State) checkFence(f Fence, device string) error {
	if f.Server == "" {
		return nil
	}
	d, ok := s.Devices[device]
	if !ok {
		return nil // the applier reports the unknown device
	}
	if r := s.RackOf(d); r != nil {
		switch {
		case r.Owner != f.Server:
			return fmt.Errorf("%w: %s does not own rack %s of device %s (owner %q, generation %d)", ErrFenced, f.Server, r.Name, device, r.Owner, r.Generation)
		case r.Generation != f.RackGeneration:
			return fmt.Errorf("%w: rack %s ownership generation %d has passed (now %d)", ErrFenced, r.Name, f.RackGeneration, r.Generation)
		}
		return nil
	}
	if d.ImagingServer != f.Server {
		return fmt.Errorf("%w: %s is not the imaging server of device %s", ErrFenced, f.Server, device)
	}
	return nil
}

// effectiveServer returns the rack of an imaging server ("" if none) and
// the server that acts for its boards now: the rack's owner, or the server
// itself.
func (s *State) effectiveServer(home string) (rack, server string) {
	srv, ok := s.Servers[home]
	if !ok || srv.Rack == "" {
		return "", home
	}
	if r, ok := s.Racks[srv.Rack]; ok && r.Owner != "" {
		return srv.Rack, r.Owner
	}
	return srv.Rack, home
}

// validateRacks checks the inventory's racks against the known servers.
func validateRacks(inv *Inventory, servers map[string]bool) error {
	seen := map[string]bool{}
	for _, r := range inv.Racks {
		if err := ValidName(r.Name); err != nil {
			return fmt.Errorf("rack: %w", err)
		}
		if seen[r.Name] {
			return fmt.Errorf("%w: rack %q listed twice", ErrInvalid, r.Name)
		}
		seen[r.Name] = true
		if len(r.Servers) == 0 {
			return fmt.Errorf("%w: rack %q names no imaging server", ErrInvalid, r.Name)
		}
		names := map[string]bool{}
		for _, srv := range r.Servers {
			if !servers[srv] {
				return fmt.Errorf("%w: rack %q names imaging server %q", ErrUnknownServer, r.Name, srv)
			}
			if names[srv] {
				return fmt.Errorf("%w: rack %q names %q twice", ErrInvalid, r.Name, srv)
			}
			names[srv] = true
		}
	}
	return nil
}

// mergeRacks brings the racks in line with the servers' racks and the
// inventory's rack list, after the servers are merged. A rack whose owner
// is no longer one of its servers (or that has none) gets its first.
func (tx *txn) mergeRacks(inv Inventory, diff *InventoryDiff) {
	s := tx.s
	listed := map[string][]string{}
	for _, r := range inv.Racks {
		listed[r.Name] = r.Servers
	}
	names := map[string]bool{}
	for name := range listed {
		names[name] = true
	}
	for _, srv := range s.Servers {
		if srv.Rack != "" {
			names[srv.Rack] = true
		}
	}
	for _, name := range slices.Sorted(maps.Keys(names)) {
		servers, ok := listed[name]
		r, exists := s.Racks[name]
		if !ok {
			// Not listed: the rack's own servers, kept in their order,
			// with any new one appended in name order.
			if exists {
				servers = slices.Clone(r.Servers)
			}
			for _, srvName := range slices.Sorted(maps.Keys(s.Servers)) {
				if s.Servers[srvName].Rack == name && !slices.Contains(servers, srvName) {
					servers = append(servers, srvName)
				}
			}
		}
		if !exists {
			r = &Rack{Name: name}
			s.Racks[name] = r
			diff.Changes = append(diff.Changes, Change{Op: "add", Kind: "rack", Name: name})
		} else if !slices.Equal(r.Servers, servers) {
			diff.Changes = append(diff.Changes, Change{Op: "update", Kind: "rack", Name: name, Fields: []string{"servers"}})
		}
		r.Servers = slices.Clone(servers)
		if len(r.Servers) > 0 && !slices.Contains(r.Servers, r.Owner) {
			tx.setRackOwner(r, r.Servers[0], "inventory")
		}
	}
}

// setRackOwner gives rack r to server: the generation increases, the
// rack's boards and relay boards follow the new owner, and every board
// enters its current state again (a new device generation, its timeout
// counted again from now), so that the new owner continues its state
// machine where it is, and no result of the old owner's work is taken.
func (tx *txn) setRackOwner(r *Rack, server, reason string) {
	s := tx.s
	old := r.Owner
	r.Owner, r.Generation, r.Moved, r.Reason = server, r.Generation+1, tx.at, reason
	for _, name := range slices.Sorted(maps.Keys(s.RelayBoards)) {
		if rb := s.RelayBoards[name]; rb.Rack == r.Name {
			rb.ImagingServer = server
		}
	}
	for _, name := range slices.Sorted(maps.Keys(s.Devices)) {
		d := s.Devices[name]
		if d.Rack != r.Name {
			continue
		}
		d.ImagingServer = server
		if old != "" {
			if !d.StateDeadline.IsZero() {
				span := d.StateDeadline.Sub(d.StateEntered)
				d.StateDeadline = tx.at.Add(max(span, 0))
			}
			d.StateEntered = tx.at
			d.Generation++
			tx.logDevice(name, "rack", "rack %s moved from %s to %s (%s, generation %d); continuing state %s", r.Name, old, server, reason, r.Generation, d.State)
		}
		tx.touchDevice(name)
	}
}

// rackOf returns the rack named name, which must name server among its
// servers.
func (tx *txn) rackOf(name, server string) (*Rack, error) {
	r, ok := tx.s.Racks[name]
	switch {
	case !ok:
		return nil, fmt.Errorf("%w: rack %q", ErrUnknownRack, name)
	case !slices.Contains(r.Servers, server):
		return nil, fmt.Errorf("%w: %q is not a server of rack %s", ErrInvalid, server, name)
	}
	return r, nil
}

func (tx *txn) applyRackTakeover(b []byte) (any, error) {
	var c RackTakeover
	tx.decode(b, &c)
	r, err := tx.rackOf(c.Rack, c.Server)
	switch {
	case err != nil:
		return nil, err
	case c.Generation != r.Generation:
		return nil, fmt.Errorf("%w: rack %s is at generation %d, not %d", ErrFenced, c.Rack, r.Generation, c.Generation)
	case c.Server == r.Owner:
		return nil, fmt.Errorf("%w: %s owns rack %s already", ErrConflict, c.Server, c.Rack)
	}
	tx.setRackOwner(r, c.Server, "takeover")
	out := *r
	return &out, nil
}

func (tx *txn) applyRackMove(b []byte) (any, error) {
	var c RackMove
	tx.decode(b, &c)
	r, err := tx.rackOf(c.Rack, c.Server)
	switch {
	case err != nil:
		return nil, err
	case c.Generation != 0 && c.Generation != r.Generation:
		return nil, fmt.Errorf("%w: rack %s is at generation %d, not %d", ErrConflict, c.Rack, r.Generation, c.Generation)
	}
	if c.Server != r.Owner {
		tx.setRackOwner(r, c.Server, "move")
	}
	out := *r
	return &out, nil
}

// mayLog reports whether server, acting under the rack generations gens,
// may file a line about device (see LogAppend).
func (s *State) mayLog(server string, gens map[string]uint64, device string) bool {
	d, ok := s.Devices[device]
	if !ok {
		return true
	}
	if r := s.RackOf(d); r != nil {
		return r.Owner == server && gens[r.Name] == r.Generation
	}
	return d.ImagingServer == server
}

// OwnedRackGenerations returns the generation of every rack server owns,
// for the log lines it files (LogAppend.RackGenerations).
func (f *FSM) OwnedRackGenerations(server string) map[string]uint64 {
	out := map[string]uint64{}
	f.Read(func(s *State) {
		for name, r := range s.Racks {
			if r.Owner == server {
				out[name] = r.Generation
			}
		}
	})
	return out
}
