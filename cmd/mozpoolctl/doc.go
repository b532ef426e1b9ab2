// Command mozpoolctl manages a Mozpool cluster over its HTTP API: cluster
// membership and status, inventory sync, PXE configs, images and devices.
// It talks to any node; writes are forwarded to the leader server-side.
//
// Usage:
//
//	mozpoolctl [--server URL] [--token T] [--json] COMMAND [ARGS]
//
// Run "mozpoolctl help" for the list of commands.
package main
