package cluster

import (
	"errors"

	"github.com/hashicorp/raft"

	"github.com/mozpool/mozpool/api"
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
	// ErrTransferTimeout is returned by TransferLeadership when the
	// target did not win its election in time (a busy machine, a slow
	// disk); the leader is unchanged and the call may be retried.
	ErrTransferTimeout = errors.New("leadership transfer did not complete in time")
)

// Suffrage values as reported in Status.
const (
	SuffrageVoter    = api.SuffrageVoter
	SuffrageNonvoter = api.SuffrageNonvoter
)

// The cluster's answers are served as they are by the HTTP API, so their
// shapes are defined once, in package api; these aliases keep the cluster
// names.
type (
	// Identity is what a node tells others about itself: its stable id,
	// its addresses and the imaging server and rack it serves.
	Identity = api.Identity
	// JoinResult says what a join did.
	JoinResult = api.JoinResult
	// ServerStatus is one server of the Raft configuration as seen by
	// this node.
	ServerStatus = api.ServerStatus
	// Status is a node's view of the cluster.
	Status = api.Status
)
