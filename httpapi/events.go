package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/mozpool/mozpool/api"
	"github.com/mozpool/mozpool/events"
)

// EventSource is where GET /api/events/ reads events (events.Hub).
type EventSource interface {
	Subscribe() *events.Subscription
	After(index uint64, seq uint32, limit int) ([]events.Event, error)
}

// SetEvents makes the server stream events from src. Call it before
// serving.
func (s *Server) SetEvents(src EventSource) { s.events = src }

const (
	// eventsPage is how many stored events a catch-up reads at a time.
	eventsPage = 1000
	// eventsKeepalive is how often an idle stream sends a comment, so
	// that proxies keep it open and a vanished client is noticed.
	eventsKeepalive = 15 * time.Second
)

// eventFilter keeps the events matching every given field (each a set of
// values; an empty set matches everything).
type eventFilter struct {
	kind, device, request, server, state []string
}

func (f eventFilter) match(e events.Event) bool {
	in := func(set []string, v string) bool { return len(set) == 0 || slices.Contains(set, v) }
	device, request := "", ""
	if e.Kind == events.KindDevice {
		device = e.Name
		if e.Request != 0 {
			request = strconv.FormatInt(e.Request, 10)
		}
	} else {
		device, request = e.Device, e.Name
	}
	return in(f.kind, e.Kind) && in(f.device, device) && in(f.request, request) &&
		in(f.server, e.ImagingServer) && in(f.state, e.State)
}

// parseEventQuery reads the filters (each a comma-separated list, or
// repeated) and the position to resume after: the Last-Event-ID header, or
// else the last_event_id parameter, or else since=INDEX (after every
// event of that index). resume is false when none is given: the stream
// then starts with the next event.
func parseEventQuery(r *http.Request) (f eventFilter, index uint64, seq uint32, resume bool, err error) {
	q := r.URL.Query()
	for k := range q {
		switch k {
		case "kind", "device", "request", "imaging_server", "state", "last_event_id", "since", "once":
		default:
			return f, 0, 0, false, badRequestf("unknown parameter %q (kind, device, request, imaging_server, state, last_event_id, since, once)", k)
		}
	}
	list := func(k string) []string {
		var out []string
		for _, v := range q[k] {
			for _, p := range strings.Split(v, ",") {
				if p = strings.TrimSpace(p); p != "" {
					out = append(out, p)
				}
			}
		}
		return out
	}
	f = eventFilter{kind: list("kind"), device: list("device"), request: list("request"), server: list("imaging_server"), state: list("state")}
	for _, k := range f.kind {
		if k != events.KindDevice && k != events.KindRequest {
			return f, 0, 0, false, badRequestf("kind must be device or request, not %q", k)
		}
	}
	id := r.Header.Get("Last-Event-ID")
	if id == "" {
		id = q.Get("last_event_id")
	}
	if id != "" {
		index, seq, err = parseEventID(id)
		return f, index, seq, err == nil, err
	}
	if since := q.Get("since"); since != "" {
		n, err := strconv.ParseUint(since, 10, 64)
		if err != nil {
			return f, 0, 0, false, badRequestf("since must be a log index, not %q", since)
		}
		return f, n, ^uint32(0), true, nil
	}
	return f, 0, 0, false, nil
}

// parseEventID reads an event id, "INDEX-SEQ"; a bare INDEX means after
// every event of that index.
func parseEventID(id string) (uint64, uint32, error) {
	is, ss, hasSeq := strings.Cut(strings.TrimSpace(id), "-")
	index, err := strconv.ParseUint(is, 10, 64)
	if err != nil {
		return 0, 0, badRequestf("event id %q is not INDEX-SEQ", id)
	}
	if !hasSeq {
		return index, ^uint32(0), nil
	}
	seq, err := strconv.ParseUint(ss, 10, 32)
	if err != nil {
		return 0, 0, badRequestf("event id %q is not INDEX-SEQ", id)
	}
	return index, uint32(seq), nil
}

// EventID is an event's id in the stream.
func EventID(e events.Event) string {
	return strconv.FormatUint(e.Index, 10) + "-" + strconv.FormatUint(uint64(e.Seq), 10)
}

// getEvents streams device and request state changes as Server-Sent
// Events: stored events after the resume position first, then live ones.
func (s *Server) getEvents(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	if s.events == nil {
		s.writeError(w, r, errNotFound)
		return
	}
	f, index, seq, resume, err := parseEventQuery(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	// ?once: the stored events only (from the oldest kept unless a
	// position is given), then the stream ends.
	_, once := r.URL.Query()["once"]
	if once && !resume {
		index, seq, resume = 0, 0, true
	}
	sub := s.events.Subscribe()
	defer sub.Close()
	var backlog []events.Event
	if resume {
		// The first page before answering, so that a store failure is
		// still a proper error.
		if backlog, err = s.events.After(index, seq, eventsPage); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	h.Set(api.HeaderIndex, strconv.FormatUint(s.answerIndex(), 10))
	w.WriteHeader(http.StatusOK)
	if _, err := fmt.Fprint(w, "retry: 1000\n\n"); err != nil {
		return
	}
	send := func(e events.Event) error {
		index, seq = e.Index, e.Seq
		if !f.match(e) {
			return nil
		}
		b, _ := json.Marshal(e)
		_, err := fmt.Fprintf(w, "id: %s\nevent: %s\ndata: %s\n\n", EventID(e), e.Kind, b)
		return err
	}
	for resume {
		for _, e := range backlog {
			if err := send(e); err != nil {
				return
			}
		}
		if len(backlog) < eventsPage {
			break
		}
		if backlog, err = s.events.After(index, seq, eventsPage); err != nil {
			return
		}
	}
	if rc.Flush() != nil || once {
		return
	}
	keepalive := time.NewTicker(eventsKeepalive)
	defer keepalive.Stop()
	for {
		select {
		case e, ok := <-sub.C():
			if !ok {
				return // fell behind or the node stops: the client resumes
			}
			if resume && !e.After(index, seq) {
				continue // already sent from the store
			}
			resume = true
			if err := send(e); err != nil {
				return
			}
			// Send what else is queued before flushing.
			for more := true; more; {
				select {
				case e, ok := <-sub.C():
					if !ok {
						rc.Flush()
						return
					}
					if e.After(index, seq) {
						if err := send(e); err != nil {
							return
						}
					}
				default:
					more = false
				}
			}
			if rc.Flush() != nil {
				return
			}
		case <-keepalive.C:
			if _, err := fmt.Fprint(w, ": keepalive\n\n"); err != nil || rc.Flush() != nil {
				return
			}
		case <-r.Context().Done():
			return
		}
	}
}
