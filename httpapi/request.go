package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/julienschmidt/httprouter"

	"github.com/mozpool/mozpool/api"
	"github.com/mozpool/mozpool/fsm"
)

// Body size limits. Inventory sync gets more room: a 10,000-device
// inventory is a few MB of JSON.
const (
	maxBodyBytes          = 1 << 20
	maxInventoryBodyBytes = 32 << 20
)

// readBody reads at most limit bytes of the request body.
func readBody(r *http.Request, limit int64) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, errBodyTooLarge
		}
		return nil, badRequestf("read body: %v", err)
	}
	return b, nil
}

// discardBody reads and drops the body of a route that takes none, so that
// one over the limit is refused 413 like on every other route rather than
// left unread.
func discardBody(r *http.Request) error {
	_, err := io.Copy(io.Discard, http.MaxBytesReader(nil, r.Body, maxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errBodyTooLarge
		}
		return badRequestf("read body: %v", err)
	}
	return nil
}

// readJSONBody is readBody for a JSON body, which must be UTF-8: the
// decoder would silently turn other bytes into U+FFFD, and store a
// mangled string.
func readJSONBody(r *http.Request, limit int64) ([]byte, error) {
	b, err := readBody(r, limit)
	if err != nil {
		return nil, err
	}
	if !utf8.Valid(b) {
		return nil, badRequestf("body is not valid UTF-8")
	}
	return b, nil
}

// decodeObject reads a JSON object from the body into v, whatever the
// Content-Type (the original UI posts JSON as form data).
func decodeObject(r *http.Request, v any, limit int64) error {
	b, err := readJSONBody(r, limit)
	if err != nil {
		return err
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return badRequestf("body must be a JSON object")
	}
	if err := json.Unmarshal(b, v); err != nil {
		return badRequestf("bad JSON body: %v", err)
	}
	return nil
}

// stringField returns body[key], which must be present and a JSON string.
func stringField(body map[string]json.RawMessage, key string) (string, error) {
	raw, ok := body[key]
	if !ok {
		return "", badRequestf("missing %q", key)
	}
	var v string
	if bytes.Equal(bytes.TrimSpace(raw), []byte("null")) || json.Unmarshal(raw, &v) != nil {
		return "", badRequestf("%q must be a string", key)
	}
	return v, nil
}

// flag reports whether a flag query parameter is present: the original
// treats any value, even "0" or "", as set.
func flag(q url.Values, name string) bool { return q.Has(name) }

// intParam parses an optional integer query parameter; ok is false when it
// is absent.
func intParam(q url.Values, name string) (n int, ok bool, err error) {
	if !q.Has(name) {
		return 0, false, nil
	}
	n, err = strconv.Atoi(q.Get(name))
	if err != nil || n < 0 {
		return 0, false, badRequestf("%s must be a non-negative integer", name)
	}
	return n, true, nil
}

// knownDevice is a check that 404s a device name the FSM does not know,
// before the trailing-slash redirect, as the original's device wrapper did
// (503 while the node has not caught up since its start).
func (s *Server) knownDevice(r *http.Request, ps httprouter.Params) error {
	name := ps.ByName("id")
	var ok bool
	s.fsm.Read(func(st *fsm.State) { _, ok = st.Devices[name] })
	if !ok && s.ownWrites(r.Context(), inventoryCommands...) == nil {
		// An inventory change this node forwarded may not be applied
		// here yet: look again once it is.
		s.fsm.Read(func(st *fsm.State) { _, ok = st.Devices[name] })
	}
	if !ok {
		// A node that has not caught up since its start may not have
		// replayed the device yet: retry, not 404. A device it knows
		// passes (the leader checks it again), so boards' events reach
		// a node that is still catching up.
		if err := s.serving(); err != nil {
			return err
		}
		return unknownDevice(name)
	}
	return nil
}

// unknown reports that no entity of a kind has the name; sentinel is the
// fsm.ErrUnknown* error of the kind.
func unknown(sentinel error, name string) error { return fmt.Errorf("%w: %q", sentinel, name) }

func unknownDevice(name string) error { return unknown(fsm.ErrUnknownDevice, name) }

// listOnly is a check for "/prefix/:param/" routes that serve only the list
// (see routes.go): any other name is an unknown path.
func listOnly(param string) check {
	return func(_ *http.Request, ps httprouter.Params) error {
		if ps.ByName(param) != "list" {
			return errNotFound
		}
		return nil
	}
}

// apply proposes a command through the cluster, passing on the request's
// Idempotency-Key, and returns the FSM's result or its domain error.
func (s *Server) apply(r *http.Request, t fsm.CommandType, cmd fsm.Command) (fsm.Result, error) {
	key := r.Header.Get(api.HeaderIdempotencyKey)
	switch {
	case len(key) > api.MaxIdempotencyKeyLen:
		return fsm.Result{}, badRequestf("Idempotency-Key longer than %d bytes", api.MaxIdempotencyKeyLen)
	case strings.HasPrefix(key, fsm.AutoKeyPrefix):
		// Node-generated keys live in their own namespace with a
		// shorter TTL; a client must not be able to forge one.
		return fsm.Result{}, badRequestf("Idempotency-Key must not start with %q", fsm.AutoKeyPrefix)
	}
	cmd.Head().IdempotencyKey = key
	cmd.Head().Actor = callerOf(r).Actor()
	res, err := s.cluster.Propose(r.Context(), t, cmd)
	if err != nil {
		return fsm.Result{}, err
	}
	if err := res.Error(); err != nil {
		return fsm.Result{}, err
	}
	return res, nil
}
