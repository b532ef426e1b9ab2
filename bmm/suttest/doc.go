// Package suttest provides a fake SUT agent: a TCP server that speaks the
// agent protocol (described in package sut) over an in-memory file system.
//
// Agent serves the commands Mozpool's checks use (testroot, ver, isdir,
// mkdr, rmdr, push) plus quit, to any number of concurrent connections. It
// records every command line it receives, so tests can assert on the wire
// sequence. Faults are injected through AgentOptions and the Set* methods,
// which take effect for the next command on every connection: warnings for
// chosen commands, silence (connections accepted, nothing ever answered),
// a broken SD card (push stores corrupted data and reports its MD5), and
// offline (connections reset as soon as they are accepted). The lab
// simulator runs one Agent per board.
//
// The fake implements the protocol independently of package sut rather
// than sharing its constants, so a mistake in the client is not mirrored
// here.
//
// Goroutines: NewAgent starts an accept loop, which starts one goroutine
// per connection. Close stops the loop, closes every connection and waits
// for all of them.
package suttest
