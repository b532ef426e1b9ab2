// Package httpapi serves the Mozpool 4.x HTTP API and the cluster endpoints of
// one node.
//
// Reads are answered from the local FSM under its read lock and never wait on
// Raft. Writes build an fsm command and hand it to the Cluster, which stamps
// its time, proposes it (forwarding to the leader when this node follows) and
// returns the FSM's result. Paths under /_cluster/ belong to the cluster
// package, which authenticates them itself.
//
// Every route is listed once in routes.go. Handlers return (any, error); one
// adapter writes the JSON and one function, statusFor, maps errors to status
// codes. The package starts no goroutines of its own: everything runs on the
// net/http goroutine serving the request.
package httpapi
