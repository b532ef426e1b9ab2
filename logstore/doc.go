// Package logstore keeps a node's device and request logs in a local bbolt
// file, outside the Raft snapshot.
//
// Log lines are high-volume and only ever appended, so they do not belong in
// the replicated state. Every node applies the same Raft log, and the FSM
// hands the lines each command produced to fsm.Config.Notify; the node passes
// them to Store.Append, so every node's store ends up with the same lines
// (with store-local ids).
//
// Goroutines: Open starts two, both owned by the Store and stopped by Close.
// The writer takes what Append queued and commits it in batches, many
// entries per bolt transaction, so Append (called on the FSM's apply
// goroutine) costs a channel send rather than an fsync. The pruner deletes
// entries older than Config.Retention once per Config.PruneInterval. Query,
// Prune and DeleteName run on the caller's goroutine.
//
// Layout: one top-level bucket per kind ("device", "request"), one nested
// bucket per device or request name, and in it one key per entry:
// big-endian At (unix nanoseconds, sign bit flipped so that order holds
// before 1970) followed by the big-endian entry id. Keys therefore sort by
// time, and a time range is a cursor seek.
package logstore
