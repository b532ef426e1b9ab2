// Package e2e holds end-to-end tests: a 3-node cluster of whole daemons
// (Raft, TFTP, lifeguard executors, HTTP API on loopback) driving a
// simulated lab (package sim) over the real protocols — ProXR relay boards,
// PXE files fetched by TFTP, TCP ping, SUT agents and the boards' event
// posts. The tests prove lifeguard's flows and the BMM routes as an
// operator and a board would see them, through the API and the device log,
// with the simulator's ground truth as the witness of what the hardware
// did. They take minutes and are skipped with -short.
package e2e
