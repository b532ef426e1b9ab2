package fsm

import (
	"container/heap"
	"maps"
	"slices"
	"sync"
	"time"
)

// QueueItem is one waiting request as the queue sees it.
type QueueItem struct {
	ID int64
	// Position is 1 for the request served next among those that compete
	// for the same boards (its competitors: requests whose constraints
	// share a board with its own, transitively).
	Position int
	// Competitors counts the requests of its competition, itself included.
	Competitors int
	// ETA is when the request is expected to be ready (zero: no board
	// that could serve it is expected back).
	ETA time.Time
	// Aged: the request has waited long enough to be served before every
	// request that has not.
	Aged bool
}

// QueueView is the queue in service order, with positions and ETAs. It is
// computed on reads, never in Apply: positions depend on the time (aging)
// and ETAs on the clock.
type QueueView struct {
	// Index is the applied index the view reflects; At is the time it
	// was computed for.
	Index uint64
	At    time.Time
	// Items are grouped by competition, each in service order.
	Items []QueueItem
	byID  map[int64]int
}

// Item returns the queue item of request id.
func (v *QueueView) Item(id int64) (QueueItem, bool) {
	i, ok := v.byID[id]
	if !ok {
		return QueueItem{}, false
	}
	return v.Items[i], true
}

// queueViewMaxAge is how long a view is reused (positions move with aging
// even when nothing is applied). A view that was costly to compute (a long
// queue: it holds the state's read lock meanwhile) is reused for as long
// even if commands were applied since, so that reads cannot slow Apply
// down; QueueItem still computes a fresh one for a request it lacks.
const (
	queueViewMaxAge = time.Second
	queueViewCostly = 2 * time.Millisecond
)

type viewCache struct {
	mu   sync.Mutex
	v    *QueueView
	cost time.Duration
}

// QueueView returns the queue as of now (see queueViewMaxAge).
func (f *FSM) QueueView(now time.Time) *QueueView {
	return f.queueView(now, false)
}

// QueueItem returns the queue item of request id as of now; ok is false
// when it does not wait.
func (f *FSM) QueueItem(now time.Time, id int64) (QueueItem, bool) {
	if it, ok := f.queueView(now, false).Item(id); ok {
		return it, true
	}
	waiting := false
	f.Read(func(s *State) { waiting = s.Queue.Waiting(id) })
	if !waiting {
		return QueueItem{}, false
	}
	return f.queueView(now, true).Item(id)
}

func (f *FSM) queueView(now time.Time, fresh bool) *QueueView {
	c := &f.viewCache
	c.mu.Lock()
	defer c.mu.Unlock()
	idx := f.applied.Load()
	if v := c.v; v != nil && !fresh && now.Sub(v.At) < queueViewMaxAge && !now.Before(v.At) &&
		(v.Index == idx || c.cost > queueViewCostly) {
		return v
	}
	var v *QueueView
	start := time.Now()
	f.Read(func(s *State) {
		v = s.queueView(now, f.devices)
		v.Index = f.applied.Load()
	})
	c.v, c.cost = v, time.Since(start)
	return v
}

type unionFind []int

func (u unionFind) find(i int) int {
	for u[i] != i {
		u[i] = u[u[i]]
		i = u[i]
	}
	return i
}

func (u unionFind) union(a, b int) { u[u.find(a)] = u.find(b) }

// queueView computes positions and ETAs. Competitions are the connected
// components of signatures that share a board. Within one, requests are
// ordered as the queue would serve them if its boards came free one by one
// and every one suited everybody: aged first, then priority, then a
// fair-share tag projected from the group's clock (the k-th request of a
// group gets its tag plus k costs), then arrival. The boards of the
// competition are then replayed: each request takes the board expected
// back first, is ready after the measured imaging time of that board's
// hardware and its image, and gives the board back after its group's
// measured hold time (or at its expiry, if sooner).
func (s *State) queueView(now time.Time, dm DeviceMachine) *QueueView {
	q := s.Queue
	v := &QueueView{At: now, byID: map[int64]int{}}
	if q.Len() == 0 {
		return v
	}
	sigs := slices.Sorted(maps.Keys(q.sigs))
	sigIndex := make(map[string]int, len(sigs))
	for i, k := range sigs {
		sigIndex[k] = i
	}
	uf := make(unionFind, len(sigs))
	for i := range uf {
		uf[i] = i
	}
	boards := make([][]*Device, len(sigs))
	names := slices.Sorted(maps.Keys(s.Devices))
	for _, name := range names {
		d := s.Devices[name]
		first := -1
		match := func(i int) {
			if !s.matchesStatic(q.sigs[sigs[i]], d) {
				return
			}
			boards[i] = append(boards[i], d)
			if first < 0 {
				first = i
			} else {
				uf.union(first, i)
			}
		}
		for _, k := range sigs {
			if sig := q.sigs[k]; sig.named == "" || sig.named == name {
				match(sigIndex[k])
			}
		}
	}
	// Group requests and boards by competition.
	type comp struct {
		reqs   []*Request
		boards map[string]*Device
	}
	comps := map[int]*comp{}
	for i, k := range sigs {
		root := uf.find(i)
		c, ok := comps[root]
		if !ok {
			c = &comp{boards: map[string]*Device{}}
			comps[root] = c
		}
		for _, b := range q.sigs[k].buckets {
			for e := b.l.Front(); e != nil; e = e.Next() {
				c.reqs = append(c.reqs, e.Value.(*Request))
			}
		}
		for _, d := range boards[i] {
			c.boards[d.Name] = d
		}
	}
	for _, root := range slices.Sorted(maps.Keys(comps)) {
		c := comps[root]
		s.orderCompetition(c.reqs, now)
		times := s.boardTimes(c.boards, now, dm)
		for i, r := range c.reqs {
			item := QueueItem{ID: r.ID, Position: i + 1, Competitors: len(c.reqs), Aged: s.aged(r, now)}
			if times.Len() > 0 {
				b := heap.Pop(times).(boardTime)
				start := b.at
				ready := start.Add(s.ImagingTime(b.hw, r.Image))
				item.ETA = ready
				back := ready.Add(s.HoldTime(r.FairGroup()))
				if r.Expires.Before(back) && r.Expires.After(start) {
					back = r.Expires
				}
				heap.Push(times, boardTime{at: back, hw: b.hw})
			}
			v.byID[r.ID] = len(v.Items)
			v.Items = append(v.Items, item)
		}
	}
	return v
}

// orderKey is a request's place in the projected order.
type orderKey struct {
	aged bool
	prio int
	vtag uint64
	seq  uint64
	r    *Request
}

// cmpClass orders aged first, then priority (among requests not aged).
func cmpClass(a, b *orderKey) int {
	if a.aged != b.aged {
		if a.aged {
			return -1
		}
		return 1
	}
	if !a.aged && a.prio != b.prio {
		if a.prio > b.prio {
			return -1
		}
		return 1
	}
	return 0
}

// orderCompetition sorts reqs into projected service order.
func (s *State) orderCompetition(reqs []*Request, now time.Time) {
	keys := make([]orderKey, len(reqs))
	byGroup := map[string][]*orderKey{}
	for i, r := range reqs {
		keys[i] = orderKey{aged: s.aged(r, now), prio: r.Priority, seq: r.QueueSeq, r: r}
		byGroup[r.FairGroup()] = append(byGroup[r.FairGroup()], &keys[i])
	}
	for g, ks := range byGroup {
		slices.SortFunc(ks, func(a, b *orderKey) int {
			if c := cmpClass(a, b); c != 0 {
				return c
			}
			return cmpU64(a.seq, b.seq)
		})
		clock := s.Queue.Groups[g]
		tag, cost := uint64(0), uint64(fairCost)
		if clock != nil {
			tag, cost = max(clock.Tag, s.Queue.Virtual), clock.cost()
		}
		for k, key := range ks {
			key.vtag = tag + uint64(k)*cost
		}
	}
	slices.SortFunc(keys, func(a, b orderKey) int {
		if c := cmpClass(&a, &b); c != 0 {
			return c
		}
		if a.vtag != b.vtag {
			return cmpU64(a.vtag, b.vtag)
		}
		return cmpU64(a.seq, b.seq)
	})
	for i := range keys {
		reqs[i] = keys[i].r
	}
}

type boardTime struct {
	at time.Time
	hw string
}

type boardHeap []boardTime

func (h boardHeap) Len() int { return len(h) }
func (h boardHeap) Less(i, j int) bool {
	return h[i].at.Before(h[j].at)
}
func (h boardHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *boardHeap) Push(x any)   { *h = append(*h, x.(boardTime)) }
func (h *boardHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// boardTimes is when each board is expected to be free: now if it is;
// when its holder is expected to give it back (ready: the group's hold
// time after ready, at most its expiry; still imaging: the imaging time
// first); for a board busy on its own, its state's deadline. Boards that
// are out of service (no deadline, no holder) are left out.
func (s *State) boardTimes(boards map[string]*Device, now time.Time, dm DeviceMachine) *boardHeap {
	h := &boardHeap{}
	later := func(t time.Time) time.Time {
		if t.Before(now) {
			return now
		}
		return t
	}
	for _, name := range slices.Sorted(maps.Keys(boards)) {
		d := boards[name]
		if srv, ok := s.Servers[d.ImagingServer]; ok && srv.Down {
			continue
		}
		var at time.Time
		switch r, held := s.Requests[d.RequestID]; {
		case d.RequestID != 0 && held:
			hold := s.HoldTime(r.FairGroup())
			if r.ReadyAt.IsZero() {
				at = r.ClaimedAt.Add(s.ImagingTime(d.HardwareType, r.Image) + hold)
			} else {
				at = r.ReadyAt.Add(hold)
			}
			if r.Expires.Before(at) {
				at = r.Expires
			}
		case dm != nil && dm.Available(d.State):
			at = now
		case !d.StateDeadline.IsZero():
			at = d.StateDeadline
		default:
			continue
		}
		*h = append(*h, boardTime{at: later(at), hw: d.HardwareType})
	}
	heap.Init(h)
	return h
}
