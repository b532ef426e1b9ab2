package httpapi

import (
	"fmt"
	"maps"
	"net/http"
	"slices"

	"github.com/julienschmidt/httprouter"

	"github.com/mozpool/mozpool/api"
	"github.com/mozpool/mozpool/fsm"
)

// rackView renders a rack of st.
func rackView(st *fsm.State, r *fsm.Rack) api.Rack {
	out := api.Rack{Name: r.Name, Servers: slices.Clone(r.Servers), Owner: r.Owner, Generation: r.Generation,
		Moved: r.Moved, Reason: r.Reason}
	for _, d := range st.Devices {
		if d.Rack == r.Name {
			out.Devices++
		}
	}
	for _, rb := range st.RelayBoards {
		if rb.Rack == r.Name {
			out.RelayBoards++
		}
	}
	for _, name := range r.Servers {
		if srv, ok := st.Servers[name]; ok && srv.Down {
			out.Down = append(out.Down, name)
		}
	}
	return out
}

func (s *Server) getRackList(r *http.Request, _ httprouter.Params) (any, error) {
	out := api.RackList{Racks: []api.Rack{}}
	s.fsm.Read(func(st *fsm.State) {
		for _, name := range slices.Sorted(maps.Keys(st.Racks)) {
			out.Racks = append(out.Racks, rackView(st, st.Racks[name]))
		}
	})
	return out, nil
}

func (s *Server) getRack(r *http.Request, ps httprouter.Params) (any, error) {
	var out api.Rack
	found := false
	s.fsm.Read(func(st *fsm.State) {
		if rk, ok := st.Racks[ps.ByName("rack")]; ok {
			out, found = rackView(st, rk), true
		}
	})
	if !found {
		return nil, fmt.Errorf("%w: %q", fsm.ErrUnknownRack, ps.ByName("rack"))
	}
	return out, nil
}

// postRackMove gives a rack to one of its servers (an operator moving it
// for maintenance): the FSM refuses a server the rack does not name (400)
// and a generation that is not the rack's (409).
func (s *Server) postRackMove(r *http.Request, ps httprouter.Params) (any, error) {
	var body api.RackMoveBody
	if err := decodeObject(r, &body, maxBodyBytes); err != nil {
		return nil, err
	}
	if body.Server == "" {
		return nil, badRequestf("server (the imaging server to move the rack to) is required")
	}
	name := ps.ByName("rack")
	known := false
	s.fsm.Read(func(st *fsm.State) { _, known = st.Racks[name] })
	if !known && s.ownWrites(r.Context(), inventoryCommands...) == nil {
		// A rack an inventory change this node forwarded brought may not
		// be applied here yet: look again once it is.
		s.fsm.Read(func(st *fsm.State) { _, known = st.Racks[name] })
	}
	if !known {
		return nil, fmt.Errorf("%w: %q", fsm.ErrUnknownRack, name)
	}
	res, err := s.apply(r, fsm.CmdRackMove, &fsm.RackMove{Header: fsm.Header{At: s.now().UTC()},
		Rack: name, Server: body.Server, Generation: body.Generation})
	if err != nil {
		return nil, err
	}
	var rk fsm.Rack
	if err := res.Decode(&rk); err != nil {
		return nil, err
	}
	// The view counts the rack's boards from this node's state: wait for
	// the move if this node forwarded it.
	if err := s.ownWrites(r.Context(), fsm.CmdRackMove); err != nil {
		return nil, err
	}
	var out api.Rack
	s.fsm.Read(func(st *fsm.State) { out = rackView(st, &rk) })
	return out, nil
}
