package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/api"
	"github.com/mozpool/mozpool/daemon/daemontest"
	"github.com/mozpool/mozpool/lifeguard"
	"github.com/mozpool/mozpool/requests"
)

// b2gBase is the b2gbase boot-config value the request tests send.
const b2gBase = "http://x/b2g"

// requestBody is a creation body asking for image in environment env for
// duration seconds (anything the API takes: a number or a numeric string).
// A b2g request carries its boot-config key.
func requestBody(image, env string, duration any) map[string]any {
	b := map[string]any{"assignee": "e2e", "duration": duration, "image": image, "environment": env}
	if image == "b2g" {
		b["b2gbase"] = b2gBase
	}
	return b
}

// requestPath is the path of request id's route op ("details", "return", ...).
func requestPath(id int64, op string) string {
	return "/api/request/" + strconv.FormatInt(id, 10) + "/" + op + "/"
}

// postRequest asks node n for dev ("any" or a name) with body and returns
// the status, the request (zero unless the status is 200) and the raw
// answer.
func postRequest(t *testing.T, n *daemontest.Node, dev string, body any) (int, api.Request, []byte) {
	t.Helper()
	status, raw := do(t, http.MethodPost, n.URL+"/api/device/"+dev+"/request/", body)
	var out struct {
		Request api.Request `json:"request"`
	}
	if status == http.StatusOK {
		require.NoError(t, json.Unmarshal(raw, &out), "%s", raw)
	}
	return status, out.Request, raw
}

// createRequest asks node n for dev with body, requires a 200, and returns
// the request when the test ends, so that no test leaves a device held.
func (l *lab) createRequest(t *testing.T, n *daemontest.Node, dev string, body any) api.Request {
	t.Helper()
	status, req, raw := postRequest(t, n, dev, body)
	require.Equal(t, http.StatusOK, status, "create a request for %s via %s: %s", dev, n.Name, raw)
	require.NotZero(t, req.ID, "%s", raw)
	t.Cleanup(func() { returnRequest(t, l.node(), req.ID) })
	return req
}

// returnRequest returns request id through node n and returns the status
// (the body must be empty).
func returnRequest(t *testing.T, n *daemontest.Node, id int64) int {
	t.Helper()
	status, body := do(t, http.MethodPost, n.URL+requestPath(id, "return"), nil)
	require.Empty(t, body, "return of request %d answers no body", id)
	return status
}

// claimedLine is the request's log line when it claims dev and sends it
// ev (please_image, or please_power_cycle to reuse its image).
func claimedLine(dev string, ev lifeguard.Event) string {
	return fmt.Sprintf("claimed device %s and sent it %s", dev, ev)
}

// requestEvent sends a request event through node n with method (POST
// with body as its arguments, or GET) and returns the status and body.
func requestEvent(t *testing.T, n *daemontest.Node, method string, id int64, ev requests.Event, body any) (int, []byte) {
	t.Helper()
	return do(t, method, n.URL+requestPath(id, "event/"+string(ev)), body)
}

// requestOn returns request id's details as node n shows them.
func requestOn(t *testing.T, n *daemontest.Node, id int64) api.Request {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	q, err := n.Client().Request(ctx, id)
	require.NoError(t, err)
	return q
}

// requestRowOn returns request id's row of node n's request list (closed
// requests included); false if n did not answer or does not know it yet.
func requestRowOn(n *daemontest.Node, id int64) (api.RequestSummary, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rows, err := n.Client().Requests(ctx, true)
	if err != nil {
		return api.RequestSummary{}, false
	}
	for _, r := range rows {
		if r.ID == id {
			return r, true
		}
	}
	return api.RequestSummary{}, false
}

// requestRow is requestRowOn some live node, a different one on each call.
func (l *lab) requestRow(id int64) (api.RequestSummary, bool) { return requestRowOn(l.node(), id) }

// rowString shows a request row in failure messages.
func rowString(r api.RequestSummary) string {
	return fmt.Sprintf("state %q, device %q (%q)", r.State, r.AssignedDevice, r.DeviceState)
}

// waitRequest waits until every live node's row of request id satisfies
// ok, and returns the first live node's row.
func (l *lab) waitRequest(t *testing.T, id int64, timeout time.Duration, what string, ok func(api.RequestSummary) bool) api.RequestSummary {
	t.Helper()
	var seen []string
	var first api.RequestSummary
	require.Eventually(t, func() bool {
		seen = seen[:0]
		good := true
		for i, n := range l.cluster.Live() {
			r, found := requestRowOn(n, id)
			if i == 0 {
				first = r
			}
			seen = append(seen, n.Name+": "+rowString(r))
			good = good && found && ok(r)
		}
		return good
	}, timeout, poll, "request %d: want %s on every node; %s", id, what, lazy(func() string { return strings.Join(seen, "; ") }))
	return first
}

// waitRequestState waits until every live node shows request id in state.
func (l *lab) waitRequestState(t *testing.T, id int64, state requests.State, timeout time.Duration) api.RequestSummary {
	t.Helper()
	return l.waitRequest(t, id, timeout, "state "+string(state), func(r api.RequestSummary) bool { return requests.State(r.State) == state })
}

// waitHolding waits until every live node shows request id in state with
// dev assigned ("" for none).
func (l *lab) waitHolding(t *testing.T, id int64, state requests.State, dev string, timeout time.Duration) {
	t.Helper()
	l.waitRequest(t, id, timeout, fmt.Sprintf("state %s holding %q", state, dev), func(r api.RequestSummary) bool {
		return requests.State(r.State) == state && r.AssignedDevice == dev
	})
}

// requestStateOn returns request id's state as node n's status route
// reports it ("" if n did not answer).
func requestStateOn(n *daemontest.Node, id int64) requests.State {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := n.Client().RequestStatus(ctx, id)
	if err != nil {
		return ""
	}
	return requests.State(st.State)
}

// requestLog returns request id's whole log from logNode, oldest first.
func (l *lab) requestLog(t *testing.T, id int64) []api.LogEntry {
	t.Helper()
	var log []api.LogEntry
	var err error
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		log, err = l.logNode().Client().RequestLog(ctx, id)
		return err == nil
	}, 30*time.Second, poll, "read the log of request %d: %s", id, lazy(func() string { return fmt.Sprint(err) }))
	return log
}

// waitRequestLog waits until request id's log holds a line from source
// containing text.
func (l *lab) waitRequestLog(t *testing.T, id int64, source, text string) {
	t.Helper()
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		log, err := l.logNode().Client().RequestLog(ctx, id)
		return err == nil && logHas(log, source, text)
	}, 10*time.Second, poll, "request %d: no %s log line %q", id, source, text)
}

// requestEntered lists the states request id's log shows it entering.
func (l *lab) requestEntered(t *testing.T, id int64) []requests.State {
	t.Helper()
	return requestStates(l.requestLog(t, id))
}

// holderOn returns the id of the request holding dev as node n's device
// details say (0 for none); false if n did not answer.
func holderOn(n *daemontest.Node, dev string) (int64, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d, err := n.Client().Device(ctx, dev)
	if err != nil || d.Name != dev {
		return 0, false
	}
	if d.RequestID == nil {
		return 0, true
	}
	return *d.RequestID, true
}

// waitHolder waits until every live node shows dev held by request id (0:
// by none).
func (l *lab) waitHolder(t *testing.T, dev string, id int64, timeout time.Duration) {
	t.Helper()
	var seen []string
	require.Eventually(t, func() bool {
		seen = seen[:0]
		good := true
		for _, n := range l.cluster.Live() {
			got, ok := holderOn(n, dev)
			seen = append(seen, fmt.Sprintf("%s: %d", n.Name, got))
			good = good && ok && got == id
		}
		return good
	}, timeout, poll, "%s: want request_id %d on every node; %s", dev, id, lazy(func() string { return strings.Join(seen, ", ") }))
}

// setEnvironment sets dev's environment through some node.
func (l *lab) setEnvironment(t *testing.T, dev, env string) {
	t.Helper()
	status, body := do(t, http.MethodPost, l.node().URL+"/api/device/"+dev+"/set-environment/", map[string]string{"environment": env})
	require.Equal(t, http.StatusOK, status, "set-environment of %s: %s", dev, body)
}

// force moves dev from whatever state it is in to state, as an operator
// does from the web UI: a conditional change from the state it shows,
// repeated if the device moved in between.
func (l *lab) force(t *testing.T, dev string, state lifeguard.State) {
	t.Helper()
	var from lifeguard.State
	var status int
	require.Eventually(t, func() bool {
		// The leader has the newest state: a conflict there is a real move.
		n := l.leader()
		if from = stateOn(n, dev); from == "" {
			return false
		}
		status = stateChange(t, n, dev, from, state)
		return status == http.StatusOK
	}, 10*time.Second, poll, "force %s to %s: last tried from %q, answered %d", dev, state,
		lazy(func() string { return string(from) }), lazy(func() string { return strconv.Itoa(status) }))
	l.waitState(t, dev, state, 10*time.Second)
}

// leader returns the live node that leads, or some live node while there
// is none (callers poll).
func (l *lab) leader() *daemontest.Node {
	for _, n := range l.cluster.Live() {
		if n.Cluster.IsLeader() {
			return n
		}
	}
	return l.node()
}

// parseWireTime parses the API's naive ISO-8601 UTC times; a zone suffix
// fails.
func parseWireTime(t *testing.T, s string) time.Time {
	t.Helper()
	at, err := time.ParseInLocation("2006-01-02T15:04:05", s, time.UTC)
	require.NoError(t, err, "a naive ISO-8601 time: %q", s)
	return at
}

// requireExpiresIn checks that a wire time is about d from now.
func requireExpiresIn(t *testing.T, expires string, d time.Duration) {
	t.Helper()
	want := time.Now().UTC().Add(d)
	got := parseWireTime(t, expires)
	require.WithinDuration(t, want, got, 5*time.Second, "expires %s, want about now + %s", expires, d)
}

// pxeSeen is what watchPXE saw of a device's PXE file on its owner's disk.
type pxeSeen struct {
	// Contents is the file as first read; Seen and Gone are when it was
	// first found and when it was first found missing afterwards.
	Contents   string
	Seen, Gone time.Time
}

// watchPXE polls dev's PXE file in its owner's TFTP root every few
// milliseconds until the returned stop is called, which returns what it
// saw.
func (l *lab) watchPXE(t *testing.T, dev string) (stop func() pxeSeen) {
	t.Helper()
	path, err := l.ownerOf(t, dev).Daemon.PXE.Path(l.deviceEntry(t, dev).MAC)
	require.NoError(t, err)
	done := make(chan struct{})
	var wg sync.WaitGroup
	var seen pxeSeen
	wg.Add(1)
	// Exits when stop closes done.
	go func() {
		defer wg.Done()
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			b, err := os.ReadFile(path)
			switch {
			case err == nil && seen.Seen.IsZero():
				seen.Contents, seen.Seen = string(b), time.Now()
			case errors.Is(err, fs.ErrNotExist) && !seen.Seen.IsZero() && seen.Gone.IsZero():
				seen.Gone = time.Now()
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	var once sync.Once
	return func() pxeSeen {
		once.Do(func() { close(done); wg.Wait() })
		return seen
	}
}

// pxeFileExists reports whether dev's PXE file is on its owner's disk.
func (l *lab) pxeFileExists(t *testing.T, dev string) bool {
	t.Helper()
	path, err := l.ownerOf(t, dev).Daemon.PXE.Path(l.deviceEntry(t, dev).MAC)
	require.NoError(t, err)
	_, err = os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false
	}
	require.NoError(t, err)
	return true
}

// postedAt returns when board posted ev at or after since (zero if not).
func postedAt(t *testing.T, l *lab, dev string, ev lifeguard.Event, since time.Time) time.Time {
	t.Helper()
	for _, p := range l.sim.Board(dev).Events {
		if lifeguard.Event(p.Event) == ev && !p.At.Before(since) {
			return p.At
		}
	}
	return time.Time{}
}
