package cluster

import (
	"errors"
	"time"

	"github.com/hashicorp/raft"
)

var (
	// ErrNoLeader is returned when no leader became known within the
	// forwarding hold window. The HTTP layer answers 503 + Retry-After.
	ErrNoLeader = errors.New("no cluster leader")
	// ErrNotLeader is raft's error for an operation that needs the leader.
	ErrNotLeader = raft.ErrNotLeader
	// ErrUnauthorized is returned when a cluster call lacks the cluster token.
	ErrUnauthorized = errors.New("bad or missing cluster token")
	// ErrUnknownNode is returned by Remove for an id not in the configuration.
	ErrUnknownNode = errors.New("unknown node")
	// ErrBadJoin is returned when a join request is missing its id or addresses.
	ErrBadJoin = errors.New("join needs id, raft address and http address")
	// ErrBadBackup is returned by Restore for data that is not a backup.
	ErrBadBackup = errors.New("bad backup")
	// ErrShutdown is returned after Shutdown.
	ErrShutdown = errors.New("node is shut down")
)

// Suffrage values as reported in Status.
const (
	SuffrageVoter    = "voter"
	SuffrageNonvoter = "nonvoter"
)

// Identity is what a node tells others about itself: its stable id, its
// addresses and the imaging server and rack it serves.
type Identity struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Rack     string `json:"rack,omitempty"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr"` // base URL, e.g. http://10.0.0.5:8010
	// GossipAddr is the memberlist address (host:port).
	GossipAddr string `json:"gossip_addr,omitempty"`
	// TFTPAddr is where the node serves network boot files, if it does.
	TFTPAddr string `json:"tftp_addr,omitempty"`
	// SyslogAddr is where the node receives its boards' syslog (UDP
	// host:port), if it does.
	SyslogAddr string `json:"syslog_addr,omitempty"`
}

// JoinResult says what a join did.
type JoinResult struct {
	// Action is "added", "replaced" (a stale entry with the same id or
	// address was removed first) or "unchanged" (already a member).
	Action   string `json:"action"`
	Suffrage string `json:"suffrage"`
}

// ServerStatus is one server of the Raft configuration as seen by this node.
type ServerStatus struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Rack     string `json:"rack,omitempty"`
	Suffrage string `json:"suffrage"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr"`
	TFTPAddr string `json:"tftp_addr,omitempty"`
	// SyslogAddr is where the node receives its boards' syslog, if it does.
	SyslogAddr string `json:"syslog_addr,omitempty"`
	Leader     bool   `json:"leader"`
	// Healthy is false when gossip reports the node suspect or dead, or
	// (seen from the leader) Raft heartbeats to it fail.
	Healthy bool `json:"healthy"`
	// LastContact is the time since the node was last heard from, when
	// known (milliseconds).
	LastContactMS *int64 `json:"last_contact_ms,omitempty"`
	Gossip        string `json:"gossip"` // alive, suspect, dead, left, unknown
}

// Status is a node's view of the cluster.
type Status struct {
	Node         Identity       `json:"node"`
	State        string         `json:"state"` // Leader, Follower, Candidate, Shutdown
	Leader       *Identity      `json:"leader"`
	Term         uint64         `json:"term"`
	CommitIndex  uint64         `json:"commit_index"`
	AppliedIndex uint64         `json:"applied_index"`
	LastLogIndex uint64         `json:"last_log_index"`
	Servers      []ServerStatus `json:"servers"`
	// FailureTolerance is how many more voters may fail before the
	// cluster loses quorum: (voters-1)/2 minus unhealthy voters.
	FailureTolerance int       `json:"failure_tolerance"`
	Time             time.Time `json:"time"`
}
