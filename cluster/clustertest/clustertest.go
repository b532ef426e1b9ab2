// Package clustertest starts whole Mozpool nodes (Raft, gossip, log store and
// the HTTP API on real loopback listeners, data in a temporary directory)
// for tests and benchmarks in other packages.
package clustertest

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/client"
	"github.com/mozpool/mozpool/cluster"
	"github.com/mozpool/mozpool/fsm"
	"github.com/mozpool/mozpool/httpapi"
	"github.com/mozpool/mozpool/internal/testlog"
	"github.com/mozpool/mozpool/logstore"
)

// Token is the cluster token every test node shares.
const Token = "clustertest-token"

// Node is one running node.
type Node struct {
	Name    string
	Dir     string
	URL     string
	Cluster *cluster.Node
	FSM     *fsm.FSM
	Logs    *logstore.Store
	server  *httptest.Server
	raft    string
	stopped bool
}

// Client returns an API client for this node, with the cluster token.
func (n *Node) Client() *client.Client { return client.New(n.URL, client.WithToken(Token)) }

// Cluster is a set of nodes started by New.
type Cluster struct {
	t     testing.TB
	Nodes []*Node
}

// New starts size nodes named mobile-imaging-001…: the first bootstraps, the
// others join through it over HTTP. It returns once every node knows the
// leader. Nodes are stopped when the test ends.
func New(t testing.TB, size int) *Cluster {
	t.Helper()
	c := &Cluster{t: t}
	first := c.StartNode(NodeName(1), "", "", true)
	c.Nodes = append(c.Nodes, first)
	c.WaitLeader()
	for i := 2; i <= size; i++ {
		n := c.StartNode(NodeName(i), "", "", false)
		_, err := first.Client().Join(context.Background(), n.Cluster.Self())
		require.NoError(t, err)
		c.Nodes = append(c.Nodes, n)
	}
	c.WaitLeader()
	return c
}

// NodeName is the imaging server name of node i (1-based).
func NodeName(i int) string { return "mobile-imaging-" + leftPad(i) }

func leftPad(i int) string {
	s := strconv.Itoa(i)
	for len(s) < 3 {
		s = "0" + s
	}
	return s
}

// StartNode starts a node that is not yet part of c.Nodes (callers join it
// or append it). dir and raftAddr may be empty for a fresh node.
func (c *Cluster) StartNode(name, dir, raftAddr string, bootstrap bool) *Node {
	t := c.t
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	if raftAddr == "" {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		raftAddr = ln.Addr().String()
		ln.Close()
	}
	logger := testlog.New(t).Named(name)
	lcfg := logstore.DefaultConfig()
	lcfg.Path = filepath.Join(dir, "logs.db")
	lcfg.Logger = logger
	logs, err := logstore.Open(lcfg)
	require.NoError(t, err)
	state := fsm.New(fsm.Config{Notify: func(n fsm.Notification) { logs.Append(n.Logs) }})

	var h http.Handler = http.NotFoundHandler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	cfg := cluster.DefaultConfig()
	cfg.DataDir, cfg.Name, cfg.Rack = dir, name, "rack-"+name
	cfg.RaftBind, cfg.GossipBind, cfg.HTTPAddr = raftAddr, "127.0.0.1:0", srv.URL
	cfg.Bootstrap, cfg.Token, cfg.FSM, cfg.Logger = bootstrap, Token, state, logger
	cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = 500*time.Millisecond, 500*time.Millisecond, 250*time.Millisecond
	cfg.RegisterInterval = time.Second
	node, err := cluster.New(cfg)
	require.NoError(t, err)

	acfg := httpapi.DefaultConfig()
	acfg.FSM, acfg.Cluster, acfg.Logs, acfg.Logger, acfg.Token = state, node, logs, logger, Token
	api, err := httpapi.New(acfg)
	require.NoError(t, err)
	h = api.Handler()

	n := &Node{Name: name, Dir: dir, URL: srv.URL, Cluster: node, FSM: state, Logs: logs, server: srv, raft: raftAddr}
	t.Cleanup(n.Stop)
	return n
}

// Stop shuts the node down gracefully (idempotent).
func (n *Node) Stop() {
	if n.stopped {
		return
	}
	n.stopped = true
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n.server.Close()
	n.Cluster.Shutdown(ctx)
	n.Logs.Close()
}

// Kill stops the node as a crash would: no leadership transfer.
func (n *Node) Kill() {
	if n.stopped {
		return
	}
	n.stopped = true
	n.server.CloseClientConnections()
	n.server.Close()
	n.Cluster.Kill()
	n.Logs.Close()
}

// Restart starts a stopped node again from its data dir and replaces it in
// c.Nodes.
func (c *Cluster) Restart(n *Node) *Node {
	c.t.Helper()
	m := c.StartNode(n.Name, n.Dir, n.raft, false)
	for i, x := range c.Nodes {
		if x == n {
			c.Nodes[i] = m
		}
	}
	return m
}

// Live returns the nodes that have not been stopped.
func (c *Cluster) Live() []*Node {
	var out []*Node
	for _, n := range c.Nodes {
		if !n.stopped {
			out = append(out, n)
		}
	}
	return out
}

// WaitLeader waits until a live node leads and every live node knows it.
func (c *Cluster) WaitLeader() *Node {
	c.t.Helper()
	var leader *Node
	require.Eventually(c.t, func() bool {
		leader = nil
		for _, n := range c.Live() {
			if n.Cluster.IsLeader() {
				leader = n
			}
		}
		if leader == nil {
			return false
		}
		for _, n := range c.Live() {
			if l := n.Cluster.Leader(); l == nil || l.ID != leader.Cluster.ID() || l.HTTPAddr == "" {
				return false
			}
		}
		return true
	}, 20*time.Second, 20*time.Millisecond, "no leader known to every live node")
	return leader
}

// Followers returns the live nodes that do not lead.
func (c *Cluster) Followers() []*Node {
	var out []*Node
	for _, n := range c.Live() {
		if !n.Cluster.IsLeader() {
			out = append(out, n)
		}
	}
	return out
}

// LoadInventory syncs inv through the first live node (ship-it) and waits
// until every live node has applied it.
func (c *Cluster) LoadInventory(inv fsm.Inventory) {
	c.t.Helper()
	_, err := c.Live()[0].Client().SyncInventory(context.Background(), inv, false, true)
	require.NoError(c.t, err)
	c.WaitConverged()
}

// WaitConverged waits until every live node has applied the leader's log.
func (c *Cluster) WaitConverged() {
	c.t.Helper()
	leader := c.WaitLeader()
	want := leader.FSM.AppliedIndex()
	for _, n := range c.Live() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := n.FSM.WaitApplied(ctx, want)
		cancel()
		require.NoError(c.t, err, "%s did not catch up to index %d", n.Name, want)
	}
}
