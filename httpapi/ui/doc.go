// Package ui serves the web UI: plain HTML, CSS and JavaScript modules
// embedded in the binary, so every node serves the whole UI with no network
// access and no build step.
//
// The pages call the node's own HTTP API with same-origin relative URLs; the
// API forwards writes to the leader and proxies hardware calls to the owning
// node, so any node can serve every action. The package starts no
// goroutines.
package ui
