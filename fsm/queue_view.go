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
// components of signatures that share a board; each is replayed as if
// every one of its boards suited every one of its requests (see
// simulate): a request takes the board expected back first, is ready after
// the measured imaging time of that board's hardware and its image (shorter
// when the board already carries a reusable image), and gives the board
// back after its group's measured hold time (or at its expiry, if sooner).
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
		for i, it := range s.simulate(c.reqs, s.boardTimes(c.boards, now, dm), now) {
			it.Position, it.Competitors = i+1, len(c.reqs)
			v.byID[it.ID] = len(v.Items)
			v.Items = append(v.Items, it)
		}
	}
	return v
}

// simulate replays a competition: boards come back in time order, and
// each goes to the request the queue would choose at that time — aged
// requests (by the time of the board) first, then priority, then the
// projected fair-share tag, then arrival. It returns the requests in the
// order they would be served; then those no board reaches, in the order
// of the moment; then those whose max_wait would end before a board comes
// (no ETA: they are expected to fail).
func (s *State) simulate(reqs []*Request, boards *boardHeap, now time.Time) []QueueItem {
	keys := s.orderCompetition(reqs, now)
	aging := s.scaled(AgingAfter)
	byAge := make([]*orderKey, len(keys))
	for i := range keys {
		byAge[i] = &keys[i]
	}
	slices.SortStableFunc(byAge, func(a, b *orderKey) int { return a.r.QueuedAt.Compare(b.r.QueuedAt) })
	aged := &keyHeap{less: func(a, b *orderKey) bool {
		if a.vtag != b.vtag {
			return a.vtag < b.vtag
		}
		return a.seq < b.seq
	}}
	young := &keyHeap{less: func(a, b *orderKey) bool {
		if a.prio != b.prio {
			return a.prio > b.prio
		}
		if a.vtag != b.vtag {
			return a.vtag < b.vtag
		}
		return a.seq < b.seq
	}}
	next := 0 // byAge[:next] are in the aged heap
	for _, k := range byAge {
		if k.aged {
			heap.Push(aged, k)
			next++
		} else {
			heap.Push(young, k)
		}
	}
	var out, passed []QueueItem
	taken := make(map[int64]bool, len(keys))
	pop := func(h *keyHeap) *orderKey {
		for h.Len() > 0 {
			if k := heap.Pop(h).(*orderKey); !taken[k.r.ID] {
				return k
			}
		}
		return nil
	}
	for boards.Len() > 0 && len(taken) < len(keys) {
		b := heap.Pop(boards).(boardTime)
		for next < len(byAge) && !byAge[next].r.QueuedAt.Add(aging).After(b.at) {
			if k := byAge[next]; !taken[k.r.ID] {
				heap.Push(aged, k)
			}
			next++
		}
		k := pop(aged)
		if k == nil {
			k = pop(young)
		}
		if k == nil {
			break
		}
		r := k.r
		taken[r.ID] = true
		it := QueueItem{ID: r.ID, Aged: k.aged}
		if gone := r.StateDeadline; !gone.IsZero() && gone.Before(b.at) {
			passed = append(passed, it) // its wait ends first
			heap.Push(boards, b)
			continue
		}
		img, reusable := s.Images[r.Image]
		reuse := reusable && img.CanReuse && b.image == r.Image
		it.ETA = b.at.Add(s.ImagingTime(b.hw, r.Image, reuse))
		back := it.ETA.Add(s.HoldTime(r.FairGroup()))
		if r.Expires.Before(back) && r.Expires.After(b.at) {
			back = r.Expires
		}
		heap.Push(boards, boardTime{at: back, hw: b.hw, image: r.Image})
		out = append(out, it)
	}
	for i := range keys {
		if k := &keys[i]; !taken[k.r.ID] {
			out = append(out, QueueItem{ID: k.r.ID, Aged: k.aged})
		}
	}
	return append(out, passed...)
}

type keyHeap struct {
	keys []*orderKey
	less func(a, b *orderKey) bool
}

func (h *keyHeap) Len() int           { return len(h.keys) }
func (h *keyHeap) Less(i, j int) bool { return h.less(h.keys[i], h.keys[j]) }
func (h *keyHeap) Swap(i, j int)      { h.keys[i], h.keys[j] = h.keys[j], h.keys[i] }
func (h *keyHeap) Push(x any)         { h.keys = append(h.keys, x.(*orderKey)) }
func (h *keyHeap) Pop() any {
	x := h.keys[len(h.keys)-1]
	h.keys = h.keys[:len(h.keys)-1]
	return x
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

// orderCompetition returns the keys of reqs in the order of the moment,
// with projected fair-share tags: the k-th waiting request of a group gets
// the group's tag plus k costs.
func (s *State) orderCompetition(reqs []*Request, now time.Time) []orderKey {
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
	return keys
}

type boardTime struct {
	at    time.Time
	hw    string
	image string // what the board carries when it comes back
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
		image := d.Image
		switch r, held := s.Requests[d.RequestID]; {
		case d.RequestID != 0 && held:
			hold := s.HoldTime(r.FairGroup())
			image = r.Image
			if r.ReadyAt.IsZero() {
				at = r.ClaimedAt.Add(s.ImagingTime(d.HardwareType, r.Image, r.Reused) + hold)
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
		*h = append(*h, boardTime{at: later(at), hw: d.HardwareType, image: image})
	}
	heap.Init(h)
	return h
}
