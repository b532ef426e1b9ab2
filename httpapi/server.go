package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"hash/fnv"
	"io"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/julienschmidt/httprouter"

	"github.com/mozpool/mozpool/api"
	"github.com/mozpool/mozpool/cluster"
	"github.com/mozpool/mozpool/fsm"
	"github.com/mozpool/mozpool/logstore"
)

// Cluster is what the API needs from the Raft node.
type Cluster interface {
	// Apply stamps the command's Header.At if zero, proposes it
	// (forwarding to the leader when this node is a follower, holding up
	// to ~7s through an election) and returns the FSM's Result. The error
	// is non-nil only for cluster failures (cluster.ErrNoLeader, ...).
	Apply(ctx context.Context, t fsm.CommandType, cmd fsm.Command) (fsm.Result, error)
	// Propose is Apply without the wait for this node's own state to
	// reflect a forwarded write; ForwardedIndex names, per command type,
	// the highest index such a write was committed at. The API proposes
	// with it and waits for ForwardedIndex wherever it reads its state.
	Propose(ctx context.Context, t fsm.CommandType, cmd fsm.Command) (fsm.Result, error)
	ForwardedIndex(types ...fsm.CommandType) uint64
	// Self is this node's identity.
	Self() cluster.Identity
	// Status is this node's view of the cluster.
	Status() cluster.Status
	// Health is nil when a leader is known and this node is caught up.
	Health() error
	// Serving reports whether this node has caught up with the cluster
	// since it started (it latches). Until then reads answer 503.
	Serving() bool
	// AppliedIndex is the index of the last log entry the local state
	// reflects; it is sent in api.HeaderIndex.
	AppliedIndex() uint64
	// WaitApplied blocks until AppliedIndex is at least index or ctx ends.
	WaitApplied(ctx context.Context, index uint64) error
	// Join adds a node to the cluster.
	Join(ctx context.Context, id cluster.Identity) (cluster.JoinResult, error)
	// Remove takes a node out of the cluster.
	Remove(ctx context.Context, id string) error
	// Backup snapshots this node's state; Restore replaces the cluster's
	// state with a backup (through the leader).
	Backup() (*raft.SnapshotMeta, io.ReadCloser, error)
	Restore(ctx context.Context, data []byte) error
	// Handler serves the internal endpoints under /_cluster/; the cluster
	// authenticates them itself.
	Handler() http.Handler
}

// LogReader answers log queries; results are oldest-first.
type LogReader interface {
	Query(kind, name string, q logstore.Query) ([]logstore.Entry, error)
}

// Server is the HTTP API of one node.
type Server struct {
	fsm     *fsm.FSM
	cluster Cluster
	logs    LogReader
	logger  hclog.Logger
	token   string
	version string
	hw      Hardware

	// minIndexWait bounds how long a request waits for api.HeaderMinIndex.
	minIndexWait time.Duration

	// proxyTransport carries requests proxied to a device's owner.
	proxyTransport http.RoundTripper

	// now is the clock; tests replace it.
	now    func() time.Time
	states stateCache

	handler   http.Handler
	routeList []Route // what routes registered, for Routes
	// routesSeen lists "METHOD path" of every registered route.
	routesSeen []string

	// events feeds GET /api/events/ (SetEvents; nil: 404).
	events EventSource

	// longPolls ends blocking status reads (see EndLongPolls).
	longPolls longPollStop
}

// New builds a Server from cfg.
func New(cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{
		fsm:     cfg.FSM,
		cluster: cfg.Cluster,
		logs:    cfg.Logs,
		logger:  cfg.Logger.Named(loggerName),
		token:   cfg.Token,
		version: cfg.Version,
		hw:      cfg.Hardware,

		minIndexWait: cfg.MinIndexWait,
		now:          time.Now,
		proxyTransport: &http.Transport{
			Proxy:                 nil,
			ResponseHeaderTimeout: 35 * time.Second,
			IdleConnTimeout:       90 * time.Second,
			MaxIdleConnsPerHost:   16,
			TLSClientConfig:       cfg.ClientTLS,
		},
	}
	if s.token == "" {
		s.logger.Warn("NO CLUSTER TOKEN CONFIGURED: authentication is off; anyone who can reach this node may do anything, from powering boards off to restoring a backup")
	}
	s.handler = s.logRequests(s.routes())
	return s, nil
}

// Handler returns the http.Handler serving every route.
func (s *Server) Handler() http.Handler { return s.handler }

// handlerFunc is the shape of every API handler: it returns the value to
// send as JSON (a *reply to choose the status or add headers) or an error,
// which statusFor turns into a status code.
type handlerFunc func(r *http.Request, ps httprouter.Params) (any, error)

// check runs before a handler (and before the trailing-slash redirect), for
// example to authenticate or to reject an unknown device.
type check func(r *http.Request, ps httprouter.Params) error

// reply is a handler result with a chosen status code or extra headers.
type reply struct {
	status int
	header http.Header
	// body is written as JSON unless noBody is set.
	body   any
	noBody bool
}

// handle adapts a handlerFunc to httprouter, writing its value or its error.
func (s *Server) handle(h handlerFunc) httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		v, err := h(r, ps)
		// Read after the handler: the answer reflects at most this index,
		// so a client that asks for it next never sees an older state.
		w.Header().Set(api.HeaderIndex, strconv.FormatUint(s.answerIndex(), 10))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		rep, ok := v.(*reply)
		if !ok {
			s.writeJSON(w, r, http.StatusOK, v)
			return
		}
		for k, vs := range rep.header {
			w.Header()[k] = vs
		}
		if rep.noBody {
			w.WriteHeader(rep.status)
			return
		}
		s.writeJSON(w, r, rep.status, rep.body)
	}
}

// writeJSON writes v with an explicit Content-Length. HTML characters are
// not escaped, so PXE configs and boot configs come back byte for byte.
func (s *Server) writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	if r.Method == http.MethodGet && status == http.StatusOK && w.Header().Get("Cache-Control") == "" {
		// Pollers (the UI refreshes the whole device list every few
		// seconds) revalidate and get 304 while nothing changed.
		h := fnv.New64a()
		h.Write(buf.Bytes())
		etag := `"` + strconv.FormatUint(h.Sum64(), 16) + `"`
		w.Header().Set("ETag", etag)
		w.Header().Set("Cache-Control", "no-cache")
		if match := r.Header.Get("If-None-Match"); match != "" && strings.Contains(match, etag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
	}
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// writeError answers {"error": message} with the status statusFor picks.
// Client errors are logged at debug, server errors at error.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status := statusFor(err)
	if status >= 500 && status != http.StatusServiceUnavailable {
		s.logger.Error("request failed", "method", r.Method, "path", r.URL.Path, "status", status, "error", err)
	} else {
		s.logger.Debug("request refused", "method", r.Method, "path", r.URL.Path, "status", status, "error", err)
	}
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="mozpool"`)
	}
	s.writeJSON(w, r, status, api.Error{Error: err.Error()})
}

// recoverPanic is the router's PanicHandler: it logs the panic with its
// stack and answers 500.
func (s *Server) recoverPanic(w http.ResponseWriter, r *http.Request, v any) {
	if v == http.ErrAbortHandler {
		// net/http's way of aborting a response on purpose.
		panic(v)
	}
	s.logger.Error("panic serving request", "method", r.Method, "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
	s.writeError(w, r, errInternal)
}

// redirectSlash answers a slash-less spelling of a JSON route with 303 to
// the path with a slash, query string kept (as the original did).
func redirectSlash(r *http.Request) (any, bool) {
	p := r.URL.EscapedPath()
	if strings.HasSuffix(p, "/") {
		return nil, false
	}
	loc := p + "/"
	if r.URL.RawQuery != "" {
		loc += "?" + r.URL.RawQuery
	}
	return &reply{status: http.StatusSeeOther, header: http.Header{"Location": {loc}}, noBody: true}, true
}

// statusRecorder remembers the status code written through it.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (w *statusRecorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusRecorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// logRequests is the one middleware every request goes through: it names
// the serving node and logs the request at debug once it is answered.
func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := s.now()
		w.Header().Set(api.HeaderServedBy, s.cluster.Self().ID)
		rec := &statusRecorder{ResponseWriter: w}
		ci := &callInfo{}
		r = r.WithContext(context.WithValue(r.Context(), callKey{}, ci))
		next.ServeHTTP(rec, r)
		who := anonymousCaller(r).Name
		if ci.c != nil {
			who = ci.c.Name
		}
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		// Every request is logged: writes and failures at info, successful
		// reads (the UI and monitors poll) at debug.
		log := s.logger.Info
		if (r.Method == http.MethodGet || r.Method == http.MethodHead) && rec.status < 400 {
			log = s.logger.Debug
		}
		log("request", "method", r.Method, "path", r.URL.Path, "query", r.URL.RawQuery, "status", rec.status,
			"duration", s.now().Sub(start), "remote_addr", r.RemoteAddr, "caller", who)
	})
}
