package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http"

	"github.com/julienschmidt/httprouter"

	"github.com/mozpool/mozpool/api"
	"github.com/mozpool/mozpool/fsm"
	"github.com/mozpool/mozpool/lifeguard"
)

// deviceEvent delivers an event to a device's state machine (GET or POST;
// the POST body holds the arguments, used by please_image). It answers 200
// {} like the original, also when the state ignores the event (the device
// log says so); bad please_image arguments are a 400.
func (s *Server) deviceEvent(r *http.Request, ps httprouter.Params) (any, error) {
	var args fsm.EventArgs
	if r.Method == http.MethodPost {
		b, err := readJSONBody(r, maxBodyBytes)
		if err != nil {
			return nil, err
		}
		b = bytes.TrimSpace(b)
		if len(b) > 0 && !bytes.Equal(b, []byte("null")) {
			if b[0] != '{' {
				return nil, badRequestf("body must be a JSON object")
			}
			if err := json.Unmarshal(b, &args); err != nil {
				return nil, badRequestf("bad JSON body: %v", err)
			}
		}
	}
	_, err := s.apply(r, fsm.CmdDeviceEvent, &fsm.DeviceEvent{
		Device: ps.ByName("id"), Event: ps.ByName("event"), Args: args, Source: "api", From: r.RemoteAddr,
	})
	if err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

// stateChange is the forced, conditional state change: 409 when the device
// is not in {old} (unless its stored state is one the machine does not
// know).
func (s *Server) stateChange(r *http.Request, ps httprouter.Params) (any, error) {
	if err := discardBody(r); err != nil { // body ignored, within the limit
		return nil, err
	}
	for _, p := range []string{"old", "new"} {
		if err := checkStateName(ps.ByName(p)); err != nil {
			return nil, err
		}
	}
	_, err := s.apply(r, fsm.CmdDeviceStateChange, &fsm.DeviceStateChange{
		Device: ps.ByName("id"), From: ps.ByName("old"), To: ps.ByName("new"),
	})
	if err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

// postRegister is a board announcing itself: {"mac_address": "..."} must
// match the device's inventory entry (409 otherwise; 404 for a name not in
// the inventory, also logged on the node).
func (s *Server) postRegister(r *http.Request, ps httprouter.Params) (any, error) {
	var body map[string]json.RawMessage
	if err := decodeObject(r, &body, maxBodyBytes); err != nil {
		return nil, err
	}
	mac, err := stringField(body, "mac_address")
	if err != nil {
		return nil, err
	}
	res, err := s.apply(r, fsm.CmdDeviceRegister, &fsm.DeviceRegister{Device: ps.ByName("id"), MAC: mac, Address: r.RemoteAddr})
	if err != nil {
		// A board the inventory does not know, or with another MAC
		// address, is worth an operator's look.
		s.logger.Warn("board registration refused", "device", ps.ByName("id"), "mac", mac, "remote_addr", r.RemoteAddr, "error", err)
		return nil, err
	}
	var out fsm.EventResult
	if err := res.Decode(&out); err != nil {
		return nil, err
	}
	return api.StateReply{State: out.State}, nil
}

// getLifeguardStates lists the device state table.
func (s *Server) getLifeguardStates(*http.Request, httprouter.Params) (any, error) {
	return map[string]any{"states": lifeguard.States()}, nil
}

// maxStateNameLen is the longest state name a forced change takes.
const maxStateNameLen = 64

// checkStateName refuses a state name that no state machine could have:
// empty, longer than maxStateNameLen, or with characters other than
// letters, digits, '_' and '-' (a path, NUL, markup, bytes that are not
// UTF-8). A well-formed name the table does not know is taken, as in the
// original.
func checkStateName(name string) error {
	if name == "" || len(name) > maxStateNameLen {
		return badRequestf("state name %q must be 1-%d characters", name, maxStateNameLen)
	}
	for _, c := range []byte(name) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return badRequestf("state name %q may hold only letters, digits, '_' and '-'", name)
		}
	}
	return nil
}
