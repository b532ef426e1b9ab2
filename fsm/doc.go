// Package fsm holds the replicated state of a Mozpool cluster: imaging servers,
// hardware types, images, PXE configs, the image→PXE-config mapping, devices,
// requests, claims and relay boards.
//
// Every change arrives as a command (a type byte followed by JSON) committed to
// the Raft log and applied by FSM.Apply on every node in log order. Apply is
// deterministic: it never reads the clock, draws random numbers or does I/O.
// The proposer stamps the UTC time into each command; ids come from counters
// kept in the state. High-volume data (device and request logs) is not kept
// here: appliers emit log entries through Config.Notify and the node files
// them in its own log store, so snapshots stay small.
//
// Reads from outside Raft (the HTTP API) take a read lock through FSM.Read and
// never wait on the log.
package fsm
