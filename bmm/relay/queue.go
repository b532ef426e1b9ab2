package relay

import (
	"context"
	"slices"
	"sync"
)

// queue gives each board address to one holder at a time, in the order the
// holders asked for it. A board with an entry in boards is held (by an
// operation, or by the recovery pause after one); its waiters are served
// first come, first served. An entry is removed when it is released with
// nobody waiting, so the map only holds busy boards.
type queue struct {
	mu     sync.Mutex
	boards map[string][]*ticket // address -> waiters, oldest first
}

// ticket is one waiter's place in a board's queue. ready is closed when the
// board is handed to it; granted records that under queue.mu.
type ticket struct {
	ready   chan struct{}
	granted bool
}

func newQueue() *queue {
	return &queue{boards: make(map[string][]*ticket)}
}

// acquire blocks until addr is free and this caller is first in its queue,
// or until ctx is done. On success the caller holds addr and must call
// release exactly once. Waiting is bounded only by ctx. If the board is
// busy, onWait (when not nil) is called once the caller is in the queue.
func (q *queue) acquire(ctx context.Context, addr string, onWait func()) error {
	q.mu.Lock()
	waiters, held := q.boards[addr]
	if !held {
		q.boards[addr] = nil
		q.mu.Unlock()
		return nil
	}
	t := &ticket{ready: make(chan struct{})}
	q.boards[addr] = append(waiters, t)
	q.mu.Unlock()
	if onWait != nil {
		onWait()
	}

	select {
	case <-t.ready:
		return nil
	case <-ctx.Done():
	}
	q.mu.Lock()
	if t.granted {
		// release handed us the board as ctx ended; pass it on.
		q.mu.Unlock()
		q.release(addr)
		return ctx.Err()
	}
	q.boards[addr] = slices.DeleteFunc(q.boards[addr], func(w *ticket) bool { return w == t })
	q.mu.Unlock()
	return ctx.Err()
}

// release hands addr to its oldest waiter, or frees it if nobody waits.
func (q *queue) release(addr string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.releaseLocked(addr)
}

func (q *queue) releaseLocked(addr string) {
	waiters := q.boards[addr]
	if len(waiters) == 0 {
		delete(q.boards, addr)
		return
	}
	next := waiters[0]
	waiters[0] = nil
	q.boards[addr] = waiters[1:]
	next.granted = true
	close(next.ready)
}

// waitingTotal returns how many callers wait for a board, over every board.
func (q *queue) waitingTotal() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for _, ws := range q.boards {
		n += len(ws)
	}
	return n
}
