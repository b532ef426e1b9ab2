package api

import "time"

// Version answers /api/version/.
type Version struct {
	Version string `json:"version"`
}

// Suffrage values of ServerStatus and JoinResult.
const (
	SuffrageVoter    = "voter"
	SuffrageNonvoter = "nonvoter"
)

// Identity is what a node tells others about itself: its stable id, its
// addresses and the imaging server and rack it serves. It answers
// /api/cluster/self/ and is the body of /api/cluster/join/ (cluster token
// required).
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

// JoinReply answers /api/cluster/join/.
type JoinReply struct {
	Result JoinResult `json:"result"`
}

// Remove is the body of /api/cluster/remove/ (cluster token required): the
// id of the node to take out of the cluster.
type Remove struct {
	ID string `json:"id"`
}

// ServerStatus is one server of the Raft configuration as seen by a node.
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
	// LastContactMS is the time since the node was last heard from, when
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

// ClusterStatus answers /api/cluster/status/: the node's view of the
// cluster plus device counts from its replica.
type ClusterStatus struct {
	Status
	// DevicesByState counts devices per lifeguard state.
	DevicesByState map[string]int `json:"devices_by_state"`
	// DevicesByRack counts devices per rack, then per state; the rack of
	// a device is that of its imaging server ("" when unknown).
	DevicesByRack map[string]map[string]int `json:"devices_by_rack"`
	// SuspectRelayBoards are the relay boards suspected of a shared fault,
	// by address.
	SuspectRelayBoards []SuspectRelayBoard `json:"suspect_relay_boards"`
	// SuspectTFTPServers are the imaging servers whose PXE/TFTP is
	// suspected of a shared fault (several of their boards could not
	// fetch their PXE file), by name.
	SuspectTFTPServers []SuspectTFTPServer `json:"suspect_tftp_servers"`
}

// SuspectTFTPServer is an imaging server several of whose boards could
// not fetch their PXE file within a short time.
type SuspectTFTPServer struct {
	// Server is the imaging server's name.
	Server string `json:"server"`
	// Kind is the failure the boards shared ("pxe_fetch").
	Kind string `json:"kind"`
	// Since is when its PXE/TFTP became suspect (wire time format).
	Since string `json:"since"`
	// Devices are the boards whose recent failures made it suspect.
	Devices []string `json:"devices"`
}

// SuspectRelayBoard is a relay board behind which several boards failed
// the same way within a short time.
type SuspectRelayBoard struct {
	// Addr is host:port (or host) as in the devices' relay_info.
	Addr string `json:"addr"`
	// Kind is the failure the boards shared (the state they failed in).
	Kind string `json:"kind"`
	// Since is when the relay board became suspect (wire time format).
	Since string `json:"since"`
	// Devices are the boards whose recent failures made it suspect.
	Devices []string `json:"devices"`
}

// Health answers /api/cluster/health: 200 with OK, Node and AppliedIndex
// when the node knows a leader and is caught up, else 503 with Error. Its
// keys are in sorted order.
type Health struct {
	AppliedIndex uint64 `json:"applied_index,omitempty"`
	Error        string `json:"error,omitempty"`
	Node         string `json:"node,omitempty"`
	OK           bool   `json:"ok"`
}

// RestoreReply answers /api/cluster/restore/, whose body is a backup as
// /api/cluster/backup/ serves it (application/octet-stream, with
// HeaderSnapshotIndex and HeaderSnapshotTerm).
type RestoreReply struct {
	RestoredBytes int `json:"restored_bytes"`
}

// TransferLeader is the body of POST /api/cluster/transfer-leader/: the
// node id to hand leadership to ("" or absent: the most up-to-date voter).
type TransferLeader struct {
	ID string `json:"id,omitempty"`
}
