package relay

import "context"

// Notice receives the queue events of one operation. A caller passes it in
// the operation's context (WithNotice) to learn when its operation had to
// wait for the board and when it left the queue, for example to count a
// deadline from the start of the operation rather than from the request.
// Either function may be nil; both are called from the goroutine running
// the operation and must not block.
type Notice struct {
	// Queued is called when the board is busy and the operation joins
	// its queue (at most once, and never when the board was free).
	Queued func()
	// Started is called when the operation leaves the queue, just before
	// it connects to the board. It is called whether or not the operation
	// waited.
	Started func()
	// Proceed, if set, is asked when the operation leaves the queue,
	// before Started: a power cycle none of whose callers may proceed
	// any more (its caller no longer owns the board, say) is dropped
	// without connecting to the board.
	Proceed func() bool
}

type noticeKey struct{}

// WithNotice returns a context that carries n to the relay operation run
// with it.
func WithNotice(ctx context.Context, n Notice) context.Context {
	return context.WithValue(ctx, noticeKey{}, n)
}

// NoticeFrom returns the Notice ctx carries (the zero Notice if none), for
// stand-ins of this package's Client that report queue events as it does.
func NoticeFrom(ctx context.Context) Notice {
	n, _ := ctx.Value(noticeKey{}).(Notice)
	return n
}

func noticeFrom(ctx context.Context) Notice { return NoticeFrom(ctx) }

func (n Notice) queued() {
	if n.Queued != nil {
		n.Queued()
	}
}

func (n Notice) started() {
	if n.Started != nil {
		n.Started()
	}
}

func (n Notice) proceed() bool { return n.Proceed == nil || n.Proceed() }
