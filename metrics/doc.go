// Package metrics is a node's Prometheus instrumentation, served at
// /metrics in the text exposition format by client_golang.
//
// A Metrics holds the node's own registry: HTTP requests by route pattern,
// hardware (BMM) operations, imaging durations, device failures, and
// collectors that read the replicated state, the Raft node, the relay
// queue and the log store when scraped. Raft's own timings (commit, apply,
// last contact, leadership) come from hashicorp/raft's go-metrics calls,
// bridged once per process by go-metrics' Prometheus sink and renamed to
// Prometheus conventions (RaftGatherer); a process runs one node, so the
// bridge is process-wide.
//
// Every name starts with mozpool_, counters end in _total, durations are
// in seconds, and labels take bounded values only (states, imaging
// servers, images, hardware types, route patterns), never a device name or
// a request id. docs/operations.md#monitoring lists them.
package metrics
