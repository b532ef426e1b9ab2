package cluster

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/fsm"
)

// TestLeader_BarrierRetried checks that a leader whose first barriers fail
// (behind a slow disk, say) still starts its leader tasks in that term.
func TestLeader_BarrierRetried(t *testing.T) {
	tn := &testNode{t: t, name: "srv1", dir: t.TempDir(), raft: "127.0.0.1:0", fsm: fsm.New(fsm.Config{})}
	tn.srv = httptest.NewServer(http.NotFoundHandler())
	cfg := testConfig(t, tn, true)
	var barriers atomic.Int32
	cfg.barrier = func(r *raft.Raft, timeout time.Duration) error {
		if barriers.Add(1) <= 3 {
			return errors.New("injected: timed out enqueuing operation")
		}
		return r.Barrier(timeout).Error()
	}
	var started atomic.Int32
	cfg.LeaderTasks = []func(ctx context.Context){func(ctx context.Context) {
		started.Add(1)
		<-ctx.Done()
	}}
	n, err := New(cfg)
	require.NoError(t, err)
	tn.n = n
	t.Cleanup(tn.stop)

	require.Eventually(t, func() bool { return started.Load() == 1 }, 20*time.Second, 10*time.Millisecond,
		"leader tasks never started after %d barriers", barriers.Load())
	require.True(t, n.IsLeader())
	require.EqualValues(t, 4, barriers.Load(), "three failed barriers, then one that passed")
}

// TestCluster_RestartFromSnapshotCaughtUp checks that a node restarted
// from a snapshot holding every command counts itself caught up once a
// leader has committed its no-op, without waiting for a new command.
func TestCluster_RestartFromSnapshotCaughtUp(t *testing.T) {
	skipShort(t)
	// The node keeps every address across the restart, so that it has
	// no reason to register itself anew (a command).
	// The first start binds ports of its own choosing; the restart
	// reuses them.
	dir, raftAddr, gossipAddr, httpAddr := t.TempDir(), "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	start := func(bootstrap bool) *testNode {
		tn := &testNode{t: t, name: "srv1", dir: dir, raft: raftAddr, fsm: fsm.New(fsm.Config{})}
		ln, err := net.Listen("tcp", httpAddr)
		require.NoError(t, err)
		tn.srv = httptest.NewUnstartedServer(http.NotFoundHandler())
		tn.srv.Listener.Close()
		tn.srv.Listener = ln
		tn.srv.Start()
		cfg := testConfig(t, tn, bootstrap)
		cfg.GossipBind = gossipAddr
		tn.n, err = New(cfg)
		require.NoError(t, err)
		t.Cleanup(tn.stop)
		httpAddr, raftAddr, gossipAddr = ln.Addr().String(), tn.n.Self().RaftAddr, tn.n.Self().GossipAddr
		return tn
	}
	tn := start(true)
	waitLeader(t, tn)
	for _, img := range []string{"b2g", "android", "linux"} {
		_, err := tn.n.Apply(context.Background(), fsm.CmdImageUpsert, imageCmd(img))
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool { return tn.n.registered() }, 10*time.Second, 10*time.Millisecond)
	require.Eventually(t, tn.n.CaughtUp, 10*time.Second, 10*time.Millisecond)
	require.NoError(t, tn.n.raft.Snapshot().Error())
	applied := tn.fsm.AppliedIndex()
	tn.kill() // a graceful stop would write more entries

	tn = start(false)
	waitLeader(t, tn)
	require.True(t, hasImage(tn.fsm, "linux"), "the snapshot was restored")
	require.Eventually(t, tn.n.CaughtUp, 10*time.Second, 10*time.Millisecond,
		"caught up (applied %d, commit %d)", tn.n.AppliedIndex(), tn.n.raft.CommitIndex())
	require.Equal(t, applied, tn.fsm.AppliedIndex(), "no command was applied after the restart")
	require.Equal(t, tn.n.raft.CommitIndex(), tn.n.AppliedIndex())
}

// TestCluster_ReturningLeaderForgetsOldHeartbeatFailures: a leader whose
// heartbeats to a dead follower failed loses leadership; the follower
// comes back under the next leader; the first leader leads again. Its
// heartbeats to the follower succeed from the start of its new term, so
// Raft reports no resumption: the failures it saw in its earlier term
// must not count, or it would mark a live imaging server down (and keep
// it from taking a rack over).
func TestCluster_ReturningLeaderForgetsOldHeartbeatFailures(t *testing.T) {
	skipShort(t)
	nodes := startCluster(t, 3)
	a := waitLeader(t, nodes...)
	rest := followers(nodes, a)
	b, x := rest[0], rest[1]
	serverDown := func(f *fsm.FSM, name string) bool {
		down := false
		f.Read(func(s *fsm.State) { down = s.Servers[name] != nil && s.Servers[name].Down })
		return down
	}
	lead := func(tn *testNode) {
		t.Helper()
		require.Eventually(t, func() bool {
			if tn.n.IsLeader() {
				return true
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := tn.n.TransferLeadership(ctx, tn.n.ID()); err != nil {
				t.Logf("transferring leadership to %s: %v (trying again)", tn.name, err)
			}
			return false
		}, 20*time.Second, 20*time.Millisecond, "%s never led", tn.name)
	}

	// a sees x's heartbeats fail and marks it down.
	x.kill()
	require.Eventually(t, func() bool { return serverDown(a.fsm, x.name) }, 15*time.Second, 20*time.Millisecond)
	// b leads while x comes back, and sees it up.
	lead(b)
	x = x.restart()
	// healthyTo reports whether leader leads and counts x healthy.
	healthyTo := func(leader *testNode) bool {
		if !leader.n.IsLeader() {
			return false
		}
		for _, s := range leader.n.Status().Servers {
			if s.ID == x.n.ID() {
				return s.Healthy
			}
		}
		return false
	}
	require.Eventually(t, func() bool {
		return x.n.Health() == nil && !serverDown(b.fsm, x.name) && healthyTo(b)
	}, 15*time.Second, 20*time.Millisecond, "x back up")
	// a leads again: it does not mark x down, and x is healthy in its
	// view.
	lead(a)
	require.Never(t, func() bool { return serverDown(a.fsm, x.name) }, 3*a.n.cfg.RegisterInterval, 20*time.Millisecond,
		"the leader marked a live server down")
	require.Eventually(t, func() bool { return healthyTo(a) }, 15*time.Second, 20*time.Millisecond,
		"the leader still counts heartbeat failures of its earlier term")
}
