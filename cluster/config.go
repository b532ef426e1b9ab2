package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/mozpool/mozpool/fsm"
	"github.com/mozpool/mozpool/internal/tlsutil"
)

// Config configures a Node. Build it on DefaultConfig.
type Config struct {
	// DataDir holds the Raft log and stable store (raft-wal/, or raft.db
	// for data dirs created before it), snapshots and node-id. Required.
	DataDir string
	// RaftLog is the Raft log store of a new data dir: RaftLogWAL (the
	// default when empty) or RaftLogBolt. A data dir keeps the store it
	// was created with; naming another one is an error.
	RaftLog string
	// NodeID overrides the id persisted in DataDir/node-id. Normally
	// empty: a UUID is generated on first start and kept.
	NodeID string
	// Name is the imaging server this node serves (its fqdn in the
	// inventory). Required.
	Name string
	// Rack is the rack this imaging server serves. Optional.
	Rack string

	// RaftBind is the TCP address the Raft transport listens on
	// (host:port; port 0 picks a free port). Required.
	RaftBind string
	// RaftAdvertise is the address other nodes dial; empty means the
	// bound address, which must then not be a wildcard.
	RaftAdvertise string
	// GossipBind and GossipAdvertise are the same for memberlist (UDP and
	// TCP on one port).
	GossipBind      string
	GossipAdvertise string
	// HTTPAddr is this node's advertised API base URL. Required.
	HTTPAddr string
	// TFTPAddr is the address of this node's TFTP server (host:port), if
	// it runs one; boards of its rack fetch their PXE files there.
	TFTPAddr string
	// SyslogAddr is the address of this node's syslog receiver (UDP
	// host:port), if it runs one; boards of its rack log there.
	SyslogAddr string

	// Bootstrap makes this node found a new cluster if its data dir holds
	// no Raft state. Set it on the first node only, once.
	Bootstrap bool
	// Token authenticates cluster calls between nodes (forwarded writes,
	// join, remove, restore) and keys gossip encryption. Empty disables both.
	Token string

	// TLS, when set, secures the node's connections to others: the Raft
	// transport runs mutual TLS (a peer without a node certificate of the
	// cluster's CA cannot connect), forwarded calls go over HTTPS with
	// this node's certificate, and the internal endpoints refuse callers
	// without a node certificate. Nil: plain TCP and HTTP.
	TLS *tlsutil.Bundle

	// FSM is the replicated state machine. Required.
	FSM *fsm.FSM
	// LeaderTasks run while this node leads, one goroutine each, started
	// after the FSM has applied every earlier entry (Barrier) and stopped
	// (their context cancelled and waited for) when leadership is lost.
	LeaderTasks []func(ctx context.Context)
	// barrier, when set, replaces raft's Barrier (tests make it fail).
	barrier func(r *raft.Raft, timeout time.Duration) error
	// Logger is the parent logger. Default: null logger.
	Logger hclog.Logger

	// HeartbeatTimeout and ElectionTimeout bound failure detection. Default
	// 1 s each (tuned for a LAN, so a lost leader is replaced within a
	// couple of seconds).
	HeartbeatTimeout time.Duration
	ElectionTimeout  time.Duration
	// LeaderLeaseTimeout is how long the leader goes without contact with
	// a quorum before it steps down (so a leader cut off, or resumed after
	// a pause, stops taking writes it cannot commit). Default 500 ms; must
	// be ≤ HeartbeatTimeout.
	LeaderLeaseTimeout time.Duration
	// CommitTimeout is how long the leader waits without new entries before
	// it tells followers the commit index. Followers apply a committed
	// entry only when they learn of it, and a follower that forwarded a
	// write waits for that, so this bounds the extra latency of writes made
	// through a follower. Default 5 ms (raft's default is 50 ms); an idle
	// leader then sends each follower one small RPC every 5–10 ms.
	CommitTimeout time.Duration
	// ApplyTimeout bounds enqueueing one command on the leader, and (plus
	// 1 s) one forwarded call to it. Default 10 s. A forwarded call is
	// given up sooner when this node's Raft reports another leader or none,
	// one to two HeartbeatTimeouts after a hung leader went silent.
	ApplyTimeout time.Duration
	// ForwardHold is how long a write is held and retried while no leader
	// is known or calls to it are given up. Default 7 s.
	ForwardHold time.Duration
	// MaxVoters is the most voters the cluster keeps; further servers join
	// as non-voters. Default 5.
	MaxVoters int
	// SnapshotThreshold is the number of new log entries that makes a
	// snapshot due, and SnapshotInterval how often Raft checks (at a
	// random time between one and two intervals). A restarted node
	// restores its latest snapshot and replays the log after it, so the
	// two bound its catch-up: at most about SnapshotThreshold entries
	// plus two intervals of writes, and what it missed while down.
	// Defaults 16384 and 5 s (Applies wait only while the state of 10,000
	// devices is copied, a few milliseconds; it is encoded and written
	// alongside them).
	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	// TrailingLogs is the number of entries kept in the log after a
	// snapshot, so that a follower that fell behind by fewer catches up
	// from the log rather than by receiving the whole snapshot. Default
	// 10240.
	TrailingLogs uint64
	// RegisterInterval is how often a node checks that its entry in the
	// replicated server table is current. Default 5 s.
	RegisterInterval time.Duration
	// TakeoverAfter is how long the owner of a rack must be unreachable
	// (its Raft heartbeats failing and gossip not seeing it alive) before
	// the leader gives the rack to its first live standby. It is scaled by
	// the cluster's time scale, but never shorter than
	// MinTakeoverHeartbeats HeartbeatTimeouts, so that the lost owner has
	// stopped acting (ContactWindow) before a standby starts. Default
	// 60 s (longer than a relay operation may last, 30 s); negative:
	// racks are never taken over.
	TakeoverAfter time.Duration
}

// MinTakeoverHeartbeats is the shortest takeover time, in
// HeartbeatTimeouts: twice the contact window within which a cut-off
// owner still acts.
const MinTakeoverHeartbeats = 4

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{
		HeartbeatTimeout:   time.Second,
		ElectionTimeout:    time.Second,
		LeaderLeaseTimeout: 500 * time.Millisecond,
		CommitTimeout:      5 * time.Millisecond,
		ApplyTimeout:       10 * time.Second,
		ForwardHold:        7 * time.Second,
		MaxVoters:          5,
		SnapshotThreshold:  16384,
		SnapshotInterval:   5 * time.Second,
		TrailingLogs:       10240,
		RegisterInterval:   5 * time.Second,
		TakeoverAfter:      60 * time.Second,
	}
}

// Validate reports the first problem with the configuration.
func (c *Config) Validate() error {
	switch {
	case c.DataDir == "":
		return errors.New("cluster: data dir is required")
	case c.Name == "":
		return errors.New("cluster: imaging server name is required")
	case c.RaftBind == "":
		return errors.New("cluster: raft bind address is required")
	case c.GossipBind == "":
		return errors.New("cluster: gossip bind address is required")
	case c.HTTPAddr == "":
		return errors.New("cluster: http address is required")
	case c.FSM == nil:
		return errors.New("cluster: fsm is required")
	case c.RaftLog != "" && c.RaftLog != RaftLogWAL && c.RaftLog != RaftLogBolt:
		return fmt.Errorf("cluster: raft log store must be %q or %q, not %q", RaftLogWAL, RaftLogBolt, c.RaftLog)
	case c.LeaderLeaseTimeout > c.HeartbeatTimeout:
		return errors.New("cluster: leader lease timeout must not exceed heartbeat timeout")
	case c.ElectionTimeout < c.HeartbeatTimeout:
		return errors.New("cluster: election timeout must not be below heartbeat timeout")
	case c.MaxVoters < 1:
		return errors.New("cluster: max voters must be at least 1")
	case c.CommitTimeout < 5*time.Millisecond:
		return errors.New("cluster: commit timeout must be at least 5 ms")
	case c.SnapshotThreshold == 0 || c.SnapshotInterval <= 0:
		return errors.New("cluster: snapshot threshold and interval must be positive")
	case c.ForwardHold <= 0 || c.ApplyTimeout <= 0 || c.RegisterInterval <= 0:
		return errors.New("cluster: forward hold, apply timeout and register interval must be positive")
	}
	for _, a := range []string{c.RaftBind, c.RaftAdvertise, c.GossipBind, c.GossipAdvertise} {
		if a == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("cluster: address %q: %w", a, err)
		}
	}
	return nil
}
