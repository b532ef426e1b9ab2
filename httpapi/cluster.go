package httpapi

import (
	"maps"
	"net/http"
	"slices"

	"github.com/julienschmidt/httprouter"

	"github.com/mozpool/mozpool/api"
	"github.com/mozpool/mozpool/fsm"
)

// getClusterStatus answers the cluster's status plus device counts from the
// FSM; the rack of a device is that of its imaging server.
func (s *Server) getClusterStatus(*http.Request, httprouter.Params) (any, error) {
	out := api.ClusterStatus{
		Status:         s.cluster.Status(),
		DevicesByState: map[string]int{},
		DevicesByRack:  map[string]map[string]int{},
	}
	// One count per imaging server and state, folded into racks after:
	// a single map update per device (the sims and monitors ask often, and
	// a lab may hold 50,000 devices).
	type key struct{ server, state string }
	counts := map[key]int{}
	racks := map[string]string{}
	s.fsm.Read(func(st *fsm.State) {
		for _, d := range st.Devices {
			counts[key{d.ImagingServer, d.State}]++
		}
		for name, srv := range st.Servers {
			racks[name] = srv.Rack
		}
		out.SuspectRelayBoards = suspectRelayBoards(st)
		out.SuspectTFTPServers = suspectTFTPServers(st)
	})
	for k, n := range counts {
		out.DevicesByState[k.state] += n
		rack := racks[k.server]
		if out.DevicesByRack[rack] == nil {
			out.DevicesByRack[rack] = map[string]int{}
		}
		out.DevicesByRack[rack][k.state] += n
	}
	return out, nil
}

// suspectRelayBoards lists the suspect relay boards, by address.
func suspectRelayBoards(st *fsm.State) []api.SuspectRelayBoard {
	out := []api.SuspectRelayBoard{}
	for _, addr := range slices.Sorted(maps.Keys(st.RelayHealth)) {
		rh := st.RelayHealth[addr]
		if !rh.Suspect {
			continue
		}
		out = append(out, api.SuspectRelayBoard{Addr: addr, Kind: rh.Kind, Since: api.FormatTime(rh.SuspectSince), Devices: suspectDevices(rh)})
	}
	return out
}

// suspectTFTPServers lists the imaging servers whose PXE/TFTP is
// suspect, by name.
func suspectTFTPServers(st *fsm.State) []api.SuspectTFTPServer {
	out := []api.SuspectTFTPServer{}
	for _, srv := range slices.Sorted(maps.Keys(st.TFTPHealth)) {
		th := st.TFTPHealth[srv]
		if !th.Suspect {
			continue
		}
		out = append(out, api.SuspectTFTPServer{Server: srv, Kind: th.Kind, Since: api.FormatTime(th.SuspectSince), Devices: suspectDevices(th)})
	}
	return out
}

// suspectDevices names, sorted, the devices whose recent failures of the
// suspect kind made a shared part (a relay board, a server's PXE/TFTP)
// suspect.
func suspectDevices(h *fsm.RelayHealth) []string {
	var devs []string
	for _, f := range h.Recent {
		if f.Kind == h.Kind && !slices.Contains(devs, f.Device) {
			devs = append(devs, f.Device)
		}
	}
	slices.Sort(devs)
	return devs
}

// getClusterHealth answers 200 when this node knows a leader and is caught
// up, else 503, for load balancers and monitors.
func (s *Server) getClusterHealth(*http.Request, httprouter.Params) (any, error) {
	if err := s.cluster.Health(); err != nil {
		return &reply{
			status: http.StatusServiceUnavailable,
			header: http.Header{"Retry-After": {"1"}},
			body:   api.Health{Error: err.Error()},
		}, nil
	}
	return api.Health{OK: true, Node: s.cluster.Self().ID, AppliedIndex: s.fsm.AppliedIndex()}, nil
}

// getClusterSelf answers this node's identity; `mozpoolctl join` reads a
// new node's identity from here.
func (s *Server) getClusterSelf(*http.Request, httprouter.Params) (any, error) {
	return s.cluster.Self(), nil
}

// postClusterJoin adds the node described by the body (an api.Identity).
func (s *Server) postClusterJoin(r *http.Request, _ httprouter.Params) (any, error) {
	var id api.Identity
	if err := decodeObject(r, &id, maxBodyBytes); err != nil {
		return nil, err
	}
	res, err := s.cluster.Join(r.Context(), id)
	if err != nil {
		return nil, err
	}
	return api.JoinReply{Result: res}, nil
}

// postClusterRemove takes the node {"id": ...} out of the cluster.
func (s *Server) postClusterRemove(r *http.Request, _ httprouter.Params) (any, error) {
	var b api.Remove
	if err := decodeObject(r, &b, maxBodyBytes); err != nil {
		return nil, err
	}
	if b.ID == "" {
		return nil, badRequestf("missing %q", "id")
	}
	if err := s.cluster.Remove(r.Context(), b.ID); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}
