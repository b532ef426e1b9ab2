// Package client is a small Go client for the Mozpool HTTP API served by every
// mozpoold node: devices, requests (create, status, renew, return), images,
// PXE configs, inventory sync and the cluster endpoints (status, health,
// join, remove).
//
// The bodies it sends and the answers it returns are the types of package
// api, which the server answers with too; the client depends on nothing but
// api and the standard library (a test checks that it links no Raft, gossip
// or storage code).
//
// Any node can be addressed; reads are answered from that node's replica and
// writes are forwarded to the leader server-side, so the client never follows
// leader redirects. Every method takes a context first and is bounded by the
// client's timeout (WithTimeout, 30s by default). A non-2xx answer is returned
// as an *Error carrying the HTTP status and the server's message:
//
//	var e *client.Error
//	if errors.As(err, &e) && e.Status == http.StatusNotFound { … }
//
// Reads never go back in time: the client remembers the highest
// X-Mozpool-Index it has seen and sends it as X-Mozpool-Min-Index, so a node
// answers only once it has applied what the client saw or wrote. Clients of
// different nodes share that memory with WithIndex (write through one node,
// read through another); WithoutMinIndex turns it off and WithStale reads a
// node's state as it is, even before it has caught up. A read answered 503
// with Retry-After (a node catching up, an index not reached in time) is
// retried a few times (WithRetries); a write is not.
//
// Writes that must survive a retry can carry an idempotency key through the
// context (WithIdempotencyKey). The client itself starts no goroutines.
package client
