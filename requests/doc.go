// Package requests is the Mozpool layer: the request state machine (a pure
// table run by fsm.Apply, like lifeguard's device machine) and the driver
// of request timers.
//
// Boards are assigned by the queue inside fsm.Apply (fsm/queue.go), never
// by a timer. Request timers — the end of a queued request's max_wait,
// pending polls, expiry and the compaction of old requests — run only on
// the Raft leader: the Driver is
// started by the cluster's leader loop for each term of leadership, rebuilds
// its timers from the replicated state, and proposes RequestTimeout,
// RequestExpire and RequestCompact through the log. When leadership moves,
// the next leader does the same from the same state, so no timer is lost.
package requests
