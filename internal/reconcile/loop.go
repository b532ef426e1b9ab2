// Package reconcile is the loop shared by the lifeguard executor and the
// request driver: a keyed dirty set fed by FSM notifications, one deadline
// per key, a bounded pool of workers and a clean shutdown.
//
// A key (a device, a request) is marked dirty when something about it may
// have changed: Mark, from the FSM's Notify; MarkAll, when Run starts and at
// every resync. A dirty key is handed to Config.Reconcile on a worker, which
// reads the replicated state, does what the key needs and returns when the
// key must be looked at again even if nothing marks it (its deadline). At the
// deadline the loop marks the key dirty again. So timers only ever mark keys:
// whatever a timer means (a timeout to propose) is done by Reconcile, which
// reads the state first and therefore never acts for a state entry that has
// passed.
//
// Guarantees:
//
//   - Coalescing: marking a key that is already waiting does nothing; a key
//     marked any number of times before its worker starts is reconciled
//     once.
//   - One worker per key: Reconcile never runs twice at once for the same
//     key. A key marked while its worker runs is reconciled exactly once more
//     after that worker returns.
//   - At most Config.Workers Reconcile calls run at once.
//   - A key has at most one deadline: the one its last Reconcile returned
//     (none if that was zero). Deadlines live on the loop goroutine, so a
//     loop that is not running has none; Run rebuilds them by reconciling
//     every key when it starts.
//
// Goroutines, who owns them and how each exits:
//
//   - The loop goroutine is the caller's, inside Run. It alone reads the
//     deadlines, the one time.Timer that waits for the earliest of them and
//     the resync ticker; it alone starts workers (WaitGroup.Add) and it alone
//     waits for them (WaitGroup.Wait), after it has stopped starting any. It
//     exits — Run returns — once ctx is done and every worker has returned.
//   - A worker runs one Reconcile call for one key and exits when it
//     returns; Reconcile must return promptly once ctx is done. It hands its
//     result to the loop goroutine on a channel with room for every worker,
//     so it never blocks there.
//   - Mark and MarkAll run on their callers' goroutines (the Raft apply
//     goroutine, through fsm.Config.Notify). They never block: they update
//     the dirty set under a mutex and wake the loop goroutine with a
//     non-blocking send. They do nothing while Run is not running.
//
// There are no timer goroutines (time.AfterFunc): nothing outside Run's own
// goroutine can start work, so nothing can start after Run has begun to
// wait, and nothing runs after Run has returned.
package reconcile

import (
	"container/heap"
	"context"
	"errors"
	"sync"
	"time"
)

// ErrRunning is returned by Run when the loop is already running.
var ErrRunning = errors.New("reconcile: loop already running")

// Config configures a Loop.
type Config[K comparable] struct {
	// Reconcile brings one key up to date. It runs on a worker goroutine,
	// never twice at once for the same key, and must return promptly once
	// ctx (Run's) is done. It returns when the key must be reconciled
	// again even if nothing marks it; zero for never. A time already
	// past means at once. Required.
	Reconcile func(ctx context.Context, key K) (next time.Time)
	// Keys lists the keys MarkAll marks, besides those that have a
	// deadline. It is called on the loop goroutine when Run starts and at
	// every resync. Optional.
	Keys func() []K
	// Workers bounds the Reconcile calls running at once. At least 1.
	Workers int
	// Resync, if positive, is how often every key is marked (MarkAll), a
	// safety net for missed notifications and snapshot restores.
	Resync time.Duration
}

// Loop is a keyed reconcile loop; see the package comment.
type Loop[K comparable] struct {
	cfg  Config[K]
	wake chan struct{} // capacity 1: a pending wake-up

	mu      sync.Mutex
	running bool
	all     bool           // MarkAll pending
	dirty   map[K]struct{} // marked since their worker last started
	busy    map[K]struct{} // a worker runs for them
	queue   []K            // dirty and not busy, oldest mark first
}

// New returns a Loop; Run runs it.
func New[K comparable](cfg Config[K]) (*Loop[K], error) {
	switch {
	case cfg.Reconcile == nil:
		return nil, errors.New("reconcile: Reconcile is required")
	case cfg.Workers < 1:
		return nil, errors.New("reconcile: Workers must be at least 1")
	case cfg.Resync < 0:
		return nil, errors.New("reconcile: Resync must not be negative")
	}
	return &Loop[K]{cfg: cfg, wake: make(chan struct{}, 1),
		dirty: map[K]struct{}{}, busy: map[K]struct{}{}}, nil
}

// Mark marks keys dirty. It never blocks, and does nothing unless Run is
// running (Run starts by reconciling every key).
func (l *Loop[K]) Mark(keys ...K) {
	if len(keys) == 0 {
		return
	}
	l.mu.Lock()
	ok := l.running
	if ok {
		l.markLocked(keys)
	}
	l.mu.Unlock()
	if ok {
		l.poke()
	}
}

// MarkAll marks every key (Config.Keys and those with a deadline). It never
// blocks, and does nothing unless Run is running.
func (l *Loop[K]) MarkAll() {
	l.mu.Lock()
	ok := l.running
	l.all = l.all || ok
	l.mu.Unlock()
	if ok {
		l.poke()
	}
}

func (l *Loop[K]) poke() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

func (l *Loop[K]) markLocked(keys []K) {
	for _, k := range keys {
		if _, ok := l.dirty[k]; ok {
			continue // coalesced
		}
		l.dirty[k] = struct{}{}
		if _, ok := l.busy[k]; !ok {
			l.queue = append(l.queue, k)
		} // else queued when its worker returns
	}
}

// result is what a worker hands back to the loop goroutine.
type result[K comparable] struct {
	key  K
	next time.Time
}

// Run reconciles every key, then every key marked or due, until ctx is
// done. It returns once every worker it started has returned; it returns
// ErrRunning at once if the loop is already running, and nil otherwise.
// A loop can be run again after Run has returned (a new term of
// leadership); it starts afresh from Config.Keys.
func (l *Loop[K]) Run(ctx context.Context) error {
	l.mu.Lock()
	if l.running {
		l.mu.Unlock()
		return ErrRunning
	}
	l.running, l.all = true, true
	l.mu.Unlock()

	var (
		wg       sync.WaitGroup
		inflight int
		done     = make(chan result[K], l.cfg.Workers) // never full: see start
		sched    = newSchedule[K]()
		timer    = time.NewTimer(time.Hour)
		resync   <-chan time.Time
	)
	timer.Stop()
	defer timer.Stop()
	if l.cfg.Resync > 0 {
		t := time.NewTicker(l.cfg.Resync)
		defer t.Stop()
		resync = t.C
	}
	rearm := func() {
		if at, ok := sched.next(); ok {
			timer.Reset(time.Until(at))
		} else {
			timer.Stop()
		}
	}
	// start hands queued keys to new workers, up to the bound. Only this
	// goroutine calls it, so wg.Add never races wg.Wait below. A worker's
	// result stays counted in inflight until received, so there are never
	// more than Workers results in or bound for done.
	start := func() {
		if ctx.Err() != nil {
			return // shutting down: the select below sees it
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		for inflight < l.cfg.Workers && len(l.queue) > 0 {
			k := l.queue[0]
			var zero K
			l.queue[0] = zero
			l.queue = l.queue[1:]
			if len(l.queue) == 0 {
				l.queue = nil
			}
			delete(l.dirty, k)
			l.busy[k] = struct{}{}
			inflight++
			wg.Add(1)
			// Exits when Reconcile returns.
			go func() {
				defer wg.Done()
				done <- result[K]{k, l.cfg.Reconcile(ctx, k)}
			}()
		}
	}

	for {
		l.mu.Lock()
		all := l.all
		l.all = false
		l.mu.Unlock()
		if all {
			var keys []K
			if l.cfg.Keys != nil {
				keys = l.cfg.Keys()
			}
			keys = append(keys, sched.keys()...)
			l.mu.Lock()
			l.markLocked(keys)
			l.mu.Unlock()
		}
		start()

		select {
		case <-ctx.Done():
			l.mu.Lock()
			l.running, l.all = false, false
			l.mu.Unlock()
			wg.Wait()
			l.mu.Lock()
			clear(l.dirty)
			clear(l.busy)
			l.queue = nil
			l.mu.Unlock()
			return nil
		case r := <-done:
			inflight--
			l.mu.Lock()
			delete(l.busy, r.key)
			if _, ok := l.dirty[r.key]; ok {
				l.queue = append(l.queue, r.key)
			}
			l.mu.Unlock()
			sched.set(r.key, r.next)
			rearm()
		case <-timer.C:
			if due := sched.due(time.Now()); len(due) > 0 {
				l.mu.Lock()
				l.markLocked(due)
				l.mu.Unlock()
			}
			rearm()
		case <-resync:
			l.mu.Lock()
			l.all = true
			l.mu.Unlock()
		case <-l.wake:
		}
	}
}

// schedule is the deadlines of the keys: a min-heap by time, with an index
// by key. Only the loop goroutine touches it.
type schedule[K comparable] struct {
	h     deadlineHeap[K]
	byKey map[K]*deadline[K]
}

type deadline[K comparable] struct {
	key   K
	at    time.Time
	index int
}

func newSchedule[K comparable]() *schedule[K] {
	return &schedule[K]{byKey: map[K]*deadline[K]{}}
}

// set replaces the key's deadline; zero removes it.
func (s *schedule[K]) set(k K, at time.Time) {
	d, ok := s.byKey[k]
	switch {
	case at.IsZero() && ok:
		heap.Remove(&s.h, d.index)
		delete(s.byKey, k)
	case at.IsZero():
	case ok:
		d.at = at
		heap.Fix(&s.h, d.index)
	default:
		d = &deadline[K]{key: k, at: at}
		heap.Push(&s.h, d)
		s.byKey[k] = d
	}
}

// due removes and returns the keys whose deadline is not after now.
func (s *schedule[K]) due(now time.Time) []K {
	var out []K
	for len(s.h) > 0 && !s.h[0].at.After(now) {
		d := heap.Pop(&s.h).(*deadline[K])
		delete(s.byKey, d.key)
		out = append(out, d.key)
	}
	return out
}

// next is the earliest deadline.
func (s *schedule[K]) next() (time.Time, bool) {
	if len(s.h) == 0 {
		return time.Time{}, false
	}
	return s.h[0].at, true
}

// keys lists the keys that have a deadline.
func (s *schedule[K]) keys() []K {
	out := make([]K, 0, len(s.byKey))
	for k := range s.byKey {
		out = append(out, k)
	}
	return out
}

type deadlineHeap[K comparable] []*deadline[K]

func (h deadlineHeap[K]) Len() int           { return len(h) }
func (h deadlineHeap[K]) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h deadlineHeap[K]) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *deadlineHeap[K]) Push(x any) {
	d := x.(*deadline[K])
	d.index = len(*h)
	*h = append(*h, d)
}
func (h *deadlineHeap[K]) Pop() any {
	old := *h
	n := len(old)
	d := old[n-1]
	old[n-1] = nil
	*h = old[:n-1]
	return d
}
