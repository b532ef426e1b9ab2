package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"

	"github.com/mozpool/mozpool/fsm"
	"github.com/mozpool/mozpool/internal/tlsutil"
)

// Node is one imaging server's membership in the cluster.
type Node struct {
	cfg    Config
	logger hclog.Logger
	id     string
	self   Identity

	raft      *raft.Raft
	transport *raft.NetworkTransport
	store     raftStore
	logs      raft.LogStore // the store above behind a cache
	snaps     *raft.FileSnapshotStore
	ml        *memberlist.Memberlist
	health    *peerHealth
	client    *http.Client

	// leaderMu guards leaderID, this node's last seen view of the leader,
	// and leaderChg, closed (and replaced) when that view changes, so a
	// forwarded call can give up on a leader this node no longer follows.
	leaderMu  sync.Mutex
	leaderID  string
	leaderChg chan struct{}

	// serving latches once the node has caught up after its start; see
	// Serving.
	serving atomic.Bool
	// joinIndex is the leader's commit index as this node asked it after
	// its start (0: not yet known); Serving waits until it is applied.
	joinIndex atomic.Uint64
	// forwarded holds, per command type, the highest log index at which a
	// write this node forwarded was committed (see Propose).
	forwarded [256]atomic.Uint64

	shutdownCh   chan struct{}
	shutdownOnce sync.Once
	shutdownErr  error
	wg           sync.WaitGroup
}

// maxForwardConns bounds the connections a node opens to one other node
// for forwarded calls. Without a bound a burst of writes (every board of a
// 10,000-board lab reporting at once after a restart) opens one connection
// each, thousands at a time, until the process runs out of file
// descriptors and Raft's own connections start failing. With it, a burst
// waits for a connection (within its context's deadline) and reuses it.
const maxForwardConns = 64

// forwardTransport is the HTTP transport of forwarded calls (over TLS with
// this node's certificate when b is set).
func forwardTransport(b *tlsutil.Bundle) *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if b != nil {
		tr.TLSClientConfig = b.ClientConfig()
	}
	tr.MaxConnsPerHost = maxForwardConns
	tr.MaxIdleConnsPerHost = maxForwardConns
	return tr
}

// New opens (or creates) the node's Raft state in cfg.DataDir, starts the
// transport, Raft and gossip, bootstraps a new cluster when cfg.Bootstrap is
// set and there is no state yet, and starts the node's loops.
func New(cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("cluster: data dir: %w", err)
	}
	id, err := loadNodeID(cfg.DataDir, cfg.NodeID)
	if err != nil {
		return nil, err
	}
	n := &Node{
		cfg:        cfg,
		logger:     cfg.Logger.Named("cluster"),
		id:         id,
		health:     newPeerHealth(),
		client:     &http.Client{Timeout: cfg.ApplyTimeout + 2*time.Second, Transport: forwardTransport(cfg.TLS)},
		leaderChg:  make(chan struct{}),
		shutdownCh: make(chan struct{}),
	}
	if err := n.openRaft(); err != nil {
		n.closeStores()
		return nil, err
	}
	if err := n.openGossip(); err != nil {
		n.raft.Shutdown().Error()
		n.closeStores()
		return nil, err
	}
	n.self = Identity{
		ID: id, Name: cfg.Name, Rack: cfg.Rack,
		RaftAddr: string(n.transport.LocalAddr()), HTTPAddr: cfg.HTTPAddr,
		GossipAddr: n.gossipAddr(), TFTPAddr: cfg.TFTPAddr, SyslogAddr: cfg.SyslogAddr,
	}
	n.ml.UpdateNode(time.Second) // publish metadata now that it is complete

	// Each loop exits when Shutdown closes shutdownCh.
	n.wg.Add(5)
	go n.observe()
	go n.watchLeader()
	go n.register()
	go n.rejoinGossip()
	go n.watchServing()
	return n, nil
}

// loadNodeID returns the id persisted in dir/node-id, creating it (from
// override or a new UUID) on first start. An override that disagrees with
// the persisted id is an error: the id must be stable for the data dir.
func loadNodeID(dir, override string) (string, error) {
	path := filepath.Join(dir, "node-id")
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		id := strings.TrimSpace(string(b))
		if override != "" && override != id {
			return "", fmt.Errorf("cluster: data dir belongs to node %q, not %q", id, override)
		}
		return id, nil
	case !errors.Is(err, os.ErrNotExist):
		return "", fmt.Errorf("cluster: read node id: %w", err)
	}
	id := override
	if id == "" {
		id = uuid.NewString()
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(id+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("cluster: write node id: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("cluster: write node id: %w", err)
	}
	return id, nil
}

func (n *Node) openRaft() error {
	cfg := n.cfg
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(n.id)
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	rc.CommitTimeout = cfg.CommitTimeout
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.SnapshotInterval = cfg.SnapshotInterval
	rc.TrailingLogs = cfg.TrailingLogs
	rc.NoLegacyTelemetry = true
	rc.Logger = cfg.Logger.Named("raft")

	store, kind, err := openRaftStore(cfg.DataDir, cfg.RaftLog, cfg.Logger)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	n.store = store
	n.logger.Debug("raft log store", "kind", kind)
	logs, err := raft.NewLogCache(512, store)
	if err != nil {
		return fmt.Errorf("cluster: log cache: %w", err)
	}
	n.logs = logs
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.DataDir, 2, cfg.Logger.Named("snapshot"))
	if err != nil {
		return fmt.Errorf("cluster: snapshot store: %w", err)
	}
	n.snaps = snaps

	var adv net.Addr
	if cfg.RaftAdvertise != "" {
		if adv, err = net.ResolveTCPAddr("tcp", cfg.RaftAdvertise); err != nil {
			return fmt.Errorf("cluster: raft advertise address: %w", err)
		}
	}
	// MaxRPCsInFlight 1 turns pipelined replication off. With raft's
	// default (2) the pipeline's channels are unbuffered, and a follower
	// that answers an append with failure while the leader sends again can
	// park the replication goroutine forever: that follower then gets
	// heartbeats but no entries, and raft.Shutdown waits on the goroutine
	// for ever (seen here when a leader handed off leadership under load).
	// Synchronous replication still batches entries; raft's own
	// measurements found pipelining of little benefit with batching.
	var tr *raft.NetworkTransport
	if cfg.TLS != nil {
		tr, err = newTLSTransport(cfg.RaftBind, adv, cfg.TLS, cfg.Logger.Named("raft.transport"))
	} else {
		tr, err = raft.NewTCPTransportWithConfig(cfg.RaftBind, adv, &raft.NetworkTransportConfig{
			MaxPool: 3, Timeout: 10 * time.Second, MaxRPCsInFlight: 1, Logger: cfg.Logger.Named("raft.transport"),
		})
	}
	if err != nil {
		return fmt.Errorf("cluster: raft transport: %w", err)
	}
	n.transport = tr

	existing, err := raft.HasExistingState(logs, store, snaps)
	if err != nil {
		return fmt.Errorf("cluster: inspect raft state: %w", err)
	}
	r, err := raft.NewRaft(rc, cfg.FSM, logs, store, snaps, tr)
	if err != nil {
		return fmt.Errorf("cluster: start raft: %w", err)
	}
	n.raft = r
	if cfg.Bootstrap && !existing {
		boot := raft.Configuration{Servers: []raft.Server{{
			ID: rc.LocalID, Address: tr.LocalAddr(), Suffrage: raft.Voter,
		}}}
		err := r.BootstrapCluster(boot).Error()
		if err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			return fmt.Errorf("cluster: bootstrap: %w", err)
		}
		n.logger.Info("bootstrapped a new cluster", "id", n.id)
	} else if cfg.Bootstrap {
		n.logger.Info("bootstrap requested but raft state exists; starting from it")
	}
	return nil
}

// ID is this node's stable id.
func (n *Node) ID() string { return n.id }

// Self is this node's identity.
func (n *Node) Self() Identity { return n.self }

// IsLeader reports whether this node is the Raft leader.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// Leader returns the leader's identity, or nil when none is known.
func (n *Node) Leader() *Identity {
	_, id := n.raft.LeaderWithID()
	if id == "" {
		return nil
	}
	return n.identityOf(string(id))
}

// watchLeader keeps leaderID current and signals every change of it: on
// each of Raft's leader observations, and every quarter heartbeat timeout in
// case an observation was dropped.
func (n *Node) watchLeader() {
	defer n.wg.Done()
	ch := make(chan raft.Observation, 16)
	obs := raft.NewObserver(ch, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	n.raft.RegisterObserver(obs)
	defer n.raft.DeregisterObserver(obs)
	t := time.NewTicker(max(n.cfg.HeartbeatTimeout/4, 10*time.Millisecond))
	defer t.Stop()
	for {
		_, id := n.raft.LeaderWithID()
		n.leaderMu.Lock()
		if string(id) != n.leaderID {
			n.leaderID = string(id)
			close(n.leaderChg)
			n.leaderChg = make(chan struct{})
		}
		n.leaderMu.Unlock()
		select {
		case <-n.shutdownCh:
			return
		case <-ch:
		case <-t.C:
		}
	}
}

// leaderChanged returns a channel that is closed at the next change of the
// leader this node sees.
func (n *Node) leaderChanged() <-chan struct{} {
	n.leaderMu.Lock()
	defer n.leaderMu.Unlock()
	return n.leaderChg
}

// WaitForLeader blocks until a leader is known or ctx is done.
func (n *Node) WaitForLeader(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		if l := n.Leader(); l != nil && l.HTTPAddr != "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-n.shutdownCh:
			return ErrShutdown
		case <-t.C:
		}
	}
}

// Shutdown stops the node: if it leads, it first transfers leadership so the
// cluster does not wait for an election; then it leaves gossip, stops its
// loops, shuts Raft down and closes the transport and the stores. It does not
// remove the node from the cluster (a restart is not a decommission). It can
// be called more than once; it returns ctx.Err() if ctx ends first.
func (n *Node) Shutdown(ctx context.Context) error {
	n.shutdownOnce.Do(func() {
		done := make(chan error, 1)
		// Exits when the shutdown steps finish (after ctx, if it ends
		// first: only this call stops waiting for them).
		go func() { done <- n.shutdown() }()
		select {
		case n.shutdownErr = <-done:
		case <-ctx.Done():
			n.shutdownErr = ctx.Err()
		}
	})
	return n.shutdownErr
}

// HandOff transfers leadership to another voter when this node leads and
// another voter exists; it does nothing otherwise. A server about to stop
// calls it first, while it still serves forwarded calls (answering them
// "not leader" so their senders retry toward the new leader at once), so
// writers lose only the transfer itself rather than a heartbeat timeout.
// Shutdown calls it too.
func (n *Node) HandOff() {
	if !n.IsLeader() || !n.hasOtherVoters() {
		return
	}
	if err := n.raft.LeadershipTransfer().Error(); err != nil {
		n.logger.Warn("leadership transfer before shutdown failed", "error", err)
	} else {
		n.logger.Info("transferred leadership before shutdown")
	}
}

func (n *Node) shutdown() error {
	n.HandOff()
	close(n.shutdownCh)
	if err := n.ml.Leave(time.Second); err != nil {
		n.logger.Debug("gossip leave", "error", err)
	}
	n.ml.Shutdown()
	err := n.raft.Shutdown().Error()
	n.wg.Wait()
	n.closeStores()
	return err
}

// Kill stops the node abruptly, as a crash would: no leadership transfer,
// no gossip leave. Fault-injection tests use it to lose a server.
func (n *Node) Kill() {
	n.shutdownOnce.Do(func() {
		close(n.shutdownCh)
		n.transport.Close()
		n.ml.Shutdown()
		n.raft.Shutdown().Error()
		n.wg.Wait()
		n.closeStores()
	})
}

func (n *Node) closeStores() {
	if n.transport != nil {
		n.transport.Close()
	}
	if n.store != nil {
		n.store.Close()
	}
}

func (n *Node) hasOtherVoters() bool {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == raft.Voter && string(s.ID) != n.id {
			return true
		}
	}
	return false
}

// identityOf finds a node's identity from gossip metadata, falling back to
// the replicated server table.
func (n *Node) identityOf(id string) *Identity {
	if id == n.id {
		s := n.self
		return &s
	}
	if ident := n.gossipIdentity(id); ident != nil {
		return ident
	}
	var out *Identity
	n.cfg.FSM.Read(func(s *fsm.State) {
		if srv := s.ServerByNode(id); srv != nil {
			out = &Identity{ID: id, Name: srv.Name, Rack: srv.Rack, RaftAddr: srv.RaftAddr, HTTPAddr: srv.HTTPAddr, GossipAddr: srv.GossipAddr, TFTPAddr: srv.TFTPAddr, SyslogAddr: srv.SyslogAddr}
		}
	})
	if out == nil {
		out = &Identity{ID: id}
		if addr, lid := n.raft.LeaderWithID(); string(lid) == id {
			out.RaftAddr = string(addr)
		}
	}
	return out
}
