package e2e

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/api"
	"github.com/mozpool/mozpool/client"
	"github.com/mozpool/mozpool/fsm"
	"github.com/mozpool/mozpool/lifeguard"
	"github.com/mozpool/mozpool/requests"
)

// queueReq is what the queue test knows of one of its requests.
type queueReq struct {
	id      int64
	group   string
	prio    int
	maxWait time.Duration
	eta     time.Time // from /api/queue/ once the boards start coming free
}

// TestRequestQueue drives the queue end to end on 3 nodes and 30
// simulated boards: 300 requests from 3 groups at 3 priorities. It shows
//
//   - that while nothing changes a queue writes nothing: over the same
//     window, with 270 requests waiting no waiting request and nothing of
//     the queue changes (the commit index growth with and without them is
//     logged);
//   - that every request is served or fails at its max_wait, and served in
//     the order the policy promises: an aged request before any that is
//     not, then higher priorities first, then arrival within a group;
//   - the mean absolute error of the ETAs (logged, not asserted).
//
// A client returns every request as soon as it is ready, so the boards
// keep turning over.
func TestRequestQueue(t *testing.T) {
	skipShort(t)
	t.Parallel()
	l := startLab(t, labOptions{BoardsPerRack: 10})
	boards := l.boards()
	require.Len(t, boards, 30)
	for _, dev := range boards {
		l.waitState(t, dev, lifeguard.StateReady, selfTestTimeout)
	}
	n0 := l.cluster.Nodes[0]
	ctx := context.Background()
	groups := []string{"alpha", "beta", "gamma"}
	prios := []int{-10, 0, 10}
	create := func(group string, prio int, maxWait time.Duration) int64 {
		t.Helper()
		p := prio
		req, err := l.node().Client().CreateRequest(ctx, "any", client.RequestSpec{Assignee: "e2e-" + group,
			Duration: time.Hour, Image: "android", Group: group, Priority: &p, MaxWait: maxWait})
		require.NoError(t, err)
		return req.ID
	}
	read := func(id int64) fsm.Request {
		var r fsm.Request
		n0.FSM.Read(func(s *fsm.State) {
			if p, ok := s.Requests[id]; ok {
				r = *p
			}
		})
		return r
	}
	state := func(id int64) requests.State { return requests.State(read(id).State) }

	// The returner gives back every request of the test's groups once it
	// is ready, noting when it became ready.
	var mu sync.Mutex
	readyAt := map[int64]time.Time{}
	watched := map[int64]bool{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	// Exits when stop is closed (at the end of the test).
	go func() {
		defer wg.Done()
		c := n0.Client()
		for {
			select {
			case <-stop:
				return
			case <-time.After(poll):
			}
			var ready []int64
			mu.Lock()
			n0.FSM.Read(func(s *fsm.State) {
				for id := range watched {
					if r, ok := s.Requests[id]; ok && requests.State(r.State) == requests.StateReady {
						if _, seen := readyAt[id]; !seen {
							readyAt[id] = r.StateEntered
							ready = append(ready, id)
						}
					}
				}
			})
			mu.Unlock()
			for _, id := range ready {
				_ = c.ReturnRequest(ctx, id) // a failure shows as a request never closed
			}
		}
	}()
	t.Cleanup(func() { close(stop); wg.Wait() })
	watch := func(id int64) { mu.Lock(); watched[id] = true; mu.Unlock() }
	final := func(id int64) bool {
		s := state(id)
		return s == requests.StateClosed || s.Failed()
	}

	// Warm-up: 30 requests, served and returned, teach the history
	// imaging and hold times.
	var warm []int64
	for i := range 30 {
		id := create(groups[i%3], 0, 0)
		watch(id)
		warm = append(warm, id)
	}
	require.Eventually(t, func() bool {
		for _, id := range warm {
			if state(id) != requests.StateClosed {
				return false
			}
		}
		return true
	}, 2*flowTimeout, poll, "the warm-up requests were not all served")

	// Holders take every board and keep it.
	var holders []int64
	for range 30 {
		holders = append(holders, create("holders", 0, 0))
	}
	require.Eventually(t, func() bool {
		for _, id := range holders {
			if state(id) != requests.StateReady {
				return false
			}
		}
		return true
	}, 2*flowTimeout, poll, "the holders did not all get a board")

	// The idle window: what the old search timers would have written
	// 10 times per waiting request.
	window := 10 * searchEvery
	queueIndex := func() uint64 {
		var ix uint64
		n0.FSM.Read(func(s *fsm.State) { ix = s.Queue.Index })
		return ix
	}
	unchanged := func(ids []int64) func() bool {
		qix := queueIndex()
		was := map[int64]uint64{}
		for _, id := range ids {
			was[id] = read(id).Index
		}
		return func() bool {
			if queueIndex() != qix {
				return true
			}
			for _, id := range ids {
				if read(id).Index != was[id] {
					return true
				}
			}
			return false
		}
	}
	before := n0.FSM.AppliedIndex()
	require.Never(t, unchanged(holders), window, poll, "a holder or the queue changed while nothing happened")
	idleNone := n0.FSM.AppliedIndex() - before

	var reqs []*queueReq
	for i := range 270 {
		q := &queueReq{group: groups[i%3], prio: prios[i/3%3], maxWait: time.Hour}
		if q.group == "gamma" && q.prio == -10 {
			// Scaled, 24 s: longer than creating the queue and
			// the idle window take; the last of these may fail.
			q.maxWait = 20 * time.Minute
		}
		q.id = create(q.group, q.prio, q.maxWait)
		reqs = append(reqs, q)
	}
	var ids []int64
	for _, q := range reqs {
		require.Equal(t, requests.StateFindingDevice, state(q.id), "request %d", q.id)
		ids = append(ids, q.id)
	}
	before = n0.FSM.AppliedIndex()
	require.Never(t, unchanged(ids), window, poll, "a waiting request or the queue changed while nothing happened")
	idleWaiting := n0.FSM.AppliedIndex() - before
	t.Logf("idle commit index growth over %s: %d with no request waiting, %d with 270 waiting (zero queue-related entries); "+
		"the old 10 s search would have written %d", window, idleNone, idleWaiting, 270*10)

	// The boards come free; the queue serves the waiting requests.
	for _, q := range reqs {
		watch(q.id)
	}
	for _, id := range holders {
		require.NoError(t, n0.Client().ReturnRequest(ctx, id))
	}
	queue, err := n0.Client().Queue(ctx, nil)
	require.NoError(t, err)
	asked := time.Now()
	etas := map[int64]string{}
	for _, e := range queue.Queue {
		etas[e.ID] = e.ETA
	}
	for _, q := range reqs {
		if s, ok := etas[q.id]; ok && s != "" {
			q.eta, err = api.ParseTime(s)
			require.NoError(t, err)
		}
	}
	require.Eventually(t, func() bool {
		for _, q := range reqs {
			if !final(q.id) {
				return false
			}
		}
		return true
	}, 4*time.Minute, 100*time.Millisecond, "not every request was served or timed out")

	// Every request was served within its max_wait, or failed at it.
	scale := func(d time.Duration) time.Duration { return time.Duration(float64(d) * timeScale) }
	const slack = 250 * time.Millisecond // proposers' clocks and commit latency
	records := map[int64]fsm.Request{}
	served, failed := 0, 0
	perGroup := map[string]int{}
	for _, q := range reqs {
		r := read(q.id)
		records[q.id] = r
		switch requests.State(r.State) {
		case requests.StateClosed:
			served++
			perGroup[q.group]++
			require.False(t, r.ClaimedAt.IsZero(), "request %d was closed without a claim", q.id)
			require.LessOrEqual(t, r.ClaimedAt.Sub(r.QueuedAt), scale(q.maxWait)+slack, "request %d served after its max_wait", q.id)
		case requests.StateFailedDeviceNotFound:
			failed++
			require.GreaterOrEqual(t, r.StateEntered.Sub(r.QueuedAt), scale(q.maxWait)-slack, "request %d failed before its max_wait", q.id)
		default:
			require.Failf(t, "unexpected end", "request %d ended %s (%s)", q.id, r.State, r.Reason)
		}
	}

	// The order: whenever a request was claimed, no request still waiting
	// then came before it by the policy's class (aged, then priority) or,
	// in its group and class, by arrival.
	aging := scale(fsm.AgingAfter)
	violations := 0
	for _, q := range reqs {
		r := records[q.id]
		if r.ClaimedAt.IsZero() {
			continue
		}
		at := r.ClaimedAt
		rAged := at.Sub(r.QueuedAt) >= aging
		for _, o := range reqs {
			w := records[o.id]
			if o.id == q.id || !w.QueuedAt.Before(at.Add(-slack)) {
				continue // not waiting yet
			}
			left := w.ClaimedAt
			if left.IsZero() {
				left = w.StateEntered
			}
			if !left.After(at.Add(slack)) {
				continue // served or gone by then
			}
			if d := at.Sub(w.QueuedAt) - aging; d > -slack && d < slack || at.Sub(r.QueuedAt)-aging > -slack && at.Sub(r.QueuedAt)-aging < slack {
				continue // too close to the aging boundary to tell
			}
			oAged := at.Sub(w.QueuedAt) >= aging
			switch {
			case oAged && !rAged:
				violations++
				t.Errorf("request %d (aged) was waiting when %d (not aged) was served", o.id, q.id)
			case !oAged && !rAged && o.prio > q.prio:
				violations++
				t.Errorf("request %d (priority %d) was waiting when %d (priority %d) was served", o.id, o.prio, q.id, q.prio)
			case o.group == q.group && oAged == rAged && (rAged || o.prio == q.prio) && w.QueueSeq < r.QueueSeq && w.QueuedAt.Before(r.QueuedAt):
				violations++
				t.Errorf("request %d arrived before %d in group %s and was still waiting when it was served", o.id, q.id, q.group)
			}
		}
	}
	require.Zero(t, violations)

	// ETAs against the moment each request became ready.
	var sum, waited time.Duration
	var k int
	mu.Lock()
	for _, q := range reqs {
		if ready, ok := readyAt[q.id]; ok && !q.eta.IsZero() {
			sum += absDuration(ready.Sub(q.eta))
			waited += ready.Sub(asked)
			k++
		}
	}
	mu.Unlock()
	var mae, meanWait time.Duration
	if k > 0 {
		mae, meanWait = sum/time.Duration(k), waited/time.Duration(k)
	}
	t.Logf("300 requests on 30 boards: %d of the 270 queued served, %d failed at max_wait; served per group %v; "+
		"ETA mean absolute error %s (%.1f minutes unscaled) over %d requests whose mean time to ready was %s",
		served, failed, perGroup, mae, mae.Minutes()/timeScale, k, meanWait)
	require.Positive(t, served)
}

func absDuration(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}
