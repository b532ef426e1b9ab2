package faults

import (
	"context"
	"errors"
	"fmt"
	"math"
	mathrand "math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/mozpool/mozpool/api"
	"github.com/mozpool/mozpool/client"
)

type opKind int

const (
	opCreate opKind = iota
	opRenew
	opReturn
	opRead
)

func (k opKind) String() string { return [...]string{"create", "renew", "return", "read"}[k] }

type outcome int

const (
	outOK outcome = iota
	outFail
	outUnknown
)

func (o outcome) String() string { return [...]string{"ok", "fail", "unknown"}[o] }

// op is one operation of the history: invoked at start, answered at end.
type op struct {
	client int
	node   int // index of the node the client sent it to
	kind   opKind
	req    int64  // the request's id (0: a create not acknowledged)
	key    string // a create's idempotency key
	device string // the device a create asked for ("any" or a name)
	start  time.Time
	end    time.Time
	out    outcome
	state  string // a read's answer
	err    string
	status int // the HTTP status of an error answer (0: none)
	// minSent is the X-Mozpool-Min-Index the call carried, gotIndex the
	// X-Mozpool-Index of its answer (0: none).
	minSent, gotIndex uint64
	stale             string // why the read went back in time ("" if not)
	fields            api.Request
}

// history is the operations of one scenario.
type history struct {
	mu  sync.Mutex
	ops []op
}

func (h *history) add(o op) {
	h.mu.Lock()
	h.ops = append(h.ops, o)
	h.mu.Unlock()
}

func (h *history) all() []op {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]op(nil), h.ops...)
}

// classify: a definite 4xx answer failed, anything else that is not a
// success may or may not have taken effect.
func classify(err error) outcome {
	if err == nil {
		return outOK
	}
	var ce *client.Error
	if errors.As(err, &ce) && ce.Status >= 400 && ce.Status < 500 {
		return outFail
	}
	return outUnknown
}

// recorder is an http.RoundTripper that remembers the min-index sent and
// the index answered by the last call (one client goroutine uses it).
type recorder struct {
	base              http.RoundTripper
	minSent, gotIndex uint64
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.minSent, _ = strconv.ParseUint(req.Header.Get(api.HeaderMinIndex), 10, 64)
	r.gotIndex = 0
	resp, err := r.base.RoundTrip(req)
	if err == nil {
		r.gotIndex, _ = strconv.ParseUint(resp.Header.Get(api.HeaderIndex), 10, 64)
	}
	return resp, err
}

// stateRank orders request states: a request's state never goes back to a
// lower rank. Closed and failed states are final.
func stateRank(s string) int {
	switch {
	case s == "new" || s == "finding_device" || s == "pending":
		return 1
	case s == "ready":
		return 2
	case s == "expired":
		return 3
	case s == "closed" || strings.HasPrefix(s, "failed_"):
		return 4
	}
	return 0
}

// reqState is the model's state of one request: the lowest rank its state
// may have now, and its final state once one was read ("" with rank 4:
// closed or failed, not known which).
type reqState struct {
	rank  int
	final string
}

type modelIn struct{ kind opKind }

type modelOut struct {
	out   outcome
	state string
}

// requestModel is the sequential specification of one request, for
// porcupine: a create, then reads (each sees a state of a rank no lower
// than the last, and after an acknowledged return a final state), renews
// (which change no state) and returns (after which the request is closed,
// or stays failed). An operation whose outcome is unknown may or may not
// have taken effect.
var requestModel = porcupine.NondeterministicModel{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		by := map[int64][]porcupine.Operation{}
		var ids []int64
		for _, o := range h {
			id := o.Metadata.(int64)
			if _, ok := by[id]; !ok {
				ids = append(ids, id)
			}
			by[id] = append(by[id], o)
		}
		var out [][]porcupine.Operation
		for _, id := range ids {
			out = append(out, by[id])
		}
		return out
	},
	Init: func() []any { return []any{reqState{}} },
	Step: func(st, in, out any) []any {
		s, i, o := st.(reqState), in.(modelIn), out.(modelOut)
		switch i.kind {
		case opCreate:
			if s.rank == 0 && o.out == outOK {
				return []any{reqState{rank: 1}}
			}
			return nil
		case opRead:
			if o.out != outOK {
				return []any{s}
			}
			r := stateRank(o.state)
			if s.rank == 0 || r < s.rank || (s.final != "" && o.state != s.final) {
				return nil
			}
			n := reqState{rank: r}
			if r == 4 {
				n.final = o.state
			}
			return []any{n}
		case opReturn:
			closed := reqState{rank: 4, final: s.final}
			switch o.out {
			case outOK:
				return []any{closed}
			case outUnknown:
				return []any{s, closed}
			}
			return []any{s}
		}
		return []any{s} // renew
	},
	DescribeOperation: func(in, out any) string {
		o := out.(modelOut)
		return fmt.Sprintf("%s -> %s %s", in.(modelIn).kind, o.out, o.state)
	},
}

// linearizable checks the per-request histories of the acknowledged
// requests with porcupine; it returns the ids whose history is not.
func linearizable(ops []op) (bad []int64, result porcupine.CheckResult) {
	// A create is acknowledged once, but its earlier attempts with the
	// same key may have created it: the create spans from the first.
	first := map[string]time.Time{}
	for _, o := range ops {
		if o.kind == opCreate {
			if t, ok := first[o.key]; !ok || o.start.Before(t) {
				first[o.key] = o.start
			}
		}
	}
	var origin time.Time
	for _, o := range ops {
		if origin.IsZero() || o.start.Before(origin) {
			origin = o.start
		}
	}
	var hist []porcupine.Operation
	for _, o := range ops {
		if o.req == 0 {
			continue
		}
		call := o.start
		if o.kind == opCreate {
			call = first[o.key]
		}
		ret := int64(o.end.Sub(origin))
		if o.out == outUnknown {
			ret = math.MaxInt64 / 2 // may take effect at any later time
		}
		hist = append(hist, porcupine.Operation{
			ClientId: o.client, Input: modelIn{o.kind}, Output: modelOut{o.out, o.state},
			Call: int64(call.Sub(origin)), Return: ret, Metadata: o.req,
		})
	}
	model := requestModel.ToModel()
	res, info := porcupine.CheckOperationsVerbose(model, hist, time.Minute)
	if res == porcupine.Illegal {
		seen := map[int64]bool{}
		for _, part := range info.PartialLinearizationsOperations() {
			for _, lin := range part {
				for _, o := range lin {
					seen[o.Metadata.(int64)] = true
				}
			}
		}
		for id := range seen {
			bad = append(bad, id)
		}
	}
	return bad, res
}

// worker is one client: it writes through its own node (create, renew,
// return) and reads back there; its reader reads the same requests through
// the other nodes, at the index the worker has seen (read-your-writes
// across nodes, as a client that fails over), without holding up the
// writes.
type worker struct {
	id     int
	home   int
	scen   string
	h      *history
	seq    int
	writer *conn
	reader *conn
	toRead chan int64
	boards int
}

// conn is one goroutine's clients of the three nodes, sharing an index
// memory, and what it last read of each request.
type conn struct {
	id      int
	clients []*client.Client
	recs    []*recorder
	last    map[int64]string
}

func newConn(id int, ix *client.Index, token string, urls []string) *conn {
	c := &conn{id: id, last: map[int64]string{}}
	for _, u := range urls {
		rec := &recorder{base: &http.Transport{MaxIdleConnsPerHost: 2}}
		c.recs = append(c.recs, rec)
		c.clients = append(c.clients, client.New(u, client.WithIndex(ix), client.WithToken(token),
			client.WithTimeout(3*time.Second), client.WithRetries(2),
			client.WithHTTPClient(&http.Client{Transport: rec})))
	}
	return c
}

func newWorker(id, home int, scen, token string, urls []string, boards int, h *history) *worker {
	ix := &client.Index{}
	return &worker{id: id, home: home, scen: scen, h: h, toRead: make(chan int64, 64), boards: boards,
		writer: newConn(2*id, ix, token, urls), reader: newConn(2*id+1, ix, token, urls)}
}

func (c *conn) record(o op, node int, err error) op {
	o.client, o.node, o.end = c.id, node, time.Now()
	o.out = classify(err)
	if err != nil {
		o.err = err.Error()
	}
	var ce *client.Error
	if errors.As(err, &ce) {
		o.status = ce.Status
	}
	o.minSent, o.gotIndex = c.recs[node].minSent, c.recs[node].gotIndex
	return o
}

// run creates, reads, renews and returns requests through the worker's
// node until ctx ends, while its reader reads them through the others.
func (w *worker) run(ctx context.Context) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for n := 0; ; n++ {
			id, ok := <-w.toRead
			if !ok {
				return
			}
			w.reader.read(w.h, id, (w.home+1+n%2)%len(w.reader.clients))
		}
	}()
	defer func() { close(w.toRead); <-done }()
	pause := func(d time.Duration) bool {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(d):
			return true
		}
	}
	tell := func(id int64) {
		select {
		case w.toRead <- id:
		default: // the reader is behind (a node that does not answer)
		}
	}
	c := w.writer
	for ctx.Err() == nil {
		w.seq++
		key := fmt.Sprintf("faults-%s-%d-%d", w.scen, w.id, w.seq)
		var id int64
		// Most creates ask for any board; every third one for a named
		// board, which other requests may hold or be about to claim.
		device := "any"
		if w.seq%3 == 0 {
			device = fmt.Sprintf("panda-%04d", 1+mathrand.IntN(w.boards))
		}
		// A create whose outcome is unknown is retried with the same key
		// (as a client would), until it is answered.
		for ctx.Err() == nil {
			o := op{kind: opCreate, key: key, device: device, start: time.Now()}
			r, err := c.clients[w.home].CreateRequest(client.WithIdempotencyKey(context.Background(), key), device, client.RequestSpec{
				Assignee: key, Duration: time.Hour, Image: "b2g", BootConfig: map[string]any{"b2gbase": "http://b2g/" + key},
			})
			o = c.record(o, w.home, err)
			if o.out == outOK {
				o.req, o.fields, id = r.ID, r, r.ID
			}
			w.h.add(o)
			if o.out != outUnknown {
				break
			}
			if !pause(200 * time.Millisecond) {
				return
			}
		}
		if id == 0 {
			if !pause(300 * time.Millisecond) {
				return
			}
			continue
		}
		tell(id)
		c.read(w.h, id, w.home)
		if !pause(200 * time.Millisecond) {
			w.giveBack(id)
			return
		}
		o := op{kind: opRenew, req: id, start: time.Now()}
		err := c.clients[w.home].RenewRequest(context.Background(), id, time.Hour)
		w.h.add(c.record(o, w.home, err))
		if !pause(200 * time.Millisecond) {
			w.giveBack(id)
			return
		}
		w.giveBack(id)
		tell(id)
		c.read(w.h, id, w.home)
	}
}

// giveBack returns request id, retrying once if the outcome is unknown
// (the scenario's reset returns what is left), then goes on to create:
// the clients of a node cut off keep trying writes through it.
func (w *worker) giveBack(id int64) {
	c := w.writer
	for range 2 {
		o := op{kind: opReturn, req: id, start: time.Now()}
		err := c.clients[w.home].ReturnRequest(client.WithIdempotencyKey(context.Background(),
			fmt.Sprintf("faults-return-%d", id)), id)
		o = c.record(o, w.home, err)
		w.h.add(o)
		if o.out != outUnknown {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// read reads request id's status through node, and notes whether the
// answer went back in time: an index below the one asked for, an
// acknowledged request not found, or a state older than one this
// goroutine read before.
func (c *conn) read(h *history, id int64, node int) {
	o := op{kind: opRead, req: id, start: time.Now()}
	st, err := c.clients[node].RequestStatus(context.Background(), id)
	o = c.record(o, node, err)
	var ce *client.Error
	switch {
	case err == nil:
		o.state = st.State
		if o.gotIndex < o.minSent {
			o.stale = fmt.Sprintf("answered at index %d, asked for at least %d", o.gotIndex, o.minSent)
		}
		if prev, ok := c.last[id]; ok && stateRank(st.State) < stateRank(prev) {
			o.stale = fmt.Sprintf("state %s after %s", st.State, prev)
		}
		c.last[id] = st.State
	case errors.As(err, &ce) && ce.Status == http.StatusNotFound:
		o.stale = "acknowledged request not found"
	}
	h.add(o)
}
