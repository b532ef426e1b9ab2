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
	"github.com/mozpool/mozpool/fsm"
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
	if err := s.awaitMinIndex(r); err != nil {
		return err
	}
	return s.ownWrites(r.Context())
}

// validated is the check of writes that are validated against the local
// state before they are proposed (an unknown device or image would be a
// 404 from a stale state): like read, without the ?stale escape.
func (s *Server) validated(r *http.Request, _ httprouter.Params) error {
	if err := s.serving(); err != nil {
		return err
	}
	if err := s.awaitMinIndex(r); err != nil {
		return err
	}
	return s.ownWrites(r.Context())
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

// Writes are proposed without waiting for this node's own state to reflect
// them when they were forwarded to the leader (Cluster.Propose): the
// answer goes out as soon as the leader has committed and applied the
// write. Whatever reads this node's state afterwards waits for the writes
// this node forwarded first (ownWrites), so a client still reads its own
// writes from the node it wrote through: reads and validated writes wait
// for every forwarded write; authentication waits for forwarded token and
// policy changes, and a device lookup that misses for forwarded inventory
// changes.
var (
	authCommands      = []fsm.CommandType{fsm.CmdTokenCreate, fsm.CmdTokenRevoke, fsm.CmdSetPolicy}
	inventoryCommands = []fsm.CommandType{fsm.CmdInventorySync, fsm.CmdDeviceRegister}
)

// ownWrites waits, up to minIndexWait or ctx's end, until this node has
// applied the writes of the given types (of every type when none is given)
// that it forwarded to the leader.
func (s *Server) ownWrites(ctx context.Context, types ...fsm.CommandType) error {
	want := s.cluster.ForwardedIndex(types...)
	if want == 0 || s.fsm.AppliedIndex() >= want {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, s.minIndexWait)
	defer cancel()
	if err := s.fsm.WaitApplied(wctx, want); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w: a write this node forwarded (index %d) is not applied here after %s (applied %d); retry, or ask another node",
			errIndexNotReached, want, s.minIndexWait, s.fsm.AppliedIndex())
	}
	return nil
}

// answerIndex is the index sent in api.HeaderIndex: what this node has
// applied, or the highest index of a write it forwarded if that is higher
// (the answer to such a write reflects it, although this node's own state
// may not yet).
func (s *Server) answerIndex() uint64 {
	return max(s.cluster.AppliedIndex(), s.cluster.ForwardedIndex())
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
