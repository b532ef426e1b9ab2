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

// queueViewMaxAge is how long a view computed for an unchanged state is
// reused (positions move with aging even when nothing is applied).
const queueViewMaxAge = time.Second

type viewCache struct {
	mu sync.Mutex
	v  *QueueView
}

// QueueView returns the queue as of now (cached per applied index for up
// to a second).
func (f *FSM) QueueView(now time.Time) *QueueView {
	f.viewCache.mu.Lock()
	defer f.viewCache.mu.Unlock()
	idx := f.applied.Load()
	if v := f.viewCache.v; v != nil && v.Index == idx && now.Sub(v.At) < queueViewMaxAge && !now.Before(v.At) {
		return v
	}
	var v *QueueView
	f.Read(func(s *State) { v = s.queueView(now, f.devices) })
	v.Index = idx
	f.viewCache.v = v
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

// orderCompetition sorts reqs into projected service order.
func (s *State) orderCompetition(reqs []*Request, now time.Time) {
	byGroup := map[string][]*Request{}
	for _, r := range reqs {
		byGroup[r.FairGroup()] = append(byGroup[r.FairGroup()], r)
	}
	vtag := make(map[int64]uint64, len(reqs))
	for g, rs := range byGroup {
		slices.SortFunc(rs, func(a, b *Request) int {
			if s.beforeInClass(a, b, now) {
				return -1
			}
			return 1
		})
		clock := s.Queue.Groups[g]
		tag, cost := uint64(0), uint64(fairCost)
		if clock != nil {
			tag, cost = max(clock.Tag, s.Queue.Virtual), clock.cost()
		}
		for k, r := range rs {
			vtag[r.ID] = tag + uint64(k)*cost
		}
	}
	slices.SortFunc(reqs, func(a, b *Request) int {
		aa, ab := s.aged(a, now), s.aged(b, now)
		switch {
		case aa != ab:
			if aa {
				return -1
			}
			return 1
		case !aa && a.Priority != b.Priority:
			if a.Priority > b.Priority {
				return -1
			}
			return 1
		case vtag[a.ID] != vtag[b.ID]:
			return cmpU64(vtag[a.ID], vtag[b.ID])
		}
		return cmpU64(a.QueueSeq, b.QueueSeq)
	})
}

// beforeInClass orders two requests of one group: aged, priority, arrival.
func (s *State) beforeInClass(a, b *Request, now time.Time) bool {
	aa, ab := s.aged(a, now), s.aged(b, now)
	if aa != ab {
		return aa
	}
	if !aa && a.Priority != b.Priority {
		return a.Priority > b.Priority
	}
	return a.QueueSeq < b.QueueSeq
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
