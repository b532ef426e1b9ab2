// Package relay is a client for National Control Devices ProXR relay boards
// (behind a Digi Connect, TCP port 2101), which switch the power of the
// lab's devices.
//
// Wiring is normally closed: an energised relay means an unpowered device.
// The API speaks of device power throughout: SetPower(ctx, ri, true) powers
// the device, which turns its relay off; Status reports true for a powered
// device.
//
// # Queue
//
// A board has a single-threaded TCP stack: it serves one connection at a
// time and needs a pause after each. The Client therefore runs one
// operation per board address at a time, in arrival order: each operation
// takes a ticket in that board's FIFO queue and waits for the board to be
// handed to it. After an operation's connection closes the board stays
// reserved for Config.Recovery (1 s) before the next ticket is served, so
// the board is never asked to accept a connection while it recovers and
// never refuses one.
//
// A power cycle is queued at most once per relay: a PowerCycle of a relay
// whose power cycle is already waiting joins it and gets its result. A
// waiting power cycle whose callers have all given up keeps its ticket, so
// that a retry joins it where it was; if nobody has joined it when its turn
// comes, it is dropped without connecting (and without a recovery pause).
//
// A Notice in an operation's context (WithNotice) is told when the
// operation has to wait for the board and when it leaves the queue, so that
// a caller can count its own time from the start of the operation.
//
// # Deadlines
//
// An operation's deadline (Config.OpTimeout, 30 s, for power operations;
// Config.CommsTimeout, 10 s, for the comms test) starts when it leaves the
// queue. Mozpool started its 30 s deadline before waiting for the board
// lock, so on a busy board operations timed out in the queue and were
// retried; here time spent waiting is bounded only by the caller's ctx, and
// a caller that gives up while waiting leaves the queue at once. Connect,
// each write and each read get whatever remains of the operation's
// deadline. Running out of it gives ErrTimeout; the caller's ctx ending
// gives ctx.Err().
//
// # Goroutines
//
// The Client owns no long-lived goroutines and needs no Close. Operations
// run on their callers' goroutines, except power cycles: each runs on a
// goroutine of its own, which its callers wait for, and which exits when
// the cycle has run or has been dropped at the head of the queue. Two kinds of short-lived goroutine are
// started by the runtime on its behalf: the timer that ends a board's
// recovery pause (time.AfterFunc; it hands the board on and exits), and,
// only when the caller's ctx ends mid-operation, the one that unblocks the
// socket (context.AfterFunc; it sets a past deadline and exits).
//
// The methods are synchronous; whoever calls them decides what runs
// concurrently.
package relay
