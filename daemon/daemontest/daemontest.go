// Package daemontest starts whole Mozpool nodes (Raft, gossip, log store and
// the HTTP API on real loopback listeners, data in a temporary directory)
// for tests and benchmarks in other packages. Each node is a daemon.Daemon
// reached through the Go client, so the harness sits beside daemon, above
// every layer it starts.
package daemontest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/api"
	"github.com/mozpool/mozpool/client"
	"github.com/mozpool/mozpool/cluster"
	"github.com/mozpool/mozpool/daemon"
	"github.com/mozpool/mozpool/fsm"
	"github.com/mozpool/mozpool/internal/testlog"
	"github.com/mozpool/mozpool/internal/tlsutil"
	"github.com/mozpool/mozpool/logstore"
)

// Token is the cluster token every test node shares.
const Token = "daemontest-token"

// Node is one running node (a whole daemon).
type Node struct {
	Name    string
	Dir     string
	URL     string
	Daemon  *daemon.Daemon
	Cluster *cluster.Node
	FSM     *fsm.FSM
	Logs    *logstore.Store
	raft    string
	gossip  string
	stopped bool
	hc      *http.Client
}

// Client returns an API client for this node, with the cluster token (and
// trusting the cluster's CA when it runs TLS).
func (n *Node) Client() *client.Client {
	if n.hc == nil {
		return client.New(n.URL, client.WithToken(Token))
	}
	return client.New(n.URL, client.WithToken(Token), client.WithHTTPClient(n.hc))
}

// Options tune the nodes of a test cluster.
type Options struct {
	// TimeScale is proposed as the cluster's time scale (0: real time).
	TimeScale float64
	// PingPort and SUTPort are the boards' ports (the simulator's); ping
	// runs in TCP mode. Zero, the default, picks a port with FreePort;
	// Cluster.PingPort and SUTPort return the ports in use, for the
	// simulator's configuration.
	PingPort, SUTPort int
	// RaftTimeout is the nodes' Raft heartbeat and election timeout.
	// Zero, the default, is 500 ms: longer than the daemon's default, so a
	// machine busy with parallel tests does not trigger elections.
	RaftTimeout time.Duration
	// PlainHTTP runs the nodes without TLS. By default they run TLS with
	// certificates of the test process's CA (CACert, HTTPClient,
	// ClientTLS), as deployed nodes do.
	PlainHTTP bool
	// Configure, if set, adjusts each node's configuration before it
	// starts (and restarts), after the harness has filled it in.
	Configure func(cfg *daemon.Config)
}

// Cluster is a set of nodes started by New.
type Cluster struct {
	t     testing.TB
	opts  Options
	Nodes []*Node
}

// HTTPClient is an HTTP client for the cluster's nodes (trusting the
// test CA unless the cluster runs plain HTTP).
func (c *Cluster) HTTPClient() *http.Client {
	if c.opts.PlainHTTP {
		return http.DefaultClient
	}
	return HTTPClient()
}

// The test process's CA, made on first use, signs every test node's
// certificate.
var testCA struct {
	once      sync.Once
	cert, key []byte
	pool      *x509.CertPool
	client    *http.Client
	err       error
}

func ca() error {
	testCA.once.Do(func() {
		testCA.cert, testCA.key, testCA.err = tlsutil.CreateCA("daemontest CA", 24*time.Hour)
		if testCA.err != nil {
			return
		}
		testCA.pool = x509.NewCertPool()
		testCA.pool.AppendCertsFromPEM(testCA.cert)
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: testCA.pool, MinVersion: tls.VersionTLS12}
		testCA.client = &http.Client{Transport: tr}
	})
	return testCA.err
}

// CACert is the PEM certificate of the CA of every TLS test node.
func CACert() []byte {
	if err := ca(); err != nil {
		panic(err)
	}
	return testCA.cert
}

// ClientTLS is a client TLS configuration that trusts the test CA.
func ClientTLS() *tls.Config {
	if err := ca(); err != nil {
		panic(err)
	}
	return &tls.Config{RootCAs: testCA.pool, MinVersion: tls.VersionTLS12}
}

// HTTPClient is a shared HTTP client that trusts the test CA.
func HTTPClient() *http.Client {
	if err := ca(); err != nil {
		panic(err)
	}
	return testCA.client
}

// CAFile writes the test CA's certificate in a temporary directory of tb
// and returns its path (for programs that take a file: mozpoolctl).
func CAFile(tb testing.TB) string {
	tb.Helper()
	p := filepath.Join(tb.TempDir(), "ca.pem")
	require.NoError(tb, os.WriteFile(p, CACert(), 0o600))
	return p
}

// tlsFiles writes the CA and a certificate for node under dir/tls (once:
// a restarted node keeps its certificate) and names the files.
func tlsFiles(tb testing.TB, dir, node string) tlsutil.Files {
	tb.Helper()
	require.NoError(tb, ca())
	d := filepath.Join(dir, "tls")
	f := tlsutil.Files{CA: filepath.Join(d, "ca.pem"), Cert: filepath.Join(d, node+".pem"), Key: filepath.Join(d, node+"-key.pem")}
	if _, err := os.Stat(f.Cert); err == nil {
		return f
	}
	require.NoError(tb, os.MkdirAll(d, 0o700))
	cert, key, err := tlsutil.CreateNodeCert(testCA.cert, testCA.key, node, nil, nil, 24*time.Hour)
	require.NoError(tb, err)
	require.NoError(tb, os.WriteFile(f.CA, testCA.cert, 0o600))
	require.NoError(tb, os.WriteFile(f.Key, key, 0o600))
	require.NoError(tb, os.WriteFile(f.Cert, cert, 0o600))
	return f
}

// PingPort is the boards' ping port the nodes use (TCP mode).
func (c *Cluster) PingPort() int { return c.opts.PingPort }

// SUTPort is the boards' SUT agent port the nodes use.
func (c *Cluster) SUTPort() int { return c.opts.SUTPort }

// FreePort returns a TCP port that stays reserved until the test ends: it
// listens on 127.0.0.1:0 and keeps that listener open meanwhile. No other
// listener on 127.0.0.1 or on every address (another test run's FreePort,
// any program's :0) gets the port while it is held, yet simulated boards
// may listen on it at their own addresses (127.N.x.y): a listener on one
// loopback address does not block the same port on another. Use it for
// the boards' ping and SUT ports (and anything else the test binds by
// number): two test runs whose boards answer on different ports cannot
// answer each other's pings, whatever addresses their boards have.
func FreePort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(tb, err)
	tb.Cleanup(func() { ln.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

// LoopbackNets returns n distinct second octets N for simulated labs'
// loopback networks (boards at 127.N.x.y, as sim.GenerateOptions.BoardNet
// and RelayNet take them), drawn at random from 10..249: 127.0 holds
// 127.0.0.1, and 127.1 and 127.2 are the sample lab's (lab/lab.json, which
// `make run` simulates). Concurrent test runs thus seldom give their boards
// the same addresses; when they do, their FreePort ports keep them apart,
// and sim.Lab.Start fails with sim.ErrAddrInUse rather than leave a board
// unable to answer.
func LoopbackNets(n int) []int {
	if n > 240 {
		panic("daemontest: at most 240 loopback networks")
	}
	nets := rand.Perm(240)[:n:n]
	for i := range nets {
		nets[i] += 10
	}
	return nets
}

// New starts size nodes named mobile-imaging-001…: the first bootstraps, the
// others join through it over HTTP. Each runs its TFTP server on loopback
// and pings in TCP mode, on the boards' ports of opts (each picked with
// FreePort when zero). It returns once every node knows the leader.
// Nodes are stopped when the test ends.
func New(t testing.TB, size int, opts ...Options) *Cluster {
	t.Helper()
	c := &Cluster{t: t}
	if len(opts) > 0 {
		c.opts = opts[0]
	}
	if c.opts.PingPort == 0 {
		c.opts.PingPort = FreePort(t)
	}
	if c.opts.SUTPort == 0 {
		c.opts.SUTPort = FreePort(t)
	}
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
	c.t.Helper()
	return c.startNode(name, dir, raftAddr, "127.0.0.1:0", "127.0.0.1:0", bootstrap)
}

func (c *Cluster) startNode(name, dir, raftAddr, gossipAddr, httpAddr string, bootstrap bool) *Node {
	t := c.t
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	if raftAddr == "" {
		// Raft binds a port of its own choosing, so no other test can
		// take it between a probe and the bind; a restart reuses it.
		raftAddr = "127.0.0.1:0"
	}
	n, err := c.tryStartNode(name, dir, raftAddr, gossipAddr, httpAddr, bootstrap)
	require.NoError(t, err)
	return n
}

func (c *Cluster) tryStartNode(name, dir, raftAddr, gossipAddr, httpAddr string, bootstrap bool) (*Node, error) {
	t := c.t
	cfg := daemon.DefaultConfig()
	cfg.DataDir, cfg.Name, cfg.Rack = dir, name, "rack-"+name
	cfg.HTTPBind, cfg.RaftBind, cfg.GossipBind, cfg.TFTPAddr = httpAddr, raftAddr, gossipAddr, "127.0.0.1:0"
	cfg.SyslogAddr = "127.0.0.1:0"
	cfg.Bootstrap, cfg.Token, cfg.Logger = bootstrap, Token, testlog.New(t).Named(name)
	cfg.RaftTimeout = 500 * time.Millisecond
	if c.opts.RaftTimeout > 0 {
		cfg.RaftTimeout = c.opts.RaftTimeout
	}
	cfg.PingMode, cfg.TimeScale = "tcp", c.opts.TimeScale
	cfg.PingPort, cfg.SUTPort = c.opts.PingPort, c.opts.SUTPort
	if !c.opts.PlainHTTP {
		cfg.TLS = tlsFiles(t, dir, name)
	}
	if c.opts.Configure != nil {
		c.opts.Configure(&cfg)
	}
	d, err := daemon.Start(cfg)
	if err != nil {
		return nil, err
	}
	n := &Node{Name: name, Dir: dir, URL: d.URL, Daemon: d, Cluster: d.Node, FSM: d.FSM, Logs: d.Logs,
		raft: d.Node.Self().RaftAddr, gossip: d.Node.Self().GossipAddr, hc: c.HTTPClient()}
	t.Cleanup(n.Stop)
	return n, nil
}

// Stop shuts the node down gracefully (idempotent).
func (n *Node) Stop() {
	if n.stopped {
		return
	}
	n.stopped = true
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	n.Daemon.Shutdown(ctx)
}

// Kill stops the node as a crash would: no leadership transfer.
func (n *Node) Kill() {
	if n.stopped {
		return
	}
	n.stopped = true
	n.Daemon.Kill()
}

// Restart starts a stopped node again from its data dir and replaces it in
// c.Nodes.
func (c *Cluster) Restart(n *Node) *Node {
	c.t.Helper()
	// The same Raft, gossip and HTTP addresses, as a restarted server
	// would have (a new gossip port makes memberlist report a conflict,
	// and peers would forward to the old HTTP port until they learn the
	// new one).
	m := c.startNode(n.Name, n.Dir, n.raft, n.gossip, strings.TrimPrefix(strings.TrimPrefix(n.URL, "http://"), "https://"), false)
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
func (c *Cluster) LoadInventory(inv api.Inventory) {
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
