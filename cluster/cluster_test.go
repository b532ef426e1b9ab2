package cluster

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/api"
	"github.com/mozpool/mozpool/fsm"
	"github.com/mozpool/mozpool/internal/testlog"
)

const testToken = "test-token"

// testNode is a node with its own HTTP server, FSM and data dir.
type testNode struct {
	t    *testing.T
	name string
	dir  string
	raft string // raft address, reused on restart
	fsm  *fsm.FSM
	srv  *httptest.Server
	n    *Node
	// gate holds every HTTP request while shut, as a hung process would.
	gate *hangGate
}

// hangGate holds HTTP requests while it is shut: the connection is accepted
// (the kernel does that for a paused process) but nothing answers.
type hangGate struct {
	mu      sync.Mutex
	shut    chan struct{} // non-nil while shut; closed to let requests on
	waiting int
}

func (g *hangGate) wait() {
	g.mu.Lock()
	ch := g.shut
	if ch != nil {
		g.waiting++
	}
	g.mu.Unlock()
	if ch != nil {
		// Not the request's context: a hung process does not notice that
		// the caller gave up.
		<-ch
	}
}

func (g *hangGate) hang() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.shut == nil {
		g.shut = make(chan struct{})
	}
}

func (g *hangGate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.shut != nil {
		close(g.shut)
		g.shut = nil
	}
}

// held is how many requests the gate has held so far.
func (g *hangGate) held() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.waiting
}

func testConfig(t *testing.T, tn *testNode, bootstrap bool) Config {
	cfg := DefaultConfig()
	cfg.DataDir = tn.dir
	cfg.Name = tn.name
	cfg.Rack = "rack-" + tn.name
	cfg.RaftBind = tn.raft
	cfg.GossipBind = "127.0.0.1:0"
	cfg.HTTPAddr = tn.srv.URL // "" for a server not started yet: startNode sets it
	// Advertised only: nothing listens there.
	cfg.TFTPAddr = tn.name + ".test:69"
	cfg.SyslogAddr = tn.name + ".test:514"
	cfg.Bootstrap = bootstrap
	cfg.Token = testToken
	cfg.FSM = tn.fsm
	cfg.Logger = testlog.New(t).Named(tn.name)
	cfg.HeartbeatTimeout = 300 * time.Millisecond
	cfg.ElectionTimeout = 300 * time.Millisecond
	cfg.LeaderLeaseTimeout = 150 * time.Millisecond
	cfg.ForwardHold = 7 * time.Second
	cfg.RegisterInterval = 500 * time.Millisecond
	return cfg
}

// startNode starts a node in dir (a new one when dir is ""). The HTTP server
// is started before the node so the node can advertise its URL.
// Each of opts adjusts the node's configuration before it starts.
func startNode(t *testing.T, name, dir, raftAddr string, bootstrap bool, opts ...func(*Config)) *testNode {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	if raftAddr == "" {
		// The transport binds a port of its own choosing, so no other
		// test can take it between a probe and the bind; a restart
		// reuses the address it got.
		raftAddr = "127.0.0.1:0"
	}
	tn := &testNode{t: t, name: name, dir: dir, raft: raftAddr, fsm: fsm.New(fsm.Config{}), gate: &hangGate{}}
	var h http.Handler = http.NotFoundHandler()
	tn.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tn.gate.wait()
		h.ServeHTTP(w, r)
	}))
	cfg := testConfig(t, tn, bootstrap)
	for _, o := range opts {
		o(&cfg)
	}
	// A node with TLS serves its API over HTTPS, client certificates
	// optional (the internal endpoints require a node's).
	if cfg.TLS != nil {
		tn.srv.TLS = cfg.TLS.ServerConfig(tls.VerifyClientCertIfGiven)
		tn.srv.StartTLS()
	} else {
		tn.srv.Start()
	}
	cfg.HTTPAddr = tn.srv.URL
	n, err := New(cfg)
	require.NoError(t, err)
	tn.n = n
	tn.raft = n.Self().RaftAddr
	h = n.Handler()
	t.Cleanup(func() { tn.stop() })
	return tn
}

func (tn *testNode) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tn.n.Shutdown(ctx)
	tn.srv.Close()
}

// kill stops the node as a crash would.
func (tn *testNode) kill() {
	tn.n.Kill()
	tn.srv.CloseClientConnections()
	tn.srv.Close()
}

func (tn *testNode) restart() *testNode {
	tn.t.Helper()
	return startNode(tn.t, tn.name, tn.dir, tn.raft, false)
}

func waitLeader(t *testing.T, nodes ...*testNode) *testNode {
	t.Helper()
	var leader *testNode
	require.Eventually(t, func() bool {
		for _, tn := range nodes {
			if tn.n.IsLeader() {
				leader = tn
				return true
			}
		}
		return false
	}, 15*time.Second, 20*time.Millisecond, "no leader elected")
	for _, tn := range nodes {
		require.NoError(t, tn.n.WaitForLeader(context.Background()))
	}
	return leader
}

func imageCmd(name string) *fsm.ImageUpsert {
	return &fsm.ImageUpsert{Image: fsm.ImageSpec{Name: name, BootConfigKeys: []string{"k"}}}
}

func hasImage(f *fsm.FSM, name string) bool {
	ok := false
	f.Read(func(s *fsm.State) { _, ok = s.Images[name] })
	return ok
}

func startCluster(t *testing.T, size int, opts ...func(*Config)) []*testNode {
	t.Helper()
	nodes := []*testNode{startNode(t, "srv1", "", "", true, opts...)}
	waitLeader(t, nodes[0])
	for i := 2; i <= size; i++ {
		tn := startNode(t, "srv"+string(rune('0'+i)), "", "", false, opts...)
		res, err := nodes[0].n.Join(context.Background(), tn.n.Self())
		require.NoError(t, err)
		// "unchanged" when the leader stepped down after adding the
		// server (a slow start on a loaded machine outlasts the test's
		// 150 ms lease) and the join was retried.
		require.Contains(t, []string{"added", "unchanged"}, res.Action)
		nodes = append(nodes, tn)
	}
	leader := waitLeader(t, nodes...)
	// Every node has registered itself in the replicated server table.
	require.Eventually(t, func() bool {
		ok := true
		leader.fsm.Read(func(s *fsm.State) {
			for _, tn := range nodes {
				ok = ok && s.Servers[tn.name] != nil && s.Servers[tn.name].NodeID == tn.n.ID()
			}
		})
		return ok
	}, 10*time.Second, 20*time.Millisecond)
	return nodes
}

func followers(nodes []*testNode, leader *testNode) []*testNode {
	var out []*testNode
	for _, tn := range nodes {
		if tn != leader {
			out = append(out, tn)
		}
	}
	return out
}

func skipShort(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-node cluster test")
	}
}

func TestCluster_WriteOnFollowerAppliedEverywhere(t *testing.T) {
	skipShort(t)
	nodes := startCluster(t, 3)
	leader := waitLeader(t, nodes...)
	f := followers(nodes, leader)[0]

	res, err := f.n.Apply(context.Background(), fsm.CmdImageUpsert, imageCmd("b2g"))
	require.NoError(t, err)
	require.NoError(t, res.Error())
	var img fsm.Image
	require.NoError(t, res.Decode(&img))
	require.Equal(t, "b2g", img.Name)
	for _, tn := range nodes {
		require.Eventually(t, func() bool { return hasImage(tn.fsm, "b2g") }, 5*time.Second, 10*time.Millisecond, tn.name)
	}

	// Domain errors survive forwarding with their identity.
	res, err = f.n.Apply(context.Background(), fsm.CmdDeviceSetComments, &fsm.DeviceSetComments{Device: "nosuch"})
	require.NoError(t, err)
	require.ErrorIs(t, res.Error(), fsm.ErrUnknownDevice)

	// Every node registers itself in the replicated server table.
	require.Eventually(t, func() bool {
		ok := true
		leader.fsm.Read(func(s *fsm.State) {
			for _, tn := range nodes {
				srv := s.Servers[tn.name]
				ok = ok && srv != nil && srv.NodeID == tn.n.ID() && srv.HTTPAddr == tn.srv.URL && srv.Rack == "rack-"+tn.name
			}
		})
		return ok
	}, 10*time.Second, 20*time.Millisecond)
}

// TestCluster_AdvertisedAddresses: every node's TFTP and syslog addresses
// reach the replicated server table and every node's status, so that
// boards (and the simulator) can find their imaging server's.
func TestCluster_AdvertisedAddresses(t *testing.T) {
	skipShort(t)
	nodes := startCluster(t, 3)
	for _, tn := range nodes {
		require.Equal(t, tn.name+".test:514", tn.n.Self().SyslogAddr)
	}
	for _, viewer := range nodes {
		require.Eventually(t, func() bool {
			ok := true
			viewer.fsm.Read(func(s *fsm.State) {
				for _, tn := range nodes {
					srv := s.Servers[tn.name]
					ok = ok && srv != nil && srv.TFTPAddr == tn.name+".test:69" && srv.SyslogAddr == tn.name+".test:514"
				}
			})
			return ok
		}, 10*time.Second, 20*time.Millisecond, "%s's server table lacks the advertised addresses", viewer.name)
		got := map[string][2]string{}
		for _, ss := range viewer.n.Status().Servers {
			got[ss.Name] = [2]string{ss.TFTPAddr, ss.SyslogAddr}
		}
		for _, tn := range nodes {
			require.Equal(t, [2]string{tn.name + ".test:69", tn.name + ".test:514"}, got[tn.name], "%s's status of %s", viewer.name, tn.name)
		}
	}
}

func TestCluster_IdempotentRetry(t *testing.T) {
	skipShort(t)
	nodes := startCluster(t, 3)
	leader := waitLeader(t, nodes...)
	f := followers(nodes, leader)[0]
	create := func() fsm.Result {
		desc := "d"
		res, err := f.n.Apply(context.Background(), fsm.CmdPXEConfigUpsert, &fsm.PXEConfigUpsert{
			Header: fsm.Header{IdempotencyKey: "client-key-1"}, Name: "pxe1", Description: &desc, Create: true,
		})
		require.NoError(t, err)
		return res
	}
	first, second := create(), create()
	require.NoError(t, first.Error())
	require.NoError(t, second.Error(), "a retried keyed create must return the first result, not ErrExists")
	require.JSONEq(t, string(first.Value), string(second.Value))
}

func TestCluster_LeaderKilledNewLeaderTakesWrites(t *testing.T) {
	skipShort(t)
	nodes := startCluster(t, 3)
	leader := waitLeader(t, nodes...)
	_, err := leader.n.Apply(context.Background(), fsm.CmdImageUpsert, imageCmd("before"))
	require.NoError(t, err)

	leader.kill()
	rest := followers(nodes, leader)
	newLeader := waitLeader(t, rest...)
	require.NotEqual(t, leader.n.ID(), newLeader.n.ID())

	f := followers(rest, newLeader)[0]
	res, err := f.n.Apply(context.Background(), fsm.CmdImageUpsert, imageCmd("after"))
	require.NoError(t, err)
	require.NoError(t, res.Error())
	for _, tn := range rest {
		require.Eventually(t, func() bool { return hasImage(tn.fsm, "after") && hasImage(tn.fsm, "before") }, 5*time.Second, 10*time.Millisecond)
	}

	// The leader's view reports the dead voter and the lost tolerance.
	require.Eventually(t, func() bool {
		st := newLeader.n.Status()
		healthy := 0
		for _, s := range st.Servers {
			if s.Healthy {
				healthy++
			}
		}
		return len(st.Servers) == 3 && healthy == 2 && st.FailureTolerance == 0
	}, 15*time.Second, 50*time.Millisecond)

	// The new leader marks the lost server down in the replicated state
	// (device choice skips its frozen rack).
	serverDown := func(f *fsm.FSM, name string) bool {
		down := false
		f.Read(func(s *fsm.State) { down = s.Servers[name] != nil && s.Servers[name].Down })
		return down
	}
	require.Eventually(t, func() bool { return serverDown(newLeader.fsm, leader.name) }, 15*time.Second, 50*time.Millisecond)

	// The killed node restarts from its data dir and catches up.
	back := leader.restart()
	require.Eventually(t, func() bool { return hasImage(back.fsm, "after") && hasImage(back.fsm, "before") }, 15*time.Second, 20*time.Millisecond)
	require.Eventually(t, func() bool { return back.n.Health() == nil }, 10*time.Second, 20*time.Millisecond)
	require.Eventually(t, func() bool { return !serverDown(newLeader.fsm, leader.name) }, 15*time.Second, 50*time.Millisecond, "back up")
}

// TestCluster_HungLeaderDoesNotStallForwardedWrites: the leader hangs (a
// paused process: its HTTP server accepts connections and never answers,
// its Raft goes silent) while a follower's forwarded write is waiting for
// its answer. The follower gives the call up as soon as its Raft no longer
// reports that leader and sends the write to the new one. The forward
// timeout and the hold are a minute here, so without that the write could
// not succeed within the test's 20 s.
func TestCluster_HungLeaderDoesNotStallForwardedWrites(t *testing.T) {
	skipShort(t)
	nodes := startCluster(t, 3, func(c *Config) {
		c.ApplyTimeout = time.Minute
		c.ForwardHold = time.Minute
	})
	leader := waitLeader(t, nodes...)
	rest := followers(nodes, leader)
	f := rest[0]
	// Runs before the node's own cleanup: a stopped server waits for the
	// requests it holds.
	t.Cleanup(leader.gate.release)

	leader.gate.hang()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	type outcome struct {
		res fsm.Result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := f.n.Apply(ctx, fsm.CmdImageUpsert, imageCmd("through-hang"))
		done <- outcome{res, err}
	}()
	// The write is in flight to the hung leader before its Raft goes silent.
	require.Eventually(t, func() bool { return leader.gate.held() > 0 }, 10*time.Second, 10*time.Millisecond)
	require.NoError(t, leader.n.raft.Shutdown().Error())
	goneAt := time.Now().UTC()

	var got outcome
	select {
	case got = <-done:
	case <-ctx.Done():
		t.Fatal("the forwarded write is still waiting for the hung leader")
	}
	require.NoError(t, got.err)
	require.NoError(t, got.res.Error())
	newLeader := waitLeader(t, rest...)
	require.NotEqual(t, leader.n.ID(), newLeader.n.ID())
	for _, tn := range rest {
		require.Eventually(t, func() bool { return hasImage(tn.fsm, "through-hang") }, 5*time.Second, 10*time.Millisecond, tn.name)
	}
	// The write committed with the time of the attempt that succeeded,
	// not the time it first reached the hung leader.
	last, err := newLeader.n.logs.LastIndex()
	require.NoError(t, err)
	found := false
	for i := last; i > 0 && !found; i-- {
		var e raft.Log
		if newLeader.n.logs.GetLog(i, &e) != nil || e.Type != raft.LogCommand {
			continue
		}
		var cmd fsm.ImageUpsert
		if typ, err := fsm.Decode(e.Data, &cmd); err == nil && typ == fsm.CmdImageUpsert && cmd.Image.Name == "through-hang" {
			found = true
			require.False(t, cmd.At.Before(goneAt), "committed with %s, before the old leader went (%s)", cmd.At, goneAt)
		}
	}
	require.True(t, found, "the write is in the new leader's log")
}

// TestCluster_DeposedLeaderDoesNotAcknowledge: a leader that lost its
// quorum does not acknowledge a forwarded write it could not commit; it
// answers 421, so the follower retries toward whoever leads next, and the
// retry, under the same idempotency key, takes effect once whether or not
// the entry the ex-leader appended survives into the next term.
func TestCluster_DeposedLeaderDoesNotAcknowledge(t *testing.T) {
	skipShort(t)
	nodes := startCluster(t, 3)
	leader := waitLeader(t, nodes...)
	rest := followers(nodes, leader)
	for _, tn := range rest {
		tn.kill()
	}

	desc := "d"
	cmd := &fsm.PXEConfigUpsert{Header: fsm.Header{IdempotencyKey: "deposed-1", At: now()}, Name: "pxe1", Description: &desc, Create: true}
	b, err := fsm.Encode(fsm.CmdPXEConfigUpsert, cmd)
	require.NoError(t, err)
	req, err := http.NewRequest(http.MethodPost, leader.srv.URL+pathApply, bytesReader(b))
	require.NoError(t, err)
	req.Header.Set(api.HeaderToken, testToken)
	req.Header.Set(api.HeaderForwarded, "a-follower")
	resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusMisdirectedRequest, resp.StatusCode, "retry elsewhere, neither success nor failure")
	require.False(t, leader.n.IsLeader())
	require.False(t, hasPXEConfig(leader.fsm, "pxe1"))

	var back []*testNode
	for _, tn := range rest {
		back = append(back, tn.restart())
	}
	all := append([]*testNode{leader}, back...)
	l := waitLeader(t, all...)
	res, err := l.n.Apply(context.Background(), fsm.CmdPXEConfigUpsert, cmd)
	require.NoError(t, err)
	require.NoError(t, res.Error(), "the retry under the same key must take effect once")
	// Once more through the ex-leader, when it has found the new leader's
	// address (restarted nodes come back on new HTTP and gossip ports).
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		res, err := leader.n.Apply(ctx, fsm.CmdPXEConfigUpsert, cmd)
		if err != nil {
			return false
		}
		require.NoError(t, res.Error(), "a retry under the same key must not create twice")
		return true
	}, 30*time.Second, 50*time.Millisecond)
	for _, tn := range all {
		require.Eventually(t, func() bool { return hasPXEConfig(tn.fsm, "pxe1") }, 10*time.Second, 10*time.Millisecond, tn.name)
	}
}

func hasPXEConfig(f *fsm.FSM, name string) bool {
	ok := false
	f.Read(func(s *fsm.State) { _, ok = s.PXEConfigs[name] })
	return ok
}

func TestCluster_NoLeaderHoldsThenFails(t *testing.T) {
	skipShort(t)
	nodes := startCluster(t, 3)
	leader := waitLeader(t, nodes...)
	rest := followers(nodes, leader)
	leader.kill()
	rest[0].kill()
	survivor := rest[1]
	survivor.n.cfg.ForwardHold = 800 * time.Millisecond

	start := time.Now()
	_, err := survivor.n.Apply(context.Background(), fsm.CmdImageUpsert, imageCmd("lost"))
	require.ErrorIs(t, err, ErrNoLeader)
	require.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond, "the write should be held before giving up")
	// Raft notices the lost leader within one to two heartbeat timeouts of
	// its last contact, which on a loaded machine can outlast the hold.
	require.Eventually(t, func() bool { return survivor.n.Health() != nil }, 10*time.Second, 20*time.Millisecond)
}

func TestCluster_JoinRemoveReplace(t *testing.T) {
	skipShort(t)
	nodes := startCluster(t, 3)
	leader := waitLeader(t, nodes...)
	f := followers(nodes, leader)[0]

	// Join through a follower: forwarded to the leader.
	n4 := startNode(t, "srv4", "", "", false)
	res, err := f.n.Join(context.Background(), n4.n.Self())
	require.NoError(t, err)
	require.Equal(t, JoinResult{Action: "added", Suffrage: SuffrageVoter}, res)
	res, err = f.n.Join(context.Background(), n4.n.Self())
	require.NoError(t, err)
	require.Equal(t, "unchanged", res.Action)
	require.Eventually(t, func() bool { return n4.n.Leader() != nil }, 10*time.Second, 20*time.Millisecond)

	// Bad joins are refused clearly.
	_, err = f.n.Join(context.Background(), Identity{ID: "x"})
	require.ErrorIs(t, err, ErrBadJoin)

	// Remove.
	require.NoError(t, f.n.Remove(context.Background(), n4.n.ID()))
	require.Len(t, configServers(t, leader), 3)
	require.ErrorIs(t, f.n.Remove(context.Background(), "no-such-node"), ErrUnknownNode)
	n4.kill()

	// A node rejoining with the same raft address but a new id (a rebuilt
	// host) replaces the stale entry.
	n5 := startNode(t, "srv5", "", "", false)
	res, err = leader.n.Join(context.Background(), n5.n.Self())
	require.NoError(t, err)
	require.Equal(t, "added", res.Action)
	oldID := n5.n.ID()
	addr := n5.raft
	n5.kill()
	os.RemoveAll(n5.dir)
	n6 := startNode(t, "srv5", t.TempDir(), addr, false)
	require.NotEqual(t, oldID, n6.n.ID())
	res, err = leader.n.Join(context.Background(), n6.n.Self())
	require.NoError(t, err)
	require.Equal(t, "replaced", res.Action)
	ids := map[string]bool{}
	for _, s := range configServers(t, leader) {
		ids[string(s.ID)] = true
	}
	require.Len(t, ids, 4)
	require.True(t, ids[n6.n.ID()])
	require.False(t, ids[oldID])
}

func TestCluster_MaxVotersThenNonvoters(t *testing.T) {
	skipShort(t)
	nodes := startCluster(t, 2)
	leader := waitLeader(t, nodes...)
	leader.n.cfg.MaxVoters = 2
	n3 := startNode(t, "srv3", "", "", false)
	res, err := leader.n.Join(context.Background(), n3.n.Self())
	require.NoError(t, err)
	require.Equal(t, SuffrageNonvoter, res.Suffrage)
	res, err = leader.n.Join(context.Background(), n3.n.Self())
	require.NoError(t, err)
	require.Equal(t, JoinResult{Action: "unchanged", Suffrage: SuffrageNonvoter}, res)
	// The non-voter still receives the replicated state.
	_, err = leader.n.Apply(context.Background(), fsm.CmdImageUpsert, imageCmd("nv"))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return hasImage(n3.fsm, "nv") }, 5*time.Second, 10*time.Millisecond)
}

func TestCluster_GracefulShutdownTransfersLeadership(t *testing.T) {
	skipShort(t)
	nodes := startCluster(t, 3)
	leader := waitLeader(t, nodes...)
	rest := followers(nodes, leader)
	leader.stop()
	// A transferred leadership shows up without waiting for an election
	// timeout; either way a new leader must take writes.
	newLeader := waitLeader(t, rest...)
	_, err := newLeader.n.Apply(context.Background(), fsm.CmdImageUpsert, imageCmd("post"))
	require.NoError(t, err)
	require.NoError(t, leader.n.Shutdown(context.Background()), "shutdown is idempotent")
}

func TestCluster_InternalEndpointsNeedToken(t *testing.T) {
	skipShort(t)
	nodes := startCluster(t, 1)
	post := func(name string, header ...string) int {
		t.Helper()
		b, err := fsm.Encode(fsm.CmdImageUpsert, imageCmd(name))
		require.NoError(t, err)
		req, err := http.NewRequest(http.MethodPost, nodes[0].srv.URL+pathApply, bytesReader(b))
		require.NoError(t, err)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, h := range [][]string{
		nil,
		{api.HeaderToken, "wrong"},
		{"Authorization", "Bearer wrong"},
		{"Authorization", testToken},
	} {
		require.Equal(t, http.StatusForbidden, post("x", h...), "headers %q", h)
	}
	require.False(t, hasImage(nodes[0].fsm, "x"))

	require.Equal(t, http.StatusOK, post("y", api.HeaderToken, testToken))
	require.True(t, hasImage(nodes[0].fsm, "y"))
	require.Equal(t, http.StatusOK, post("z", "Authorization", "bearer "+testToken))
	require.True(t, hasImage(nodes[0].fsm, "z"))
}

func TestNodeID_PersistedAndChecked(t *testing.T) {
	dir := t.TempDir()
	id, err := loadNodeID(dir, "")
	require.NoError(t, err)
	again, err := loadNodeID(dir, "")
	require.NoError(t, err)
	require.Equal(t, id, again)
	_, err = loadNodeID(dir, "other")
	require.Error(t, err)
}

func TestConfig_Validate(t *testing.T) {
	base := DefaultConfig()
	base.DataDir, base.Name, base.RaftBind, base.GossipBind, base.HTTPAddr = "d", "n", "127.0.0.1:0", "127.0.0.1:0", "http://x"
	base.FSM = fsm.New(fsm.Config{})
	require.NoError(t, base.Validate())
	for name, mut := range map[string]func(*Config){
		"no data dir":   func(c *Config) { c.DataDir = "" },
		"no name":       func(c *Config) { c.Name = "" },
		"lease > hb":    func(c *Config) { c.LeaderLeaseTimeout = 2 * c.HeartbeatTimeout },
		"bad raft addr": func(c *Config) { c.RaftBind = "nope" },
		"no voters":     func(c *Config) { c.MaxVoters = 0 },
		"raft log":      func(c *Config) { c.RaftLog = "sqlite" },
	} {
		t.Run(name, func(t *testing.T) {
			c := base
			mut(&c)
			require.Error(t, c.Validate())
		})
	}
}

func configServers(t *testing.T, tn *testNode) []raft.Server {
	f := tn.n.raft.GetConfiguration()
	require.NoError(t, f.Error())
	return f.Configuration().Servers
}

func TestCluster_BackupAndRestore(t *testing.T) {
	skipShort(t)
	nodes := startCluster(t, 3)
	leader := waitLeader(t, nodes...)
	f := followers(nodes, leader)[0]
	_, err := f.n.Apply(context.Background(), fsm.CmdImageUpsert, imageCmd("kept"))
	require.NoError(t, err)

	// A backup from any node (here a follower) holds the state so far.
	meta, rc, err := f.n.Backup()
	require.NoError(t, err)
	backup, err := io.ReadAll(rc)
	rc.Close()
	require.NoError(t, err)
	require.NotEmpty(t, backup)
	require.Equal(t, int64(len(backup)), meta.Size)
	// Nothing new since: the same snapshot is served again.
	_, rc, err = f.n.Backup()
	require.NoError(t, err)
	rc.Close()

	_, err = f.n.Apply(context.Background(), fsm.CmdImageUpsert, imageCmd("lost"))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return hasImage(leader.fsm, "lost") }, 5*time.Second, 10*time.Millisecond)

	// Garbage is refused and changes nothing.
	require.ErrorIs(t, f.n.Restore(context.Background(), []byte("not a backup")), ErrBadBackup)
	require.True(t, hasImage(leader.fsm, "lost"))

	// Restoring (through a follower: forwarded to the leader) brings every
	// node back to the backup's state.
	require.NoError(t, f.n.Restore(context.Background(), backup))
	for _, tn := range nodes {
		require.Eventually(t, func() bool { return hasImage(tn.fsm, "kept") && !hasImage(tn.fsm, "lost") },
			10*time.Second, 20*time.Millisecond, tn.name)
	}
	// The cluster goes on taking writes.
	res, err := f.n.Apply(context.Background(), fsm.CmdImageUpsert, imageCmd("after"))
	require.NoError(t, err)
	require.NoError(t, res.Error())
}

// TestCluster_ForwardRefusesUndecodableCommand: a forwarded command the
// FSM cannot decode is refused 400 before it is proposed (applied, it
// would crash every node, at every replay); unknown internal paths and
// methods get JSON errors.
func TestCluster_ForwardRefusesUndecodableCommand(t *testing.T) {
	skipShort(t)
	nodes := startCluster(t, 1)
	leader := waitLeader(t, nodes...)
	before := leader.fsm.AppliedIndex()
	post := func(method, path string, body []byte) (int, api.Error) {
		req, err := http.NewRequest(method, leader.srv.URL+path, bytesReader(body))
		require.NoError(t, err)
		req.Header.Set(api.HeaderToken, testToken)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, "application/json; charset=utf-8", resp.Header.Get("Content-Type"))
		var e api.Error
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&e))
		return resp.StatusCode, e
	}
	for _, b := range []string{"", "{", `{"comments": "x"}`, "\x00{}", "\x07", "\x07{", "\x07[]", "\x07{\"at\": 5}", "\x7f{}"} {
		code, e := post(http.MethodPost, pathApply, []byte(b))
		require.Equal(t, http.StatusBadRequest, code, "%q: %s", b, e.Error)
		require.NotEmpty(t, e.Error)
	}
	require.True(t, leader.n.IsLeader())
	require.Equal(t, before, leader.fsm.AppliedIndex(), "nothing was proposed")

	code, e := post(http.MethodGet, pathApply, nil)
	require.Equal(t, http.StatusMethodNotAllowed, code, e.Error)
	code, e = post(http.MethodPost, "/_cluster/../../etc/passwd", nil)
	require.Equal(t, http.StatusNotFound, code, e.Error)
}

// TestCluster_InternalBodyLimit: an internal call with a body over the
// limit is answered 413, not read whole.
func TestCluster_InternalBodyLimit(t *testing.T) {
	skipShort(t)
	nodes := startCluster(t, 1)
	leader := waitLeader(t, nodes...)
	req, err := http.NewRequest(http.MethodPost, leader.srv.URL+pathApply, io.LimitReader(zeros{}, maxForwardBody+1))
	require.NoError(t, err)
	req.Header.Set(api.HeaderToken, testToken)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
	var e api.Error
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&e))
	require.NotEmpty(t, e.Error)
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// Apply on a follower returns once the follower's own state has the write;
// Propose returns once the leader has it, and records the write's index
// under its command type, which the follower reaches next.
func TestCluster_ProposeRecordsForwardedIndex(t *testing.T) {
	skipShort(t)
	nodes := startCluster(t, 3)
	leader := waitLeader(t, nodes...)
	f := followers(nodes, leader)[0]

	_, err := f.n.Apply(context.Background(), fsm.CmdImageUpsert, imageCmd("applied"))
	require.NoError(t, err)
	require.True(t, hasImage(f.fsm, "applied"), "Apply waits for the follower's own state")
	require.Zero(t, f.n.ForwardedIndex(), "Apply records nothing")

	res, err := f.n.Propose(context.Background(), fsm.CmdImageUpsert, imageCmd("proposed"))
	require.NoError(t, err)
	require.NoError(t, res.Error())
	idx := f.n.ForwardedIndex(fsm.CmdImageUpsert)
	require.Greater(t, idx, uint64(0))
	require.Equal(t, idx, f.n.ForwardedIndex(), "the highest of every type")
	require.Zero(t, f.n.ForwardedIndex(fsm.CmdTokenCreate, fsm.CmdSetPolicy), "other types")
	require.True(t, hasImage(leader.fsm, "proposed"), "the leader applied it before answering")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, f.fsm.WaitApplied(ctx, idx))
	require.True(t, hasImage(f.fsm, "proposed"))

	// The leader forwards nothing: its apply returns once its state has it.
	_, err = leader.n.Propose(context.Background(), fsm.CmdImageUpsert, imageCmd("on-leader"))
	require.NoError(t, err)
	require.Zero(t, leader.n.ForwardedIndex())
	require.True(t, hasImage(leader.fsm, "on-leader"))
}
