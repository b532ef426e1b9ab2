package reconcile

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const (
	waitFor = 10 * time.Second
	tick    = time.Millisecond
)

// recorder is a Reconcile that logs the keys it is called with, in order,
// and lets a test hold a key's worker until released.
type recorder struct {
	mu      sync.Mutex
	runs    []string
	started map[string]chan struct{} // closed when the key's held run starts
	hold    map[string]chan struct{} // a run of the key waits for this
	// next, if set, is the deadline a run returns; began is when it began.
	next func(key string, n int, began time.Time) time.Time
}

func newRecorder() *recorder {
	return &recorder{started: map[string]chan struct{}{}, hold: map[string]chan struct{}{}}
}

// holdNext makes the next run of key wait until release is called; started
// is closed when that run begins.
func (r *recorder) holdNext(key string) (started <-chan struct{}, release func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, h := make(chan struct{}), make(chan struct{})
	r.started[key], r.hold[key] = s, h
	return s, func() { close(h) }
}

func (r *recorder) reconcile(ctx context.Context, key string) time.Time {
	began := time.Now()
	r.mu.Lock()
	r.runs = append(r.runs, key)
	n := 0
	for _, k := range r.runs {
		if k == key {
			n++
		}
	}
	s, h := r.started[key], r.hold[key]
	delete(r.started, key)
	delete(r.hold, key)
	next := r.next
	r.mu.Unlock()
	if h != nil {
		close(s)
		select {
		case <-h:
		case <-ctx.Done():
		}
	}
	if next != nil {
		return next(key, n, began)
	}
	return time.Time{}
}

func (r *recorder) Runs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.runs)
}

func (r *recorder) count(key string) int {
	n := 0
	for _, k := range r.Runs() {
		if k == key {
			n++
		}
	}
	return n
}

// run starts l.Run and returns a function that stops it and waits for Run
// to return (also called at cleanup).
func run[K comparable](t *testing.T, l *Loop[K]) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	// Exits when stop cancels ctx.
	go func() { done <- l.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			require.NoError(t, <-done)
		})
	}
	t.Cleanup(stop)
	return stop
}

func newLoop(t *testing.T, cfg Config[string]) *Loop[string] {
	t.Helper()
	l, err := New(cfg)
	require.NoError(t, err)
	return l
}

// waitRun waits until key has run n times.
func waitRun(t *testing.T, r *recorder, key string, n int) {
	t.Helper()
	require.Eventually(t, func() bool { return r.count(key) >= n }, waitFor, tick, "%s to run %d times", key, n)
}

// A key marked many times before its worker starts is reconciled once.
func TestCoalescesMarks(t *testing.T) {
	r := newRecorder()
	started, release := r.holdNext("block")
	l := newLoop(t, Config[string]{Reconcile: r.reconcile, Workers: 1, Keys: func() []string { return []string{"block"} }})
	run(t, l)
	<-started // the only worker is busy: marks wait in the dirty set
	for range 100 {
		l.Mark("a", "b", "a")
	}
	l.Mark("end")
	release()
	waitRun(t, r, "end", 1)
	require.Equal(t, []string{"block", "a", "b", "end"}, r.Runs())
}

// A key marked while its worker runs is reconciled exactly once more, after
// that worker returns, never alongside it.
func TestRemarkWhileRunningRunsOnceMore(t *testing.T) {
	r := newRecorder()
	var inA, overlap atomic.Int32
	rec := func(ctx context.Context, key string) time.Time {
		if key == "a" {
			if inA.Add(1) > 1 {
				overlap.Add(1)
			}
			defer inA.Add(-1)
		}
		return r.reconcile(ctx, key)
	}
	started, release := r.holdNext("a")
	l := newLoop(t, Config[string]{Reconcile: rec, Workers: 4, Keys: func() []string { return []string{"a"} }})
	run(t, l)
	<-started
	for i := range 50 {
		l.Mark("a", fmt.Sprint("other", i%5)) // other workers are free
	}
	release()
	waitIdle(t, l)
	require.Equal(t, 2, r.count("a"))
	require.Zero(t, overlap.Load(), "two workers for one key")

	// With one worker the order is exact: "end", marked while a ran, was
	// queued before a's rerun.
	r = newRecorder()
	started, release = r.holdNext("a")
	l = newLoop(t, Config[string]{Reconcile: r.reconcile, Workers: 1, Keys: func() []string { return []string{"a"} }})
	run(t, l)
	<-started
	for range 50 {
		l.Mark("a")
	}
	l.Mark("end")
	release()
	waitIdle(t, l)
	require.Equal(t, []string{"a", "end", "a"}, r.Runs())
}

// waitIdle waits until no key is queued, dirty or being reconciled.
func waitIdle[K comparable](t *testing.T, l *Loop[K]) {
	t.Helper()
	require.Eventually(t, func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return len(l.queue) == 0 && len(l.dirty) == 0 && len(l.busy) == 0
	}, waitFor, tick)
}

// A key is reconciled again at the deadline its last run returned, not
// before; a deadline replaced by a later run is forgotten.
func TestDeadlines(t *testing.T) {
	r := newRecorder()
	var mu sync.Mutex
	due := map[string]time.Time{} // the deadline each key's last run returned
	var early []string
	r.next = func(key string, n int, began time.Time) time.Time {
		mu.Lock()
		defer mu.Unlock()
		if d, ok := due[key]; ok && began.Before(d) && key != "dropped" {
			early = append(early, fmt.Sprintf("%s: run %d began at %s, before %s", key, n, began, d))
		}
		var next time.Time
		switch {
		case key == "tick" && n < 5:
			next = began.Add(20 * time.Millisecond)
		case key == "dropped" && n == 1:
			// Run 2, marked while this one runs, follows at once and
			// replaces this deadline with none.
			next = began.Add(300 * time.Millisecond)
		case key == "later" && n == 1:
			// After dropped's replaced deadline: had that deadline
			// stayed, dropped would run a third time before this.
			next = began.Add(400 * time.Millisecond)
		}
		due[key] = next
		return next
	}
	started, release := r.holdNext("dropped")
	l := newLoop(t, Config[string]{Reconcile: r.reconcile, Workers: 1,
		Keys: func() []string { return []string{"dropped", "tick"} }})
	run(t, l)
	<-started
	l.Mark("dropped")
	release()
	waitRun(t, r, "dropped", 2)
	l.Mark("later")
	waitRun(t, r, "later", 2)
	waitRun(t, r, "tick", 5)
	waitIdle(t, l)
	mu.Lock()
	require.Empty(t, early, "runs before their deadline")
	mu.Unlock()
	require.Equal(t, 5, r.count("tick"), "the fifth run returned no deadline")
	require.Equal(t, 2, r.count("dropped"), "a replaced deadline fired")
}

// No more than Workers reconciles run at once, and that many do.
func TestConcurrencyBound(t *testing.T) {
	const workers, keys = 3, 20
	var cur, peak atomic.Int32
	gate := make(chan struct{})
	var finished atomic.Int32
	rec := func(ctx context.Context, key string) time.Time {
		n := cur.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		select {
		case <-gate:
		case <-ctx.Done():
		}
		cur.Add(-1)
		finished.Add(1)
		return time.Time{}
	}
	var all []string
	for i := range keys {
		all = append(all, fmt.Sprint(i))
	}
	l := newLoop(t, Config[string]{Reconcile: rec, Workers: workers, Keys: func() []string { return all }})
	run(t, l)
	require.Eventually(t, func() bool { return cur.Load() == workers }, waitFor, tick)
	for range keys {
		gate <- struct{}{}
	}
	require.Eventually(t, func() bool { return finished.Load() == keys }, waitFor, tick)
	require.Equal(t, int32(workers), peak.Load())
}

// Run rebuilds from Keys each time it starts; a second concurrent Run is
// refused; marks while stopped are dropped.
func TestRunAgainAndRefuseConcurrentRun(t *testing.T) {
	r := newRecorder()
	keys := []string{"k"}
	l := newLoop(t, Config[string]{Reconcile: r.reconcile, Workers: 1, Keys: func() []string { return keys }})
	l.Mark("before") // not running: dropped
	stop := run(t, l)
	waitRun(t, r, "k", 1)
	require.ErrorIs(t, l.Run(context.Background()), ErrRunning)
	stop()
	l.Mark("between") // stopped: dropped
	l.MarkAll()
	run(t, l)
	waitRun(t, r, "k", 2)
	l.Mark("end")
	waitRun(t, r, "end", 1)
	require.Equal(t, []string{"k", "k", "end"}, r.Runs())
}

// MarkAll and the resync mark Keys and every key with a deadline.
func TestMarkAllAndResync(t *testing.T) {
	r := newRecorder()
	r.next = func(key string, _ int, _ time.Time) time.Time {
		if key == "waiting" {
			return time.Now().Add(time.Hour)
		}
		return time.Time{}
	}
	l := newLoop(t, Config[string]{Reconcile: r.reconcile, Workers: 2, Keys: func() []string { return []string{"listed"} }})
	run(t, l)
	waitRun(t, r, "listed", 1)
	l.Mark("waiting")
	waitRun(t, r, "waiting", 1)
	l.MarkAll()
	waitRun(t, r, "listed", 2)
	waitRun(t, r, "waiting", 2)

	r2 := newRecorder()
	l2 := newLoop(t, Config[string]{Reconcile: r2.reconcile, Workers: 1, Resync: 5 * time.Millisecond,
		Keys: func() []string { return []string{"listed"} }})
	run(t, l2)
	waitRun(t, r2, "listed", 3)
}

func TestNewValidates(t *testing.T) {
	rec := func(context.Context, string) time.Time { return time.Time{} }
	for _, cfg := range []Config[string]{
		{Workers: 1},
		{Reconcile: rec},
		{Reconcile: rec, Workers: 1, Resync: -time.Second},
	} {
		_, err := New(cfg)
		require.Error(t, err)
	}
}

// Stopping while workers run and deadlines fall due: Run returns only after
// every Reconcile has returned, and none starts after that. Before the loop,
// the executor's timers started work from their own goroutines (wg.Add
// racing Run's wg.Wait at shutdown, and proposals after Run returned); run
// this with -race.
func TestShutdownWithWorkersAndTimersInFlight(t *testing.T) {
	for i := range 30 {
		var returned atomic.Bool
		var active, runs atomic.Int32
		var late atomic.Int32
		rec := func(ctx context.Context, key string) time.Time {
			if returned.Load() {
				late.Add(1)
			}
			active.Add(1)
			defer active.Add(-1)
			runs.Add(1)
			if key[0] == 'h' { // held until shutdown
				<-ctx.Done()
			}
			return time.Now().Add(time.Duration(len(key)) * 100 * time.Microsecond)
		}
		var keys []string
		for j := range 40 {
			keys = append(keys, fmt.Sprint("k", j))
		}
		keys = append(keys, "h1", "h2")
		l, err := New(Config[string]{Reconcile: rec, Workers: 4, Resync: time.Millisecond,
			Keys: func() []string { return keys }})
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		// Exits when ctx is cancelled below.
		go func() { done <- l.Run(ctx) }()
		// Marks from outside, as Notify does, racing the shutdown.
		stopMarking := make(chan struct{})
		markerDone := make(chan struct{})
		// Exits when stopMarking is closed.
		go func() {
			defer close(markerDone)
			pace := time.NewTicker(100 * time.Microsecond)
			defer pace.Stop()
			for {
				select {
				case <-stopMarking:
					return
				case <-pace.C:
					l.Mark(keys[:10]...)
				}
			}
		}()
		want := int32(50 + 10*i)
		require.Eventually(t, func() bool { return runs.Load() >= want }, waitFor, tick)
		cancel()
		require.NoError(t, <-done)
		returned.Store(true)
		require.Zero(t, active.Load(), "iteration %d: a Reconcile outlived Run", i)
		n := runs.Load()
		close(stopMarking)
		<-markerDone
		l.Mark(keys...) // dropped: not running
		l.MarkAll()
		require.Equal(t, n, runs.Load(), "iteration %d: work after Run returned", i)
		require.Zero(t, late.Load())
	}
}
