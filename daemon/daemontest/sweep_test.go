package daemontest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/api"
	"github.com/mozpool/mozpool/fsm"
	"github.com/mozpool/mozpool/httpapi"
	"github.com/mozpool/mozpool/lifeguard"
)

// The sweep sends malformed input to every route the API registers, on a
// running 3-node cluster, and checks each answer: no crash, no 5xx but 503,
// every error a JSON body with a reason, and the replicated state of every
// node unchanged by every refused call.

// sweepBodyLimit is more than any route accepts (a backup, the largest, is
// capped at 64 MiB).
const sweepBodyLimit = 64<<20 + 1

// sweepParams are the path parameters the sweep knows how to fill. A route
// with a parameter missing here fails the sweep, so no route escapes it.
var sweepParams = []string{"id", "event", "old", "new", "name", "board", "filepath", "path", "rack"}

// sweepBadSegments are malformed values for a path parameter, written as
// they go on the wire: traversal (plain and encoded), NUL, non-UTF-8,
// unknown ids, huge and negative numbers, an overlong name.
var sweepBadSegments = []string{
	"..", "../../etc/passwd", "%2e%2e%2f%2e%2e%2fetc%2fpasswd", "..%2f..%2f..%2fetc%2fpasswd",
	"%2e%2e", "%00", "a%00b", "%ff%fe", "\xff\xfe", "%c3%28",
	"99999999999999999999999", "-1", "0", "-9223372036854775808", "1e309", "NaN",
	"no-such-thing", strings.Repeat("x", 4096), "%20", "%3Cscript%3E", "list",
}

// sweepBodies are malformed request bodies: broken and wrongly shaped
// JSON, wrongly typed fields, non-UTF-8 bytes, negative durations, huge
// numbers, deep nesting.
var sweepBodies = []string{
	"", " ", "{", `{"a":`, "[]", "null", `"x"`, "42", "true", "{}{}", `{"a": 1} trailing`,
	"\xff\xfe\xfd", `{"comments": "\xff\xfe"}`, `{"environment": "\xc3\x28"}`, `{"name": "b2g\xff"}`,
	`{"comments": 1, "environment": [], "assignee": {}, "duration": "x", "image": 5, "name": null,
	  "contents": 1, "active": "yes", "id": {}, "inventory": "x", "boot_config": 1, "description": []}`,
	`{"assignee": "sweep", "image": "b2g", "duration": -3600}`,
	`{"assignee": "sweep", "image": "b2g", "duration": "-1"}`,
	`{"assignee": "sweep", "image": "b2g", "duration": 1e309}`,
	`{"assignee": "sweep", "image": "b2g", "duration": 99999999999999999999999999}`,
	`{"assignee": "sweep", "image": "no-such-image", "duration": 60}`,
	`{"duration": -1}`, `{"duration": 99999999999999999999}`,
	`{"id": 99999999999999999999, "name": "../../etc/passwd"}`,
	`{"inventory": {"devices": [{"name": "../../etc/passwd", "mac_address": "zz"}]}, "ship_it": true}`,
	`{"name": "../../etc/passwd", "contents": "x", "description": "d", "active": true}`,
	`{"image": "%2e%2e%2f", "hardware_type": "\u0000", "pxe_config": "x"}`,
	`{"id": "", "name": "", "raft_addr": ":-1", "http_addr": "\u0000"}`,
	strings.Repeat("[", 100000),
	`{"a": "` + strings.Repeat("\\u0000", 1000) + `"}`,
}

// sweepQueries are malformed query strings sent to GET routes.
var sweepQueries = []string{
	"?limit=-1", "?limit=99999999999999999999", "?timeperiod=-3600", "?since=not-a-time",
	"?since=%ff", "?details=%00", "?" + strings.Repeat("a=1&", 2000),
}

// sweepCall is one call of the sweep.
type sweepCall struct {
	method, path, query string
	body                []byte
	header              http.Header
	route               httpapi.Route
}

// sweep holds the cluster under test and what the sweep found.
type sweep struct {
	t       *testing.T
	c       *Cluster
	hc      *http.Client
	base    [][]fsm.StateRecord
	calls   int
	byRoute map[httpapi.Route]int
	// accepted lists the calls answered < 400: they may change the state.
	accepted []string
	// findings holds the first failing call per route and kind of
	// failure, in order.
	findings map[string]string
	order    []string
}

func TestSweep_MalformedInputOnEveryRoute(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-node cluster test")
	}
	c := New(t, 3)
	inv := benchInventory(4)
	inv.Images = []api.ImageSpec{{Name: "b2g", BootConfigKeys: []string{"b2gbase"}}}
	inv.PXEConfigs = []api.InventoryPXEConfig{{Name: "sweep-pxe", Description: "d", Contents: "KERNEL x"}}
	// Each server with the rack its node registers, so that no node
	// rewrites its entry during the sweep.
	inv.ImagingServers = nil
	for _, n := range c.Nodes {
		inv.ImagingServers = append(inv.ImagingServers, api.InventoryServer{Name: n.Name, Rack: "rack-" + n.Name})
	}
	c.LoadInventory(inv)
	for _, n := range c.Nodes {
		require.Eventually(t, func() bool {
			bound := 0
			n.FSM.Read(func(st *fsm.State) {
				for _, srv := range st.Servers {
					if srv.NodeID != "" && srv.Rack == "rack-"+srv.Name && srv.HTTPAddr != "" {
						bound++
					}
				}
			})
			return bound == len(c.Nodes)
		}, time.Minute, 20*time.Millisecond, "%s: servers not registered", n.Name)
	}
	// Without relay_info a device fails its power cycle and stays in
	// failed_power_cycling: the lab is quiet while the sweep runs.
	for _, n := range c.Nodes {
		require.Eventually(t, func() bool {
			settled := 0
			n.FSM.Read(func(st *fsm.State) {
				for _, d := range st.Devices {
					if lifeguard.State(d.State) == lifeguard.StateFailedPowerCycling {
						settled++
					}
				}
			})
			return settled == len(inv.Devices)
		}, time.Minute, 20*time.Millisecond, "%s: devices did not settle", n.Name)
	}
	// A closed request, so request routes have an id that exists.
	ctx := context.Background()
	req, err := c.Nodes[0].Client().CreateRequest(ctx, "any", b2gSpec())
	require.NoError(t, err)
	require.NoError(t, c.Nodes[0].Client().ReturnRequest(ctx, req.ID))

	s := &sweep{t: t, c: c, byRoute: map[httpapi.Route]int{}, findings: map[string]string{},
		hc: &http.Client{Transport: HTTPClient().Transport, Timeout: 60 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}}}
	s.converge()
	s.base = s.dump()

	routes := c.Nodes[0].Daemon.API.Routes()
	require.NotEmpty(t, routes)
	known := map[string]string{
		"event": "no_such_event", "old": "ready", "new": "locked_out", // the devices are not ready: 409
		"name": "sweep-pxe", "board": "no-such-board", "filepath": "index.html", "path": "apply",
		"rack": "rack-" + NodeName(1),
	}
	paths := map[string][]string{}
	for _, rt := range routes {
		paths[rt.Path] = append(paths[rt.Path], rt.Method)
		params := pathParams(rt.Path)
		for _, p := range params {
			require.Contains(t, sweepParams, p, "route %s %s: the sweep does not know parameter %q", rt.Method, rt.Path, p)
		}
		// Each parameter in turn gets every malformed value.
		for _, p := range params {
			for _, v := range sweepBadSegments {
				s.do(sweepCall{method: rt.Method, path: substitute(rt.Path, p, v, known, req.ID), route: rt,
					body: []byte(`{"comments": "sweep"}`)})
			}
		}
		base := substitute(rt.Path, "", "", known, req.ID)
		if rt.Method == http.MethodPost {
			for _, b := range sweepBodies {
				s.do(sweepCall{method: rt.Method, path: base, body: []byte(b), route: rt})
			}
			s.do(sweepCall{method: rt.Method, path: base, body: nil, route: rt, header: http.Header{"X-Sweep-Oversized": {"1"}}})
		} else {
			for _, q := range sweepQueries {
				s.do(sweepCall{method: rt.Method, path: base, query: q, route: rt})
			}
		}
		// Malformed headers the API reads.
		for _, h := range []http.Header{
			{api.HeaderMinIndex: {"-1"}}, {api.HeaderMinIndex: {"not-a-number"}},
			{api.HeaderMinIndex: {"99999999999999999999999"}},
			{api.HeaderIdempotencyKey: {strings.Repeat("k", 10000)}}, {api.HeaderIdempotencyKey: {fsm.AutoKeyPrefix + "forged"}},
			{"X-Mozpool-Token": {"\xff\xfe"}}, {"Authorization": {"Bearer " + strings.Repeat("x", 4096)}},
		} {
			s.do(sweepCall{method: rt.Method, path: base, route: rt, header: h, body: []byte("{")})
		}
	}
	// Wrong methods on every path.
	for path, methods := range paths {
		for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch, "BREW"} {
			if slices.Contains(methods, m) {
				continue
			}
			s.do(sweepCall{method: m, path: substitute(path, "", "", known, req.ID), route: httpapi.Route{Method: methods[0], Path: path},
				body: []byte("{")})
		}
	}

	for _, k := range s.order {
		t.Errorf("%s\n\t%s", k, s.findings[k])
	}
	for _, rt := range routes {
		require.GreaterOrEqual(t, s.byRoute[rt], 10, "route %s %s was not swept", rt.Method, rt.Path)
	}
	for _, n := range c.Nodes {
		require.NoError(t, n.Cluster.Health(), "%s after the sweep", n.Name)
	}
	t.Logf("sweep: %d calls over %d routes, %d findings; %d calls accepted that changed the state:",
		s.calls, len(routes), len(s.order), len(s.accepted))
	for _, a := range s.accepted {
		t.Logf("  %.300s", a)
	}
}

// pathParams lists the parameter names of a route pattern, in order.
func pathParams(pattern string) []string {
	var out []string
	for _, seg := range strings.Split(pattern, "/") {
		if len(seg) > 1 && (seg[0] == ':' || seg[0] == '*') {
			out = append(out, seg[1:])
		}
	}
	return out
}

// substitute fills a route pattern: param p gets v, the others their known
// good value (a request id for request routes, a device name for the other
// :id routes).
func substitute(pattern, p, v string, known map[string]string, reqID int64) string {
	segs := strings.Split(pattern, "/")
	for i, seg := range segs {
		if len(seg) < 2 || (seg[0] != ':' && seg[0] != '*') {
			continue
		}
		name := seg[1:]
		switch {
		case name == p:
			segs[i] = v
		case name == "id" && strings.HasPrefix(pattern, "/api/request/"):
			segs[i] = strconv.FormatInt(reqID, 10)
		case name == "id":
			segs[i] = "panda-0001"
		default:
			segs[i] = known[name]
		}
	}
	return strings.Join(segs, "/")
}

// oversized is a body reader larger than any limit, made on the fly.
type oversized struct{ left int }

func (o *oversized) Read(p []byte) (int, error) {
	if o.left == 0 {
		return 0, io.EOF
	}
	n := min(len(p), o.left)
	for i := range p[:n] {
		p[i] = ' '
	}
	if o.left == sweepBodyLimit {
		p[0] = '{'
	}
	o.left -= n
	return n, nil
}

// do sends one call to a node (round robin) with the cluster token, and
// checks the answer and the state of every node.
func (s *sweep) do(call sweepCall) {
	t := s.t
	t.Helper()
	n := s.c.Nodes[s.calls%len(s.c.Nodes)]
	s.calls++
	s.byRoute[call.route]++
	what := fmt.Sprintf("%s %s%s (body %.60q) to %s", call.method, call.path, call.query, call.body, n.Name)
	var body io.Reader = bytes.NewReader(call.body)
	big := call.header.Get("X-Sweep-Oversized") != ""
	if big {
		body = &oversized{left: sweepBodyLimit}
		what = fmt.Sprintf("%s %s with a %d-byte body to %s", call.method, call.path, sweepBodyLimit, n.Name)
	}
	query := call.query
	if call.method == http.MethodGet && strings.HasPrefix(call.path, "/api/events") {
		// The event stream only ends when asked to: once, after the
		// stored events.
		if query == "" {
			query = "?once"
		} else {
			query += "&once"
		}
	}
	r, err := http.NewRequest(call.method, n.URL+call.path+query, body)
	if err != nil {
		// The URL cannot even be sent (Go refuses it): nothing to check.
		s.calls--
		s.byRoute[call.route]--
		return
	}
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("X-Mozpool-Token", Token)
	for k, vs := range call.header {
		r.Header[k] = vs
	}
	resp, err := s.hc.Do(r)
	if big && err != nil {
		// The server may answer 413 and close before the client has
		// sent the whole body; the client then reports the write
		// failure. The node must still be up.
		_, herr := HTTPClient().Get(n.URL + "/api/cluster/self/")
		require.NoError(t, herr, "%s: node down after %v", what, err)
		return
	}
	require.NoError(t, err, what)
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err, what)
	status := resp.StatusCode
	defer func() {
		// A body over every limit is refused 413, unless the call is
		// refused before its body matters (no token, no such path or
		// method, a slash-less path redirected).
		if big && !slices.Contains([]int{http.StatusSeeOther, http.StatusForbidden, http.StatusNotFound,
			http.StatusMethodNotAllowed, http.StatusRequestEntityTooLarge}, status) {
			key := call.route.Method + " " + call.route.Path + ": no body limit"
			if _, ok := s.findings[key]; !ok {
				s.order = append(s.order, key)
				s.findings[key] = fmt.Sprintf("%s: status %d, body %.200q", what, status, b)
			}
		}
	}()
	fail := func(kind, format string, args ...any) {
		key := call.route.Method + " " + call.route.Path + ": " + kind
		if _, ok := s.findings[key]; !ok {
			s.order = append(s.order, key)
			s.findings[key] = fmt.Sprintf("%s: "+format, append([]any{what}, args...)...)
		}
	}
	if status >= 500 && status != http.StatusServiceUnavailable {
		fail("5xx", "status %d, body %.200q", status, b)
	}
	if status >= 400 {
		var e api.Error
		switch {
		case resp.Header.Get("Content-Type") != "application/json; charset=utf-8":
			fail("not JSON", "status %d, Content-Type %q, body %.200q", status, resp.Header.Get("Content-Type"), b)
		case json.Unmarshal(b, &e) != nil || e.Error == "":
			fail("no reason", "status %d, body %.200q", status, b)
		}
	}
	s.converge()
	now := s.dump()
	changed := ""
	for i, nd := range s.c.Nodes {
		if d := recordsDiff(s.base[i], now[i]); d != "" {
			changed = nd.Name + ": " + d
		}
	}
	s.base = now
	switch {
	case status >= 300 && changed != "":
		fail("state changed", "answered %d %.200q, yet the state of %s changed", status, b, changed)
	case status < 300 && changed != "":
		s.accepted = append(s.accepted, fmt.Sprintf("%s → %d", what, status))
	}
}

// converge waits until every node has applied what the leader has.
func (s *sweep) converge() {
	s.t.Helper()
	var want uint64
	for _, n := range s.c.Nodes {
		want = max(want, n.FSM.AppliedIndex())
	}
	for _, n := range s.c.Nodes {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := n.FSM.WaitApplied(ctx, want)
		cancel()
		require.NoError(s.t, err, "%s did not reach index %d", n.Name, want)
	}
}

// dump is each node's state records, with the fields that change on
// their own (a server's reachability) cleared.
func (s *sweep) dump() [][]fsm.StateRecord {
	out := make([][]fsm.StateRecord, len(s.c.Nodes))
	for i, n := range s.c.Nodes {
		recs, err := n.FSM.StateRecords()
		require.NoError(s.t, err)
		for j, r := range recs {
			if r.Kind != "server" {
				continue
			}
			var m map[string]any
			require.NoError(s.t, json.Unmarshal(r.JSON, &m))
			delete(m, "down")
			recs[j].JSON, _ = json.Marshal(m)
		}
		out[i] = recs
	}
	return out
}

// recordsDiff describes the first difference between two dumps ("" if
// none).
func recordsDiff(a, b []fsm.StateRecord) string {
	for i := range max(len(a), len(b)) {
		switch {
		case i >= len(a):
			return fmt.Sprintf("added %s %s", b[i].Kind, b[i].JSON)
		case i >= len(b):
			return fmt.Sprintf("removed %s %s", a[i].Kind, a[i].JSON)
		case a[i].Kind != b[i].Kind || !bytes.Equal(a[i].JSON, b[i].JSON):
			return fmt.Sprintf("%s %s became %s %s", a[i].Kind, a[i].JSON, b[i].Kind, b[i].JSON)
		}
	}
	return ""
}
