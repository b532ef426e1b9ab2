package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/julienschmidt/httprouter"

	"github.com/mozpool/mozpool/api"
)

// Reads never go back in time (docs/design.md#reads-never-go-back-in-time):
// a node that has not caught up with the cluster since it started refuses
// reads and the writes it validates against its local state (503), unless
// a read asks for ?stale; and a request that carries api.HeaderMinIndex is
// answered only once the node has applied that index.

var (
	// errNotServing: the node has not caught up since it started.
	errNotServing = errors.New("node has not caught up with the cluster since it started")
	// errIndexNotReached: api.HeaderMinIndex was not applied in time.
	errIndexNotReached = errors.New("node has not applied the requested index")
)

// read is the check of routes that answer from the local state: they wait
// for api.HeaderMinIndex, and answer 503 until the node has caught up after
// its start, unless the query asks for ?stale.
func (s *Server) read(r *http.Request, _ httprouter.Params) error {
	if !r.URL.Query().Has(api.QueryStale) {
		if err := s.serving(); err != nil {
			return err
		}
	}
	return s.awaitMinIndex(r)
}

// validated is the check of writes that are validated against the local
// state before they are proposed (an unknown device or image would be a
// 404 from a stale state): like read, without the ?stale escape.
func (s *Server) validated(r *http.Request, _ httprouter.Params) error {
	if err := s.serving(); err != nil {
		return err
	}
	return s.awaitMinIndex(r)
}

// ordered is the check of writes the leader alone validates: they only
// honour api.HeaderMinIndex.
func (s *Server) ordered(r *http.Request, _ httprouter.Params) error {
	return s.awaitMinIndex(r)
}

// serving is nil once the node has caught up since its start.
func (s *Server) serving() error {
	if s.cluster.Serving() {
		return nil
	}
	reason := "catching up"
	if err := s.cluster.Health(); err != nil {
		reason = err.Error()
	}
	return fmt.Errorf("%w (%s); retry, ask another node, or add ?%s to read its state as it is",
		errNotServing, reason, api.QueryStale)
}

// minIndex parses api.HeaderMinIndex; ok is false when it is absent.
func minIndex(h http.Header) (n uint64, ok bool, err error) {
	vs := h.Values(api.HeaderMinIndex)
	switch len(vs) {
	case 0:
		return 0, false, nil
	case 1:
	default:
		return 0, false, badRequestf("%s given %d times", api.HeaderMinIndex, len(vs))
	}
	n, err = strconv.ParseUint(strings.TrimSpace(vs[0]), 10, 64)
	if err != nil {
		return 0, false, badRequestf("%s must be a non-negative integer, not %q", api.HeaderMinIndex, vs[0])
	}
	return n, true, nil
}

// awaitMinIndex waits, up to minIndexWait or the request's end, until the
// node has applied the index the request names in api.HeaderMinIndex.
func (s *Server) awaitMinIndex(r *http.Request) error {
	want, ok, err := minIndex(r.Header)
	if err != nil || !ok {
		return err
	}
	if s.cluster.AppliedIndex() >= want {
		return nil
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.minIndexWait)
	defer cancel()
	if err := s.cluster.WaitApplied(ctx, want); err != nil {
		if r.Context().Err() != nil {
			return r.Context().Err()
		}
		return fmt.Errorf("%w: %s %d, applied %d after %s; retry, or ask another node",
			errIndexNotReached, api.HeaderMinIndex, want, s.cluster.AppliedIndex(), s.minIndexWait)
	}
	return nil
}
