package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/mozpool/mozpool/api"
	"github.com/mozpool/mozpool/fsm"
	"github.com/mozpool/mozpool/logstore"
)

// maxLongPoll bounds ?wait= of a request's status.
const maxLongPoll = 5 * time.Minute

// longPollStop is closed when the node shuts down, so that blocking reads
// answer at once instead of holding the server's shutdown.
type longPollStop struct {
	once sync.Once
	mu   sync.Mutex
	ch   chan struct{}
}

func (l *longPollStop) done() chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ch == nil {
		l.ch = make(chan struct{})
	}
	return l.ch
}

// EndLongPolls makes every blocking status read answer now, and later
// ones not block. Register it with http.Server.RegisterOnShutdown.
func (s *Server) EndLongPolls() {
	s.longPolls.once.Do(func() { close(s.longPolls.done()) })
}

// queueFields are the optional queue keys of a request's creation.
type queueFields struct {
	priority      *int
	group         string
	hardwareType  string
	hardwareModel string
	tags          map[string]string
	maxWait       time.Duration
	noWait        bool
}

func (q *queueFields) apply(c *fsm.RequestCreate) {
	c.Priority, c.Group, c.HardwareType, c.HardwareModel = q.priority, q.group, q.hardwareType, q.hardwareModel
	c.Tags, c.MaxWait, c.NoWait = q.tags, q.maxWait, q.noWait
}

func isNull(raw json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(raw), []byte("null")) }

// parseQueueFields reads priority, group, hardware_type, hardware_model,
// tags, max_wait and wait from a creation body (all optional; null is
// absent). dur is the request's duration, which max_wait may not exceed.
// MaxUserPriority is the highest priority anonymous callers, readers and
// users may give a request; operators and admins may go up to
// fsm.MaxPriority (a release or an incident outranks everyone's CI).
const MaxUserPriority = 10

func parseQueueFields(body map[string]json.RawMessage, dur time.Duration) (queueFields, error) {
	var q queueFields
	if raw, ok := body["priority"]; ok && !isNull(raw) {
		var p int
		if err := json.Unmarshal(raw, &p); err != nil || p < fsm.MinPriority || p > fsm.MaxPriority {
			return q, badRequestf("priority must be an integer from %d to %d", fsm.MinPriority, fsm.MaxPriority)
		}
		q.priority = &p
	}
	str := func(key string, limit int, dst *string) error {
		raw, ok := body[key]
		if !ok || isNull(raw) {
			return nil
		}
		if err := json.Unmarshal(raw, dst); err != nil || len(*dst) > limit {
			return badRequestf("%s must be a string of at most %d characters", key, limit)
		}
		return nil
	}
	for _, f := range []struct {
		key   string
		limit int
		dst   *string
	}{{"group", 256, &q.group}, {"hardware_type", fsm.MaxTagLen, &q.hardwareType}, {"hardware_model", fsm.MaxTagLen, &q.hardwareModel}} {
		if err := str(f.key, f.limit, f.dst); err != nil {
			return q, err
		}
	}
	if raw, ok := body["tags"]; ok && !isNull(raw) {
		if err := json.Unmarshal(raw, &q.tags); err != nil {
			return q, badRequestf("tags must be an object of strings")
		}
		if err := fsm.ValidateTags(q.tags); err != nil {
			return q, badRequestf("%s", trimInvalid(err))
		}
	}
	if raw, ok := body["max_wait"]; ok && !isNull(raw) {
		d, err := parseDuration(raw)
		if err != nil {
			return q, badRequestf("max_wait must be a number of seconds")
		}
		if d <= 0 || d > dur {
			return q, badRequestf("max_wait must be between 1 second and the request's duration")
		}
		q.maxWait = d
	}
	if raw, ok := body["wait"]; ok && !isNull(raw) {
		var w bool
		if err := json.Unmarshal(raw, &w); err != nil {
			return q, badRequestf("wait must be true or false")
		}
		q.noWait = !w
	}
	return q, nil
}

// trimInvalid drops the "invalid: " prefix of an fsm.ErrInvalid message.
func trimInvalid(err error) string {
	msg := err.Error()
	if p := fsm.ErrInvalid.Error() + ": "; len(msg) > len(p) && msg[:len(p)] == p {
		return msg[len(p):]
	}
	return msg
}

// queueInfo is what a request's details and status add to the original's
// keys.
func (s *Server) queueInfo(r *fsm.Request) api.QueueInfo {
	info := api.QueueInfo{Group: r.Group, HardwareType: r.HardwareType, HardwareModel: r.HardwareModel,
		Tags: r.Tags, MaxWait: int64(r.MaxWait / time.Second), Reason: r.Reason}
	if r.Priority != fsm.DefaultPriority {
		p := r.Priority
		info.Priority = &p
	}
	if r.QueueSeq != 0 {
		if it, ok := s.fsm.QueueItem(s.now().UTC(), r.ID); ok {
			info.QueuePosition, info.QueueLength = it.Position, it.Competitors
			if !it.ETA.IsZero() {
				info.ETA = api.FormatTime(it.ETA)
			}
		}
	}
	return info
}

func (s *Server) getRequestDetails(_ *http.Request, ps httprouter.Params) (any, error) {
	req, err := s.request(ps)
	if err != nil {
		return nil, err
	}
	out := api.RequestDetails{Request: s.newRequest(&req), QueueInfo: s.queueInfo(&req)}
	for _, c := range req.Claims {
		out.Claims = append(out.Claims, api.Claim{Device: c.Device, From: c.From, To: c.To})
	}
	return out, nil
}

// longPoll reads ?wait= (a Go duration or seconds, at most maxLongPoll)
// and ?index=; ok is false when the call should not block.
func longPoll(r *http.Request) (wait time.Duration, index uint64, ok bool, err error) {
	q := r.URL.Query()
	if !q.Has("wait") {
		return 0, 0, false, nil
	}
	w := q.Get("wait")
	if wait, err = time.ParseDuration(w); err != nil {
		n, err2 := strconv.ParseFloat(w, 64)
		if err2 != nil {
			return 0, 0, false, badRequestf("wait must be a duration such as 30s")
		}
		wait = time.Duration(n * float64(time.Second))
	}
	if wait < 0 || wait > maxLongPoll {
		return 0, 0, false, badRequestf("wait must be between 0 and %s", maxLongPoll)
	}
	if q.Has("index") {
		if index, err = strconv.ParseUint(q.Get("index"), 10, 64); err != nil {
			return 0, 0, false, badRequestf("index must be a non-negative integer")
		}
	}
	return wait, index, wait > 0, nil
}

// getRequestStatus answers the state and newest log lines, and the queue
// information. With ?wait=D&index=N it blocks (at most D) until the
// request's record changes after log index N, or its queue position moves
// from where it was when the call started — a blocking query; the
// answer's X-Mozpool-Index is what to pass next.
func (s *Server) getRequestStatus(r *http.Request, ps httprouter.Params) (any, error) {
	wait, since, block, err := longPoll(r)
	if err != nil {
		return nil, err
	}
	id, err := requestID(ps)
	if err != nil {
		return nil, err
	}
	var timeout <-chan time.Time
	if block {
		t := time.NewTimer(wait)
		defer t.Stop()
		timeout = t.C
	}
	var start *api.QueueInfo
	for {
		changed := s.fsm.Changed()
		req, err := s.request(ps)
		if err != nil {
			return nil, err
		}
		info := s.queueInfo(&req)
		if start == nil {
			start = &info
		}
		moved := info.QueuePosition != start.QueuePosition
		if !block || req.Index > since || moved {
			log, err := s.requestLog(id, logstore.Query{Limit: statusLogLines})
			if err != nil {
				return nil, err
			}
			return api.RequestStatus{Log: log, State: req.State, QueueInfo: info}, nil
		}
		select {
		case <-changed:
		case <-timeout:
			block = false
		case <-s.longPolls.done():
			block = false
		case <-r.Context().Done():
			return nil, r.Context().Err()
		}
	}
}

// getQueue answers the waiting requests, in service order within each
// competition, filtered by ?group=, ?assignee=, ?device= (the requested
// device), ?environment=, ?image=, ?hardware_type= (exact matches).
func (s *Server) getQueue(r *http.Request, _ httprouter.Params) (any, error) {
	q := r.URL.Query()
	filters := map[string]func(*fsm.Request) string{
		"group":         (*fsm.Request).FairGroup,
		"assignee":      func(x *fsm.Request) string { return x.Assignee },
		"device":        func(x *fsm.Request) string { return x.RequestedDevice },
		"environment":   func(x *fsm.Request) string { return x.Environment },
		"image":         func(x *fsm.Request) string { return x.Image },
		"hardware_type": func(x *fsm.Request) string { return x.HardwareType },
	}
	for k := range q {
		if _, ok := filters[k]; !ok && k != "stale" {
			return nil, badRequestf("unknown filter %q (group, assignee, device, environment, image, hardware_type)", k)
		}
	}
	v := s.fsm.QueueView(s.now().UTC())
	out := api.QueueReply{Queue: []api.QueueEntry{}, Index: v.Index}
	s.fsm.Read(func(st *fsm.State) {
		if w := st.Queue.GroupWeights(); len(w) > 0 {
			out.Weights = w
		}
	items:
		for _, it := range v.Items {
			req, ok := st.Requests[it.ID]
			if !ok || req.QueueSeq == 0 {
				continue // served since the view was computed
			}
			for k, get := range filters {
				if q.Has(k) && get(req) != q.Get(k) {
					continue items
				}
			}
			e := api.QueueEntry{ID: req.ID, Assignee: req.Assignee, Group: req.FairGroup(), Priority: req.Priority,
				RequestedDevice: req.RequestedDevice, Environment: req.Environment, Image: req.Image,
				HardwareType: req.HardwareType, HardwareModel: req.HardwareModel, Tags: req.Tags,
				QueuedAt: api.FormatTime(req.QueuedAt), Aged: it.Aged, QueuePosition: it.Position, QueueLength: it.Competitors}
			if !req.StateDeadline.IsZero() {
				e.WaitUntil = api.FormatTime(req.StateDeadline)
			}
			if !it.ETA.IsZero() {
				e.ETA = api.FormatTime(it.ETA)
			}
			out.Queue = append(out.Queue, e)
		}
	})
	return out, nil
}

// postQueueWeight sets a fair-share group's weight (token):
// {"group": G, "weight": W}, W from 0 (back to 1) to 100 → 204.
func (s *Server) postQueueWeight(r *http.Request, _ httprouter.Params) (any, error) {
	var body struct {
		Group  *string `json:"group"`
		Weight *int    `json:"weight"`
	}
	if err := decodeObject(r, &body, maxBodyBytes); err != nil {
		return nil, err
	}
	if body.Group == nil || *body.Group == "" || body.Weight == nil {
		return nil, badRequestf("group (a non-empty string) and weight (an integer) are required")
	}
	if *body.Weight < 0 || *body.Weight > fsm.MaxGroupWeight {
		return nil, badRequestf("weight must be between 0 (back to 1) and %d", fsm.MaxGroupWeight)
	}
	if _, err := s.apply(r, fsm.CmdQueueSetWeight, &fsm.QueueSetWeight{Header: fsm.Header{At: s.now().UTC()},
		Group: *body.Group, Weight: *body.Weight}); err != nil {
		return nil, err
	}
	return &reply{status: http.StatusNoContent, noBody: true}, nil
}
