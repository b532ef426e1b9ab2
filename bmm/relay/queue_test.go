package relay

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// waiting returns how many callers wait for addr, not counting the holder.
func (q *queue) waiting(addr string) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.boards[addr])
}

// held reports whether addr is held by an operation or its recovery pause.
func (q *queue) held(addr string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	_, ok := q.boards[addr]
	return ok
}

func TestQueueFIFO(t *testing.T) {
	q := newQueue()
	ctx := context.Background()
	require.NoError(t, q.acquire(ctx, "a", nil))

	const n = 8
	var mu sync.Mutex
	var order []int
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		// Exits once it has been granted the board and released it.
		go func() {
			defer wg.Done()
			if err := q.acquire(ctx, "a", nil); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			q.release("a")
		}()
		// Wait until waiter i is queued before starting the next.
		require.Eventually(t, func() bool { return q.waiting("a") == i+1 }, 5*time.Second, time.Millisecond)
	}

	// Another board is independent of the busy one.
	require.NoError(t, q.acquire(ctx, "b", nil))
	q.release("b")

	q.release("a")
	wg.Wait()
	require.Equal(t, []int{0, 1, 2, 3, 4, 5, 6, 7}, order)
	require.False(t, q.held("a"), "released with nobody waiting: forgotten")
	require.False(t, q.held("b"))
}

func TestQueueCancelWhileWaiting(t *testing.T) {
	q := newQueue()
	require.NoError(t, q.acquire(context.Background(), "a", nil))

	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	// Exits when its ctx is cancelled.
	go func() { errc <- q.acquire(ctx, "a", nil) }()
	require.Eventually(t, func() bool { return q.waiting("a") == 1 }, 5*time.Second, time.Millisecond)
	cancel()
	require.ErrorIs(t, <-errc, context.Canceled)
	require.Equal(t, 0, q.waiting("a"), "the cancelled waiter left the queue")

	q.release("a")
	require.False(t, q.held("a"))
}

func TestQueueCancelAfterGrantPassesOn(t *testing.T) {
	// A waiter whose ctx ends just as the board is handed to it must pass
	// the board on rather than keep it or drop it.
	for range 20 {
		q := newQueue()
		require.NoError(t, q.acquire(context.Background(), "a", nil))

		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		// Exits when it sees the board granted or its ctx done.
		go func() { errc <- q.acquire(ctx, "a", nil) }()
		require.Eventually(t, func() bool { return q.waiting("a") == 1 }, 5*time.Second, time.Millisecond)
		next := make(chan error, 1)
		// Exits when it gets the board.
		go func() { next <- q.acquire(context.Background(), "a", nil) }()
		require.Eventually(t, func() bool { return q.waiting("a") == 2 }, 5*time.Second, time.Millisecond)

		// Cancel and grant under the lock, so a waiter that wakes for the
		// cancel cannot leave the queue before it is granted the board.
		q.mu.Lock()
		cancel()
		q.releaseLocked("a")
		q.mu.Unlock()

		if err := <-errc; err == nil {
			q.release("a") // it saw the grant first and held the board
		} else {
			require.ErrorIs(t, err, context.Canceled)
		}
		require.NoError(t, <-next, "the board reaches the next waiter either way")
		q.release("a")
		require.False(t, q.held("a"))
	}
}

// Waiting counts the callers queued behind a held board, over every board.
func TestClientWaiting(t *testing.T) {
	c := &Client{q: newQueue()}
	require.Equal(t, 0, c.Waiting())
	require.NoError(t, c.q.acquire(context.Background(), "a:1", nil))
	require.NoError(t, c.q.acquire(context.Background(), "b:1", nil))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errs := make(chan error, 3)
	for _, addr := range []string{"a:1", "a:1", "b:1"} {
		// Exits when granted the board or when ctx is cancelled.
		go func() { errs <- c.q.acquire(ctx, addr, nil) }()
	}
	require.Eventually(t, func() bool { return c.Waiting() == 3 }, 5*time.Second, time.Millisecond)
	c.q.release("b:1")
	require.NoError(t, <-errs)
	require.Equal(t, 2, c.Waiting())
	cancel()
	require.Error(t, <-errs)
	require.Error(t, <-errs)
	require.Equal(t, 0, c.Waiting())
}
