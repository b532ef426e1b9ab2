// Package sut is a client for the SUT agent that runs on each board
// (Mozilla's SUTAgentAndroid or Negatus).
//
// The agent listens on TCP port 20701 and speaks a line protocol: it sends
// the prompt "$>" followed by a NUL byte when a client connects and after
// every response; commands are ASCII lines ending in "\r\n"; a response is
// the text before the next prompt, and one that starts with
// "##AGENT-WARNING##" reports a failure. push is the one command that
// carries data: "push <path> <size>\r\n" followed by exactly <size> raw
// bytes, answered with the MD5 of what was written.
//
// Lifeguard uses two checks. Verify is sut_verify: the agent is reachable and
// answers testroot. CheckSDCard is check_sdcard: create a directory on the
// device's storage, push a small file, compare the MD5 the agent reports, and
// clean up. Each check opens its own connection and closes it when done.
//
// Every socket operation has a deadline: the earlier of the caller's context
// deadline and Config.CommandTimeout from the start of that command.
// Cancelling the context interrupts a blocked read or write at once.
// Failures wrap one of the sentinel errors (ErrConnect, ErrTimeout,
// ErrAgentWarning, ErrProtocol, ErrMismatch) so lifeguard can log why a
// board failed without matching strings.
//
// Goroutines: none. Client methods run on the caller's goroutine; the only
// helper is a context.AfterFunc that ends with the connection.
package sut
