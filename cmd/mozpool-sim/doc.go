// Command mozpool-sim runs a simulated lab (package sim) for a Mozpool
// cluster: ProXR relay boards and the boards they power, on loopback
// addresses, booting over TFTP from their imaging servers, posting imaging
// events to the cluster's API and logging to the imaging servers' syslog
// receivers.
//
// Usage:
//
//	mozpool-sim -inventory lab/lab.json -api http://127.0.0.1:8010 \
//	    [-listen 127.0.0.1:0] [-write-inventory FILE] [-time-scale 0.1] \
//	    [-seed N] [-broken 0.1] [-syslog=false] [-fail-booting 0.05 ...] \
//	    [-shard i/n]
//
// -shard i/n runs only the boards of every n-th relay board: n processes
// with the same inventory run a lab larger than one process's open file
// limit allows (each board listens on two ports); mozpool-sim generate
// writes such labs.
//
// It prints the ground-truth URL (GET /boards, /boards/NAME, /relays) and,
// with -write-inventory, writes the inventory with the relay boards' bound
// ports for "mozpoolctl inventory sync". It runs until SIGINT or SIGTERM.
package main
