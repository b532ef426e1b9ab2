package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/raft"

	"github.com/mozpool/mozpool/api"
	"github.com/mozpool/mozpool/fsm"
	"github.com/mozpool/mozpool/internal/tlsutil"
)

// Internal endpoints, served by Handler and called only between nodes.
const (
	pathApply   = "/_cluster/apply"
	pathJoin    = "/_cluster/join"
	pathRemove  = "/_cluster/remove"
	pathRestore = "/_cluster/restore"
	pathIndex   = "/_cluster/index"
)

// maxForwardBody caps internal request bodies (an inventory sync of 10,000
// devices is a few MB).
const maxForwardBody = 64 << 20

// errRetry marks a failure that the hold loop retries: no leader yet, the
// leader changed under us, or the leader could not be reached.
var errRetry = errors.New("retry")

// Apply stamps the command's time if unset, gives it an idempotency key if it
// has none (so that a retry after a lost leadership cannot apply it twice),
// and proposes it: on the leader directly, on a follower by forwarding to the
// leader. It returns the FSM's result once this node's own state reflects
// the command, so a caller that reads its local state next sees its write.
// The error is non-nil only when the cluster could not commit the command
// (ErrNoLeader after the hold window, ErrShutdown, or ctx's error).
func (n *Node) Apply(ctx context.Context, t fsm.CommandType, cmd fsm.Command) (fsm.Result, error) {
	res, index, err := n.propose(ctx, t, cmd)
	if err != nil {
		return fsm.Result{}, err
	}
	if index > 0 {
		// Forwarded: wait until this node has applied the entry too.
		wctx, cancel := context.WithTimeout(ctx, n.cfg.ApplyTimeout)
		defer cancel()
		if err := n.cfg.FSM.WaitApplied(wctx, index); err != nil {
			n.logger.Warn("forwarded write committed but not yet applied here", "index", index, "error", err)
		}
	}
	return res, nil
}

// Propose is Apply without the wait for this node's own state: on a
// follower it returns as soon as the leader has committed and applied the
// command, which saves the follower's wait for the next append that tells
// it so (up to twice CommitTimeout). The index of a forwarded command is
// kept per command type (ForwardedIndex), so that whoever reads this
// node's state after such a write can wait for it first: the HTTP API does
// (read-your-writes on the node a client writes through).
func (n *Node) Propose(ctx context.Context, t fsm.CommandType, cmd fsm.Command) (fsm.Result, error) {
	res, index, err := n.propose(ctx, t, cmd)
	if err != nil {
		return fsm.Result{}, err
	}
	if index > 0 {
		slot := &n.forwarded[t&^fsm.IgnoreUnknown]
		for cur := slot.Load(); cur < index && !slot.CompareAndSwap(cur, index); cur = slot.Load() {
		}
	}
	return res, nil
}

// ForwardedIndex is the highest log index at which a command of one of the
// given types (of any type when none is given) that this node forwarded
// to the leader with Propose was committed. This node's state reflects
// that write once its applied index reaches it.
func (n *Node) ForwardedIndex(types ...fsm.CommandType) uint64 {
	var m uint64
	if len(types) == 0 {
		for i := range n.forwarded {
			m = max(m, n.forwarded[i].Load())
		}
		return m
	}
	for _, t := range types {
		m = max(m, n.forwarded[t&^fsm.IgnoreUnknown].Load())
	}
	return m
}

// propose commits cmd through the leader. index is the entry's log index
// when the command was forwarded (0 when this node leads: the leader's
// apply future resolves only once its own FSM has applied the entry).
func (n *Node) propose(ctx context.Context, t fsm.CommandType, cmd fsm.Command) (fsm.Result, uint64, error) {
	h := cmd.Head()
	// A time this node stamps is stamped again at every attempt: a write
	// held through an election would otherwise commit with the time it
	// arrived, behind commands stamped after it, and its log lines and
	// deadlines would read from the past.
	stamp := h.At.IsZero()
	if stamp {
		h.At = time.Now().UTC()
	}
	if h.IdempotencyKey == "" {
		h.IdempotencyKey = fsm.AutoKeyPrefix + uuid.NewString()
	}
	b, err := fsm.Encode(t, cmd)
	if err != nil {
		return fsm.Result{}, 0, err
	}
	attempts := 0
	body := func() []byte {
		if attempts++; attempts > 1 && stamp {
			h.At = time.Now().UTC()
			if nb, err := fsm.Encode(t, cmd); err == nil { // it encoded once: it encodes again
				b = nb
			}
		}
		return b
	}
	var res applied
	err = n.onLeader(ctx, pathApply, body, func() error {
		r, err := n.applyLocal(b)
		res = applied{Result: r}
		return err
	}, &res)
	if err != nil {
		return fsm.Result{}, 0, err
	}
	return res.Result, res.Index, nil
}

// applied is the leader's answer to a forwarded command: the FSM's result
// and the log index it was applied at.
type applied struct {
	Result fsm.Result `json:"result"`
	Index  uint64     `json:"index"`
}

// applyLocal proposes an encoded command on this node, which must lead.
func (n *Node) applyLocal(b []byte) (fsm.Result, error) {
	res, _, err := n.applyLocalIndex(b)
	return res, err
}

func (n *Node) applyLocalIndex(b []byte) (fsm.Result, uint64, error) {
	f := n.raft.Apply(b, n.cfg.ApplyTimeout)
	if err := f.Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) ||
			errors.Is(err, raft.ErrLeadershipTransferInProgress) || errors.Is(err, raft.ErrEnqueueTimeout) {
			return fsm.Result{}, 0, fmt.Errorf("%w: %v", errRetry, err)
		}
		if errors.Is(err, raft.ErrRaftShutdown) {
			return fsm.Result{}, 0, ErrShutdown
		}
		return fsm.Result{}, 0, err
	}
	res, ok := f.Response().(fsm.Result)
	if !ok {
		return fsm.Result{}, 0, fmt.Errorf("cluster: unexpected fsm response %T", f.Response())
	}
	return res, f.Index(), nil
}

// onLeader runs local when this node leads, and otherwise POSTs body to the
// leader's internal endpoint path and decodes its answer into out. While no
// leader is known, or the leader changes under it, it retries with backoff
// for up to ForwardHold, then returns ErrNoLeader.
func (n *Node) onLeader(ctx context.Context, path string, body func() []byte, local func() error, out any) error {
	deadline := time.Now().Add(n.cfg.ForwardHold)
	wait := 25 * time.Millisecond
	var last error
	for {
		var err error
		tried := ""
		// Taken before the attempt, so that a change of leader during it
		// ends the pause after it at once.
		changed := n.leaderChanged()
		if n.raft.State() == raft.Leader {
			body() // a new attempt: restamped when the caller set no time
			err = local()
			tried = n.id
		} else if l := n.Leader(); l != nil && l.HTTPAddr != "" && l.ID != n.id {
			err = n.forward(ctx, l, path, body(), out)
			tried = l.ID
		} else {
			err = fmt.Errorf("%w: no leader known", errRetry)
		}
		if err == nil || !errors.Is(err, errRetry) {
			return err
		}
		last = err
		if _, id := n.raft.LeaderWithID(); tried != "" && id != "" && string(id) != tried {
			// Leadership moved while we tried (a hand-off, an election
			// that has just ended): go to the new leader at once.
			continue
		}
		if time.Now().Add(wait).After(deadline) {
			n.logger.Warn("no leader within the hold window", "path", path, "last_error", last)
			return ErrNoLeader
		}
		// Pause, unless the leader changes meanwhile: a leader handing
		// over (a graceful restart) refuses writes until the new one is
		// elected, and the writes should go there the moment it is.
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-n.shutdownCh:
			t.Stop()
			return ErrShutdown
		case <-changed:
		case <-t.C:
		}
		t.Stop()
		wait = min(wait*2, 100*time.Millisecond)
	}
}

// errLeaderChanged cancels a forwarded call whose leader this node no
// longer follows.
var errLeaderChanged = errors.New("leader changed")

// forward sends one internal call to the leader. The call is given up (and
// retried by onLeader) as soon as this node's Raft reports another leader or
// none: a leader that hangs (a paused process, a frozen VM) accepts the
// connection and never answers, and Raft notices that within a heartbeat
// timeout or two, long before ApplyTimeout. The retry carries the same
// body, hence the same idempotency key, so a command the old leader did
// commit is not applied twice.
func (n *Node) forward(ctx context.Context, leader *Identity, path string, body []byte, out any) error {
	parent := ctx
	ctx, abandon := context.WithCancelCause(ctx)
	defer abandon(nil)
	ctx, cancel := context.WithTimeout(ctx, n.cfg.ApplyTimeout+time.Second)
	defer cancel()
	go n.abandonOnLeaderChange(ctx, leader.ID, abandon)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(leader.HTTPAddr, "/")+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set(api.HeaderToken, n.cfg.Token)
	// A node that is not the leader answers a forwarded call with 421
	// instead of forwarding it again.
	req.Header.Set(api.HeaderForwarded, n.id)
	failed := func(err error) error {
		if parent.Err() != nil {
			return parent.Err()
		}
		if errors.Is(context.Cause(ctx), errLeaderChanged) {
			n.logger.Debug("gave up a forwarded call: the leader changed", "path", path, "leader_id", leader.ID)
			return fmt.Errorf("%w: forward to %s: %v", errRetry, leader.ID, errLeaderChanged)
		}
		return fmt.Errorf("%w: forward to %s: %v", errRetry, leader.ID, err)
	}
	resp, err := n.client.Do(req)
	if err != nil {
		return failed(err)
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(io.LimitReader(resp.Body, maxForwardBody))
	if err != nil {
		return failed(err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
		if out == nil {
			return nil
		}
		return json.Unmarshal(rb, out)
	case http.StatusMisdirectedRequest, http.StatusServiceUnavailable:
		return fmt.Errorf("%w: %s answered %d", errRetry, leader.ID, resp.StatusCode)
	case http.StatusForbidden:
		return ErrUnauthorized
	}
	var e api.Error
	_ = json.Unmarshal(rb, &e)
	switch e.Code {
	case "unknown_node":
		return fmt.Errorf("%w: %s", ErrUnknownNode, e.Error)
	case "bad_join":
		return fmt.Errorf("%w: %s", ErrBadJoin, e.Error)
	case "bad_request":
		return fmt.Errorf("%w: %s", ErrBadBackup, e.Error)
	case "transfer_timeout":
		return fmt.Errorf("%w: %s", ErrTransferTimeout, e.Error)
	}
	return fmt.Errorf("cluster: leader %s answered %d: %s", leader.ID, resp.StatusCode, e.Error)
}

// abandonOnLeaderChange cancels a call to leaderID (through abandon) when
// this node's Raft no longer reports that leader; it returns when ctx ends.
func (n *Node) abandonOnLeaderChange(ctx context.Context, leaderID string, abandon context.CancelCauseFunc) {
	for {
		changed := n.leaderChanged() // before the check, so no change is missed
		if _, id := n.raft.LeaderWithID(); string(id) != leaderID {
			abandon(errLeaderChanged)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
	}
}

// Authorized reports whether r carries the cluster token (always true when
// the cluster runs without one; see CheckToken) and, when the cluster runs
// with TLS, came over a connection whose client presented a node
// certificate of the cluster's CA.
func (n *Node) Authorized(r *http.Request) bool {
	if n.cfg.TLS != nil && (r.TLS == nil || tlsutil.VerifyNode(*r.TLS) != nil) {
		return false
	}
	return CheckToken(r.Header, n.cfg.Token) == nil
}

// Handler serves the internal endpoints other nodes call: apply, join and
// remove, each authenticated by the cluster token and answered only by the
// leader (421 otherwise, so the caller looks for the leader again).
func (n *Node) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+pathApply, n.internal(func(b []byte) (any, error) {
		// A command the FSM cannot apply would crash every node (at
		// every replay too): refuse it before it reaches the log.
		if err := fsm.CheckCommand(b); err != nil {
			return nil, fmt.Errorf("%w: %v", errBadRequest, err)
		}
		res, index, err := n.applyLocalIndex(b)
		return applied{Result: res, Index: index}, err
	}))
	mux.HandleFunc("POST "+pathJoin, n.internal(func(b []byte) (any, error) {
		var id Identity
		if err := json.Unmarshal(b, &id); err != nil {
			return nil, fmt.Errorf("%w: %v", errBadRequest, err)
		}
		return n.joinLocal(id)
	}))
	mux.HandleFunc("POST "+pathRemove, n.internal(func(b []byte) (any, error) {
		var req struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(b, &req); err != nil {
			return nil, fmt.Errorf("%w: %v", errBadRequest, err)
		}
		return struct{}{}, n.removeLocal(req.ID)
	}))
	mux.HandleFunc("POST "+pathRestore, n.internal(func(b []byte) (any, error) {
		return struct{}{}, n.restoreLocal(b)
	}))
	mux.HandleFunc("POST "+pathTransfer, n.internal(n.transferHandler))
	mux.HandleFunc("POST "+pathIndex, n.internal(func([]byte) (any, error) {
		return leaderIndex{CommitIndex: n.raft.CommitIndex()}, nil
	}))
	// Anything else gets a JSON error too, not the mux's plain text.
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		code, msg := http.StatusNotFound, "not found"
		switch r.URL.Path {
		case pathApply, pathJoin, pathRemove, pathRestore, pathIndex, pathTransfer:
			code, msg = http.StatusMethodNotAllowed, "method not allowed"
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(api.Error{Error: msg})
	})
	return mux
}

var errBadRequest = errors.New("bad request")

// leaderIndex is the leader's answer to pathIndex.
type leaderIndex struct {
	CommitIndex uint64 `json:"commit_index"`
}

func (n *Node) internal(fn func([]byte) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		writeJSON := func(code int, v any) {
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			w.WriteHeader(code)
			json.NewEncoder(w).Encode(v)
		}
		fail := func(code int, codeName string, err error) {
			writeJSON(code, api.Error{Error: err.Error(), Code: codeName})
		}
		if !n.Authorized(r) {
			fail(http.StatusForbidden, "unauthorized", ErrUnauthorized)
			return
		}
		// The body first, so an oversized one is 413 on every node, the
		// leader or not.
		b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxForwardBody))
		if err != nil {
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				fail(http.StatusRequestEntityTooLarge, "too_large", err)
				return
			}
			fail(http.StatusBadRequest, "bad_request", err)
			return
		}
		if n.raft.State() != raft.Leader {
			fail(http.StatusMisdirectedRequest, "not_leader", ErrNotLeader)
			return
		}
		v, err := fn(b)
		switch {
		case err == nil:
			writeJSON(http.StatusOK, v)
		case errors.Is(err, errRetry):
			fail(http.StatusMisdirectedRequest, "not_leader", err)
		case errors.Is(err, ErrUnknownNode):
			fail(http.StatusNotFound, "unknown_node", err)
		case errors.Is(err, ErrBadJoin):
			fail(http.StatusBadRequest, "bad_join", err)
		case errors.Is(err, errBadRequest):
			fail(http.StatusBadRequest, "bad_request", err)
		case errors.Is(err, ErrShutdown):
			fail(http.StatusServiceUnavailable, "shutdown", err)
		case errors.Is(err, ErrTransferTimeout):
			// Not 503: a forwarding node would take that for "no leader" and hold.
			fail(http.StatusGatewayTimeout, "transfer_timeout", err)
		default:
			n.logger.Error("internal call failed", "path", r.URL.Path, "error", err)
			fail(http.StatusInternalServerError, "internal", err)
		}
	}
}

// constBody is an onLeader body that does not change between attempts.
func constBody(b []byte) func() []byte { return func() []byte { return b } }
