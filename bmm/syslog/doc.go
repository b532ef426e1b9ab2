// Package syslog receives the boards' syslog messages and files them in
// their device logs.
//
// As in the original Mozpool, boards send syslog over UDP (port
// 514, facility local0) to their imaging server, where the lines end up in
// the device log beside the state machine's entries, on one time line.
// Here each node runs a Receiver for its own rack: a datagram, RFC 5424 or
// RFC 3164, is parsed with github.com/influxdata/go-syslog/v3, its board is
// found by the sender's address (the device's ip_address) or else by the
// message's HOSTNAME (the device's name or fqdn), and it is filed as an
// fsm.LogEntry with source "device" through the cluster (fsm.LogAppend), so
// it is queryable on every node. Messages from boards of other imaging
// servers and from unknown senders are counted and dropped, as rsyslog's
// stored procedure dropped unknown device names; nothing is ever sent back.
// The board's timestamp is used when it is within a day of the receive
// time, else the receive time (the original fell back to NOW()).
//
// Goroutines: Start starts two. The reader owns the UDP socket: it parses
// each datagram, looks the board up in the FSM and puts the entry on a
// bounded queue without blocking (a full queue counts the message as
// dropped). It exits when Shutdown closes the socket, and closes the queue
// as it goes. The flusher owns the batch: it proposes one LogAppend per
// MaxBatch entries or per FlushInterval, and exits once the closed queue
// is drained, which is what Shutdown waits for. Proposals run on the
// flusher's goroutine, so a cluster without a leader slows only the
// flusher; the reader keeps reading and counting.
package syslog
