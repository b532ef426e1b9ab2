// Package cluster runs one imaging server's membership in the Raft group: the
// bolt log and stable store, file snapshots and TCP transport in the node's
// data directory, memberlist gossip for discovery, failure detection and node
// metadata, join and remove, and the forwarding of writes to the leader.
//
// Goroutines: New starts memberlist (owned by memberlist, stopped by
// Shutdown) and three loops tracked by the node's WaitGroup, all of which
// exit when Shutdown closes shutdownCh: observe (turns Raft observations into
// leadership changes and peer health), register (keeps this node's entry in
// the replicated server table current) and rejoinGossip (re-joins gossip
// peers listed in the replicated state, since memberlist never rediscovers a
// node after a long partition).
//
// Writes: Apply proposes on the leader; on a follower it forwards the encoded
// command to the leader's /_cluster/apply endpoint (one hop, authenticated by
// the cluster token) and, while no leader is known, holds and retries for up
// to Config.ForwardHold before returning ErrNoLeader.
package cluster
