package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/mozpool/mozpool/api"
	"github.com/mozpool/mozpool/fsm"
	"github.com/mozpool/mozpool/logstore"
	"github.com/mozpool/mozpool/requests"
)

func (s *Server) requestURL(id int64) string {
	return fmt.Sprintf("%s/api/request/%d/", strings.TrimRight(s.cluster.Self().HTTPAddr, "/"), id)
}

func (s *Server) newRequest(r *fsm.Request) api.Request {
	return api.Request{ID: r.ID, RequestedDevice: r.RequestedDevice, Assignee: r.Assignee,
		Expires: api.FormatTime(r.Expires), Environment: r.Environment, Image: r.Image,
		BootConfig: r.BootConfig, AssignedDevice: r.Device, URL: s.requestURL(r.ID), CallbackURL: r.CallbackURL}
}

// parseDuration accepts what the original's int() did: a JSON integer, a
// float (truncated) or a numeric string.
func parseDuration(raw json.RawMessage) (time.Duration, error) {
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return 0, badRequestf("duration must be an integer")
	}
	var secs float64
	switch x := v.(type) {
	case json.Number:
		f, err := x.Float64()
		if err != nil {
			return 0, badRequestf("duration must be an integer")
		}
		secs = math.Trunc(f)
	case string:
		n, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64)
		if err != nil {
			return 0, badRequestf("duration %q is not an integer", x)
		}
		secs = float64(n)
	default:
		return 0, badRequestf("duration must be an integer")
	}
	if secs < 0 || secs > fsm.MaxRequestDuration.Seconds() {
		return 0, badRequestf("duration must be between 0 and %d seconds", int64(fsm.MaxRequestDuration.Seconds()))
	}
	return time.Duration(secs) * time.Second, nil
}

// marshalPlain is json.Marshal without the escaping of &, < and >: a
// b2gbase URL with a query string stays as the client wrote it (as Python's
// json.dumps leaves it), for the board that fetches it verbatim.
func marshalPlain(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // v was decoded from JSON: it encodes
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// bootConfigString encodes the image's boot-config keys of the body as the
// original did: a JSON object, keys sorted, Python's ", " and ": ".
func bootConfigString(keys []string, body map[string]json.RawMessage) (string, error) {
	sorted := slices.Clone(keys)
	sort.Strings(sorted)
	var b strings.Builder
	b.WriteString("{")
	for i, k := range sorted {
		raw, ok := body[k]
		if !ok {
			return "", badRequestf("missing boot config key %q", k)
		}
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return "", badRequestf("bad value for %q", k)
		}
		kb, vb := marshalPlain(k), marshalPlain(v)
		if i > 0 {
			b.WriteString(", ")
		}
		b.Write(kb)
		b.WriteString(": ")
		b.Write(vb)
	}
	b.WriteString("}")
	return b.String(), nil
}

// postRequest creates a request for a named device or "any".
func (s *Server) postRequest(r *http.Request, ps httprouter.Params) (any, error) {
	var body map[string]json.RawMessage
	if err := decodeObject(r, &body, maxBodyBytes); err != nil {
		return nil, err
	}
	assignee, err := stringField(body, "assignee")
	if err != nil || assignee == "" {
		return nil, badRequestf("assignee is required (a string)")
	}
	rawDur, ok := body["duration"]
	if !ok {
		return nil, badRequestf("duration is required")
	}
	dur, err := parseDuration(rawDur)
	if err != nil {
		return nil, err
	}
	image, err := stringField(body, "image")
	if err != nil || image == "" {
		return nil, badRequestf("image is required (a string)")
	}
	env := "any"
	if _, ok := body["environment"]; ok {
		if env, err = stringField(body, "environment"); err != nil {
			return nil, err
		}
	}
	callbackURL, err := callbackURLField(body)
	if err != nil {
		return nil, err
	}
	dev := ps.ByName("id")
	var keys []string
	var imgOK, devOK bool
	s.fsm.Read(func(st *fsm.State) {
		if img, ok := st.Images[image]; ok {
			imgOK, keys = true, slices.Clone(img.BootConfigKeys)
		}
		_, devOK = st.Devices[dev]
	})
	if !imgOK {
		return nil, unknown(fsm.ErrUnknownImage, image)
	}
	if dev != "any" && !devOK {
		return nil, unknownDevice(dev)
	}
	bootConfig, err := bootConfigString(keys, body)
	if err != nil {
		return nil, err
	}
	qf, err := parseQueueFields(body, dur)
	if err != nil {
		return nil, err
	}
	if c := callerOf(r); qf.priority != nil && *qf.priority > MaxUserPriority && roleRank(c.Role) < roleRank(fsm.RoleOperator) {
		return nil, fmt.Errorf("%w: priority above %d needs an operator token (%s may ask for up to %d)",
			errForbidden, MaxUserPriority, c.Name, MaxUserPriority)
	}
	now := s.now().UTC()
	cmd := &fsm.RequestCreate{
		Header:          fsm.Header{At: now},
		RequestedDevice: dev, Assignee: assignee, Expires: now.Add(dur), Image: image,
		BootConfig: bootConfig, Environment: env, Server: s.cluster.Self().Name, CallbackURL: callbackURL,
		Owner: requestOwner(r),
	}
	qf.apply(cmd)
	res, err := s.apply(r, fsm.CmdRequestCreate, cmd)
	if err != nil {
		return nil, err
	}
	var req fsm.Request
	if err := res.Decode(&req); err != nil {
		return nil, err
	}
	out := api.RequestReply{Request: s.newRequest(&req)}
	if requests.State(req.State) == requests.StateClosed {
		return &reply{status: http.StatusConflict, body: out}, nil
	}
	return out, nil
}

// requestID parses the :id of a request route (400 if not an integer).
func requestID(ps httprouter.Params) (int64, error) {
	id, err := strconv.ParseInt(ps.ByName("id"), 10, 64)
	if err != nil {
		return 0, badRequestf("request id %q is not an integer", ps.ByName("id"))
	}
	return id, nil
}

func (s *Server) request(ps httprouter.Params) (fsm.Request, error) {
	id, err := requestID(ps)
	if err != nil {
		return fsm.Request{}, err
	}
	var r fsm.Request
	var ok bool
	s.fsm.Read(func(st *fsm.State) {
		if p, found := st.Requests[id]; found {
			r, ok = *p, true
		}
	})
	if !ok {
		return r, fmt.Errorf("%w: %d", fsm.ErrUnknownRequest, id)
	}
	return r, nil
}

func (s *Server) getRequestList(r *http.Request, _ httprouter.Params) (any, error) {
	withClosed := flag(r.URL.Query(), "include_closed")
	out := []api.RequestSummary{}
	s.fsm.Read(func(st *fsm.State) {
		for _, req := range st.Requests {
			if requests.State(req.State) == requests.StateClosed && !withClosed {
				continue
			}
			v := api.RequestSummary{ID: req.ID, ImagingServer: req.ImagingServer, Assignee: req.Assignee,
				BootConfig: req.BootConfig, State: req.State, Expires: api.FormatTime(req.Expires),
				RequestedDevice: req.RequestedDevice, Environment: req.Environment, AssignedDevice: req.Device}
			if d, ok := st.Devices[req.Device]; ok && req.Device != "" {
				v.DeviceState = d.State
			}
			out = append(out, v)
		}
	})
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return api.RequestList{Requests: out}, nil
}

func (s *Server) requestLog(id int64, q logstore.Query) ([]api.LogEntry, error) {
	es, err := s.logs.Query(fsm.LogRequest, strconv.FormatInt(id, 10), q)
	if err != nil {
		return nil, err
	}
	return newLogEntries(es), nil
}

// getRequestLog answers the whole log; an unknown id has an empty log, as
// the original.
func (s *Server) getRequestLog(_ *http.Request, ps httprouter.Params) (any, error) {
	id, err := requestID(ps)
	if err != nil {
		return nil, err
	}
	log, err := s.requestLog(id, logstore.Query{})
	if err != nil {
		return nil, err
	}
	return api.LogReply{Log: log}, nil
}

// renewRequest sets expires to now + duration, in any state → 204.
func (s *Server) renewRequest(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	s.handle(func(r *http.Request, ps httprouter.Params) (any, error) {
		// Writes do not look the request up here: a follower may not have
		// applied its creation yet. The leader's Apply answers an unknown id.
		if err := s.ordered(r, ps); err != nil {
			return nil, err
		}
		id, err := requestID(ps)
		if err != nil {
			return nil, err
		}
		var body map[string]json.RawMessage
		if err := decodeObject(r, &body, maxBodyBytes); err != nil {
			return nil, err
		}
		raw, ok := body["duration"]
		if !ok {
			return nil, badRequestf("duration is required")
		}
		dur, err := parseDuration(raw)
		if err != nil {
			return nil, err
		}
		now := s.now().UTC()
		_, err = s.apply(r, fsm.CmdRequestRenew, &fsm.RequestRenew{Header: fsm.Header{At: now}, ID: id, Expires: now.Add(dur),
			Caller: s.ownerCheck(r)})
		if err != nil {
			return nil, err
		}
		return &reply{status: http.StatusNoContent, noBody: true}, nil
	})(w, r, ps)
}

// returnRequest closes the request → 204 (also when it is already closed
// or failed: the event is then ignored).
func (s *Server) returnRequest(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	s.handle(func(r *http.Request, ps httprouter.Params) (any, error) {
		if err := s.ordered(r, ps); err != nil {
			return nil, err
		}
		id, err := requestID(ps) // not looked up here: see renewRequest
		if err != nil {
			return nil, err
		}
		if err := discardBody(r); err != nil { // body ignored, within the limit
			return nil, err
		}
		_, err = s.apply(r, fsm.CmdRequestEvent, &fsm.RequestEvent{ID: id, Event: string(requests.EventClose), Caller: s.ownerCheck(r)})
		if err != nil {
			return nil, err
		}
		return &reply{status: http.StatusNoContent, noBody: true}, nil
	})(w, r, ps)
}

// requestEvent delivers an event to a request (GET: no arguments) → {}.
func (s *Server) requestEvent(r *http.Request, ps httprouter.Params) (any, error) {
	id, err := requestID(ps) // not looked up here: see renewRequest
	if err != nil {
		return nil, err
	}
	var args fsm.RequestEventArgs
	if r.Method == http.MethodPost {
		b, err := readJSONBody(r, maxBodyBytes)
		if err != nil {
			return nil, err
		}
		if b = bytes.TrimSpace(b); len(b) > 0 && !bytes.Equal(b, []byte("null")) {
			if err := json.Unmarshal(b, &args); err != nil {
				return nil, badRequestf("bad JSON body: %v", err)
			}
		}
	}
	_, err = s.apply(r, fsm.CmdRequestEvent, &fsm.RequestEvent{ID: id, Event: ps.ByName("event"), Args: args})
	if err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

// requestOwner is the owner of a request the caller creates: its token's
// name, none for anonymous callers.
func requestOwner(r *http.Request) string {
	if c := callerOf(r); !c.Anonymous {
		return c.Name
	}
	return ""
}
