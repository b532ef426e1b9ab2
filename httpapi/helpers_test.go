package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/cluster"
	"github.com/mozpool/mozpool/fsm"
	"github.com/mozpool/mozpool/internal/testlog"
	"github.com/mozpool/mozpool/lifeguard"
	"github.com/mozpool/mozpool/logstore"
)

const testToken = "sekrit"

// fakeClock is a settable clock shared by the server and the fake cluster.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// fakeCluster applies commands straight to a real FSM, as a single-node
// cluster would, and records what it was asked.
type fakeCluster struct {
	f     *fsm.FSM
	clock *fakeClock

	mu       sync.Mutex
	index    uint64
	applyErr error // returned by Apply instead of applying
	health   error
	headers  []fsm.Header // of every applied command
	joined   []cluster.Identity
	removed  []string
	panicky  bool // Status panics
	// notServing makes Serving false (the node has not caught up since
	// its start).
	notServing bool
	// waiting, if set, receives the index of every WaitApplied call that
	// has to wait.
	waiting chan uint64

	// machines builds the leader's FSM of follower mode.
	machines fsm.Config
	// leader, when set (follow), makes Propose act as a follower's: the
	// leader FSM (a copy of the state) commits the command and answers,
	// and this node's FSM applies it only at catchUp.
	leader    *fsm.FSM
	lagging   []lagged
	forwarded [256]uint64
}

type lagged struct {
	index uint64
	b     []byte
}

// follow makes the node a follower from here on: Propose answers from a
// leader's copy of the state, and this node's FSM stays behind until
// catchUp.
func (c *fakeCluster) follow(t testing.TB) {
	snap, err := c.f.Snapshot()
	require.NoError(t, err)
	var sink memSink
	require.NoError(t, snap.Persist(&sink))
	leader := fsm.New(fsm.Config{Devices: c.machines.Devices, Requests: c.machines.Requests})
	require.NoError(t, leader.Restore(io.NopCloser(&sink.Buffer)))
	c.mu.Lock()
	defer c.mu.Unlock()
	c.leader = leader
}

// catchUp applies to this node's FSM what the leader committed.
func (c *fakeCluster) catchUp() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, l := range c.lagging {
		c.f.ApplyCommand(l.index, l.b)
	}
	c.lagging = nil
}

// memSink is a raft.SnapshotSink in memory.
type memSink struct{ bytes.Buffer }

func (*memSink) ID() string    { return "mem" }
func (*memSink) Cancel() error { return nil }
func (*memSink) Close() error  { return nil }

func (c *fakeCluster) Serving() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.notServing
}

func (c *fakeCluster) setServing(ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.notServing = !ok
}

func (c *fakeCluster) AppliedIndex() uint64 { return c.f.AppliedIndex() }

func (c *fakeCluster) WaitApplied(ctx context.Context, index uint64) error {
	c.mu.Lock()
	waiting := c.waiting
	c.mu.Unlock()
	if waiting != nil && c.f.AppliedIndex() < index {
		select {
		case waiting <- index:
		default:
		}
	}
	return c.f.WaitApplied(ctx, index)
}

func (c *fakeCluster) Apply(_ context.Context, t fsm.CommandType, cmd fsm.Command) (fsm.Result, error) {
	return c.commit(t, cmd, false)
}

// Propose is Apply unless the node follows (follow): then the leader's
// copy commits and answers, and this node's FSM lags until catchUp.
func (c *fakeCluster) Propose(_ context.Context, t fsm.CommandType, cmd fsm.Command) (fsm.Result, error) {
	return c.commit(t, cmd, true)
}

func (c *fakeCluster) commit(t fsm.CommandType, cmd fsm.Command, propose bool) (fsm.Result, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.applyErr != nil {
		return fsm.Result{}, c.applyErr
	}
	h := cmd.Head()
	if h.At.IsZero() {
		h.At = c.clock.Now().UTC()
	}
	b, err := fsm.Encode(t, cmd)
	if err != nil {
		return fsm.Result{}, err
	}
	c.index++
	c.headers = append(c.headers, *h)
	if !propose || c.leader == nil {
		return c.f.ApplyCommand(c.index, b), nil
	}
	c.lagging = append(c.lagging, lagged{index: c.index, b: b})
	c.forwarded[t] = c.index
	return c.leader.ApplyCommand(c.index, b), nil
}

func (c *fakeCluster) ForwardedIndex(types ...fsm.CommandType) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var m uint64
	if len(types) == 0 {
		for _, i := range c.forwarded {
			m = max(m, i)
		}
	}
	for _, t := range types {
		m = max(m, c.forwarded[t])
	}
	return m
}

func (c *fakeCluster) lastHeader() fsm.Header {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.headers[len(c.headers)-1]
}

func (c *fakeCluster) setApplyErr(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.applyErr = err
}

func (c *fakeCluster) Self() cluster.Identity {
	return cluster.Identity{ID: "node1", Name: "server1", Rack: "rack1", RaftAddr: "127.0.0.1:7000", HTTPAddr: "http://127.0.0.1:8010"}
}

func (c *fakeCluster) Status() cluster.Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.panicky {
		panic("status exploded")
	}
	self := c.Self()
	return cluster.Status{
		Node: self, State: "Leader", Leader: &self, Term: 2, CommitIndex: c.index, AppliedIndex: c.index, LastLogIndex: c.index,
		Servers: []cluster.ServerStatus{{ID: self.ID, Name: self.Name, Suffrage: cluster.SuffrageVoter, Leader: true, Healthy: true, Gossip: "alive"}},
	}
}

func (c *fakeCluster) Health() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.health
}

func (c *fakeCluster) Join(_ context.Context, id cluster.Identity) (cluster.JoinResult, error) {
	if id.ID == "" || id.RaftAddr == "" || id.HTTPAddr == "" {
		return cluster.JoinResult{}, cluster.ErrBadJoin
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.joined = append(c.joined, id)
	return cluster.JoinResult{Action: "added", Suffrage: cluster.SuffrageVoter}, nil
}

func (c *fakeCluster) Remove(_ context.Context, id string) error {
	if id != "node2" {
		return cluster.ErrUnknownNode
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.removed = append(c.removed, id)
	return nil
}

// Backup snapshots the fake's FSM.
func (c *fakeCluster) Backup() (*raft.SnapshotMeta, io.ReadCloser, error) {
	snap, err := c.f.Snapshot()
	if err != nil {
		return nil, nil, err
	}
	sink := &memSnapshotSink{}
	if err := snap.Persist(sink); err != nil {
		return nil, nil, err
	}
	return &raft.SnapshotMeta{Index: 7, Term: 2, Size: int64(sink.Len())}, io.NopCloser(&sink.Buffer), nil
}

// Restore restores the fake's FSM.
func (c *fakeCluster) Restore(_ context.Context, data []byte) error {
	if err := fsm.ValidateSnapshot(bytes.NewReader(data)); err != nil {
		return fmt.Errorf("%w: %v", cluster.ErrBadBackup, err)
	}
	return c.f.Restore(io.NopCloser(bytes.NewReader(data)))
}

type memSnapshotSink struct{ bytes.Buffer }

func (*memSnapshotSink) ID() string    { return "mem" }
func (*memSnapshotSink) Cancel() error { return nil }
func (*memSnapshotSink) Close() error  { return nil }

// Handler echoes internal requests so the test can see they arrived.
func (c *fakeCluster) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "cluster "+r.Method+" "+r.URL.Path)
	})
}

// testEnv is a Server behind httptest with a fake cluster over a real FSM
// holding sampleInventory.
type testEnv struct {
	t       testing.TB
	srv     *Server
	ts      *httptest.Server
	cluster *fakeCluster
	fsm     *fsm.FSM
	clock   *fakeClock
	// anonymous: requests carry no token unless given one.
	anonymous bool
}

// newTestEnv starts the env, with the device machine (devices have its
// states); opts adjust the server's Config.
func newTestEnv(t *testing.T, opts ...func(*Config)) *testEnv {
	t.Helper()
	return startTestEnv(t, fsm.Config{Devices: lifeguard.Machine{}}, opts...)
}

// startTestEnv is newTestEnv with an FSM built from machines (its Devices
// and Requests; the logger and Notify are set here).
func startTestEnv(t testing.TB, machines fsm.Config, opts ...func(*Config)) *testEnv {
	t.Helper()
	lcfg := logstore.DefaultConfig()
	lcfg.Path = filepath.Join(t.TempDir(), "logs.db")
	lcfg.Logger = testlog.New(t)
	logs, err := logstore.Open(lcfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, logs.Close()) })
	// The node appends each command's log lines as the FSM applies it;
	// syncing at once makes them visible to the next query, so tests need
	// not poll.
	notify := func(n fsm.Notification) {
		logs.Append(n.Logs)
		if err := logs.Sync(); err != nil {
			t.Errorf("sync log store: %v", err) // not FailNow: this runs on a server goroutine
		}
	}
	machines.Logger, machines.Notify = testlog.New(t), notify
	f := fsm.New(machines)
	clock := &fakeClock{now: time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)}
	fc := &fakeCluster{f: f, clock: clock, machines: machines}

	cfg := DefaultConfig()
	cfg.FSM, cfg.Cluster, cfg.Logs = f, fc, logs
	cfg.Logger = testlog.New(t)
	cfg.Token = testToken
	for _, o := range opts {
		o(&cfg)
	}
	srv, err := New(cfg)
	require.NoError(t, err)
	srv.now = clock.Now

	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)

	res, err := fc.Apply(context.Background(), fsm.CmdInventorySync, &fsm.InventorySync{Inventory: sampleInventory(), ShipIt: true})
	require.NoError(t, err)
	require.NoError(t, res.Error())
	return &testEnv{t: t, srv: srv, ts: ts, cluster: fc, fsm: f, clock: clock}
}

func sampleInventory() fsm.Inventory {
	inactive := false
	return fsm.Inventory{
		ImagingServers: []fsm.InventoryServer{{Name: "server1", Rack: "rack1"}, {Name: "server2", Rack: "rack2"}},
		HardwareTypes:  []fsm.InventoryHardwareType{{Type: "panda", Model: "ES Rev B2"}},
		Images: []fsm.ImageSpec{
			{Name: "b2g", BootConfigKeys: []string{"b2gbase"}, HasSUTAgent: true},
			{Name: "android", CanReuse: true, HasSUTAgent: true},
			{Name: "self-test", Hidden: true},
			{Name: "maintenance", Hidden: true},
		},
		PXEConfigs: []fsm.InventoryPXEConfig{
			{Name: "pxe1", Description: "first", Contents: "KERNEL <vmlinuz> %IPADDRESS%"},
			{Name: "old-pxe", Description: "retired", Contents: "x", Active: &inactive},
			{Name: "fake-b2g", Description: "b2g installer", Contents: "KERNEL b2g"},
		},
		ImagePXEConfigs: []fsm.InventoryImagePXE{{Image: "b2g", HardwareType: "panda", HardwareModel: "ES Rev B2", PXEConfig: "fake-b2g"}},
		Devices: []fsm.InventoryDevice{
			testDevice(1, "dev1", "server1", "even"),
			testDevice(2, "dev2", "server1", "odd"),
			testDevice(3, "dev3", "server2", ""),
		},
	}
}

func testDevice(n int64, name, server, env string) fsm.InventoryDevice {
	return fsm.InventoryDevice{
		Name: name, FQDN: name + ".lab.example.com", InventoryID: n,
		MAC:           "00:11:22:33:44:" + string(rune('0'+n/10)) + string(rune('0'+n%10)),
		ImagingServer: server, RelayInfo: "relay1.lab.example.com:bank1:relay" + string(rune('0'+n)),
		HardwareType: "panda", HardwareModel: "ES Rev B2", Environment: env,
	}
}

// response is an answer read in full.
type response struct {
	*http.Response
	body []byte
}

// json decodes the body into a generic value.
func (r response) json(t testing.TB) any {
	t.Helper()
	var v any
	require.NoError(t, json.Unmarshal(r.body, &v), "body %q", r.body)
	return v
}

// obj decodes the body as a JSON object.
func (r response) obj(t testing.TB) map[string]any {
	t.Helper()
	m, ok := r.json(t).(map[string]any)
	require.True(t, ok, "body %q is not an object", r.body)
	return m
}

// requireError checks an error answer: status, JSON content type and a
// non-empty "error" message.
func (r response) requireError(t testing.TB, status int) string {
	t.Helper()
	require.Equal(t, status, r.StatusCode, "body %q", r.body)
	require.Equal(t, "application/json; charset=utf-8", r.Header.Get("Content-Type"))
	m := r.obj(t)
	require.Len(t, m, 1, "error body %q", r.body)
	msg, ok := m["error"].(string)
	require.True(t, ok && msg != "", "error body %q", r.body)
	return msg
}

// do sends a request; body is sent as is when it is a string or []byte,
// else as JSON. hdr holds header name/value pairs. Redirects are not
// followed.
func (e *testEnv) do(method, path string, body any, hdr ...string) response {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewBufferString(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		require.NoError(e.t, err)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, e.ts.URL+path, rd)
	require.NoError(e.t, err)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	// Tests act as the bootstrap admin unless they send credentials of
	// their own or the env is anonymous.
	_, auth := req.Header["Authorization"]
	_, tok := req.Header["X-Mozpool-Token"]
	if !auth && !tok && !e.anonymous && e.srv.token != "" {
		req.Header.Set("Authorization", "Bearer "+e.srv.token)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	return response{Response: resp, body: b}
}

// anon is the env sending no credentials unless given some.
func (e *testEnv) anon() *testEnv {
	c := *e
	c.anonymous = true
	return &c
}

func (e *testEnv) get(path string, hdr ...string) response {
	e.t.Helper()
	return e.do(http.MethodGet, path, nil, hdr...)
}

func (e *testEnv) post(path string, body any, hdr ...string) response {
	e.t.Helper()
	return e.do(http.MethodPost, path, body, hdr...)
}

// getOK GETs path and requires a 200 JSON object.
func (e *testEnv) getOK(path string) map[string]any {
	e.t.Helper()
	r := e.get(path)
	require.Equal(e.t, http.StatusOK, r.StatusCode, "GET %s: body %q", path, r.body)
	require.Equal(e.t, "application/json; charset=utf-8", r.Header.Get("Content-Type"))
	return r.obj(e.t)
}

// keys returns the sorted keys of a JSON object.
func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
