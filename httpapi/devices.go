package httpapi

import (
	"encoding/json"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/mozpool/mozpool/api"
	"github.com/mozpool/mozpool/fsm"
	"github.com/mozpool/mozpool/logstore"
)

// statusLogLines is how many log lines the status routes return.
const statusLogLines = 100

func (s *Server) getVersion(*http.Request, httprouter.Params) (any, error) {
	return api.Version{Version: s.version}, nil
}

// getDeviceList answers /api/device/list/: names, or with ?details the
// device objects, sorted by name.
func (s *Server) getDeviceList(r *http.Request, _ httprouter.Params) (any, error) {
	details := flag(r.URL.Query(), "details")
	var names []string
	var devices []api.Device
	s.fsm.Read(func(st *fsm.State) {
		for name, d := range st.Devices {
			names = append(names, name)
			if details {
				v := newDevice(d)
				v.RelaySuspect = st.RelaySuspect(d.RelayInfo)
				v.TFTPSuspect = st.TFTPSuspect(d.ImagingServer)
				devices = append(devices, v)
			}
		}
	})
	if details {
		sort.Slice(devices, func(i, j int) bool { return devices[i].Name < devices[j].Name })
		return api.DeviceList{Devices: nonNil(devices)}, nil
	}
	slices.Sort(names)
	return api.DeviceNames{Devices: nonNil(names)}, nil
}

// nonNil turns a nil slice into an empty one so it is rendered [].
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// deviceState returns a device's state from the FSM.
func (s *Server) deviceState(name string) (string, error) {
	var state string
	var ok bool
	s.fsm.Read(func(st *fsm.State) {
		if d, found := st.Devices[name]; found {
			state, ok = d.State, true
		}
	})
	if !ok {
		return "", unknownDevice(name)
	}
	return state, nil
}

// getDeviceState answers {"state": s}, fresh, or with ?cache from the
// state cache with Expires and Cache-Control headers (for Nagios).
func (s *Server) getDeviceState(r *http.Request, ps httprouter.Params) (any, error) {
	name := ps.ByName("id")
	if !flag(r.URL.Query(), "cache") {
		state, err := s.deviceState(name)
		if err != nil {
			return nil, err
		}
		return api.StateReply{State: state}, nil
	}
	now := s.now()
	state, ok, expires := s.states.get(now, s.fsm, name)
	if !ok {
		return nil, unknownDevice(name)
	}
	ttl := expires.Sub(now)
	h := http.Header{}
	h.Set("Expires", expires.UTC().Format(http.TimeFormat))
	h.Set("Cache-Control", "public, max-age="+strconv.Itoa(int(ttl.Seconds())+1))
	return &reply{status: http.StatusOK, header: h, body: api.StateReply{State: state}}, nil
}

// deviceLog reads a device's log after checking the device exists.
func (s *Server) deviceLog(name string, q logstore.Query) ([]api.LogEntry, error) {
	var ok bool
	s.fsm.Read(func(st *fsm.State) { _, ok = st.Devices[name] })
	if !ok {
		return nil, unknownDevice(name)
	}
	es, err := s.logs.Query(fsm.LogDevice, name, q)
	if err != nil {
		return nil, err
	}
	return newLogEntries(es), nil
}

// getDeviceStatus answers the state and the newest log lines.
func (s *Server) getDeviceStatus(_ *http.Request, ps httprouter.Params) (any, error) {
	name := ps.ByName("id")
	state, err := s.deviceState(name)
	if err != nil {
		return nil, err
	}
	log, err := s.deviceLog(name, logstore.Query{Limit: statusLogLines})
	if err != nil {
		return nil, err
	}
	return api.StatusReply{State: state, Log: log}, nil
}

// getDeviceLog answers the device's log, optionally only the newest
// ?limit=N lines and only those of the last ?timeperiod=SECS seconds.
func (s *Server) getDeviceLog(r *http.Request, ps httprouter.Params) (any, error) {
	qs := r.URL.Query()
	limit, hasLimit, err := intParam(qs, "limit")
	if err != nil {
		return nil, err
	}
	period, hasPeriod, err := intParam(qs, "timeperiod")
	if err != nil {
		return nil, err
	}
	var q logstore.Query
	if hasPeriod {
		q.Since = s.now().Add(-time.Duration(period) * time.Second)
	}
	if hasLimit {
		if limit == 0 {
			// The store reads Limit 0 as "no limit"; the caller asked
			// for none.
			if _, err := s.deviceState(ps.ByName("id")); err != nil {
				return nil, err
			}
			return api.LogReply{Log: []api.LogEntry{}}, nil
		}
		q.Limit = limit
	}
	log, err := s.deviceLog(ps.ByName("id"), q)
	if err != nil {
		return nil, err
	}
	return api.LogReply{Log: log}, nil
}

// getDeviceDetails answers one device with the fields operators need.
func (s *Server) getDeviceDetails(_ *http.Request, ps httprouter.Params) (any, error) {
	name := ps.ByName("id")
	var out *api.DeviceDetailsReply
	s.fsm.Read(func(st *fsm.State) {
		if d, ok := st.Devices[name]; ok {
			out = &api.DeviceDetailsReply{Device: newDeviceDetails(d)}
			out.Device.RelaySuspect = st.RelaySuspect(d.RelayInfo)
			out.Device.TFTPSuspect = st.TFTPSuspect(d.ImagingServer)
		}
	})
	if out == nil {
		return nil, unknownDevice(name)
	}
	return out, nil
}

// postDeviceComments sets a device's comments; body {"comments": str}.
func (s *Server) postDeviceComments(r *http.Request, ps httprouter.Params) (any, error) {
	var body map[string]json.RawMessage
	if err := decodeObject(r, &body, maxBodyBytes); err != nil {
		return nil, err
	}
	comments, err := stringField(body, "comments")
	if err != nil {
		return nil, err
	}
	_, err = s.apply(r, fsm.CmdDeviceSetComments, &fsm.DeviceSetComments{Device: ps.ByName("id"), Comments: comments})
	return nil, err
}

// postDeviceEnvironment sets a device's environment; body
// {"environment": str}.
func (s *Server) postDeviceEnvironment(r *http.Request, ps httprouter.Params) (any, error) {
	var body map[string]json.RawMessage
	if err := decodeObject(r, &body, maxBodyBytes); err != nil {
		return nil, err
	}
	env, err := stringField(body, "environment")
	if err != nil {
		return nil, err
	}
	_, err = s.apply(r, fsm.CmdDeviceSetEnvironment, &fsm.DeviceSetEnvironment{Device: ps.ByName("id"), Environment: env})
	return nil, err
}

// getEnvironmentList answers the distinct environments of all devices,
// sorted; a device without one contributes null.
func (s *Server) getEnvironmentList(*http.Request, httprouter.Params) (any, error) {
	seen := map[string]bool{}
	s.fsm.Read(func(st *fsm.State) {
		for _, d := range st.Devices {
			seen[d.Environment] = true
		}
	})
	envs := make([]string, 0, len(seen))
	for e := range seen {
		envs = append(envs, e)
	}
	slices.Sort(envs)
	out := make([]*string, 0, len(envs))
	for _, e := range envs {
		out = append(out, stringOrNil(e))
	}
	return api.Environments{Environments: out}, nil
}
