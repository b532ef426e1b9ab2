// Package events turns applied commands into device and request state-change
// events, keeps them in the node's log store under their Raft index, and
// fans them out to live subscribers (the API's Server-Sent Events stream,
// GET /api/events/). Every node derives the same events from the same log,
// so a client resumes from an event id on any node.
package events

import (
	"strconv"
	"sync"

	"github.com/mozpool/mozpool/fsm"
	"github.com/mozpool/mozpool/logstore"
)

// Event is a state change (logstore.Event).
type Event = logstore.Event

// Event kinds.
const (
	KindDevice  = "device"
	KindRequest = "request"
)

// subBuffer is how many events a subscriber may fall behind by before it is
// dropped (it then resumes from the store).
const subBuffer = 4096

// Hub stores events and fans them out.
type Hub struct {
	store *logstore.Store

	mu     sync.Mutex
	subs   map[*Subscription]struct{}
	closed bool
}

// NewHub returns a Hub storing events in store.
func NewHub(store *logstore.Store) *Hub {
	return &Hub{store: store, subs: map[*Subscription]struct{}{}}
}

// Derive returns the events of one applied command: its device and request
// state changes, in that order (re-entering the same state, as a ready
// device's health check or a ping round does, is not a change). Call it from
// fsm.Config.Notify (it reads the state, which is then as the command left
// it).
func Derive(f *fsm.FSM, n fsm.Notification) []Event {
	if len(n.Transitions) == 0 && len(n.RequestTransitions) == 0 {
		return nil
	}
	out := make([]Event, 0, len(n.Transitions)+len(n.RequestTransitions))
	f.Read(func(s *fsm.State) {
		for _, t := range n.Transitions {
			if t.From == t.State {
				continue
			}
			e := Event{Index: n.Index, Seq: uint32(len(out)), At: n.At, Kind: KindDevice, Name: t.Device, State: t.State}
			if d, ok := s.Devices[t.Device]; ok {
				e.ImagingServer, e.Request = d.ImagingServer, d.RequestID
			}
			out = append(out, e)
		}
		for _, t := range n.RequestTransitions {
			e := Event{Index: n.Index, Seq: uint32(len(out)), At: n.At, Kind: KindRequest,
				Name: strconv.FormatInt(t.Request, 10), State: t.State}
			if r, ok := s.Requests[t.Request]; ok {
				e.ImagingServer, e.Device = r.ImagingServer, r.Device
			}
			out = append(out, e)
		}
	})
	return out
}

// Publish stores events and hands them to the subscribers. It does not
// block: a subscriber that has fallen subBuffer events behind is closed.
func (h *Hub) Publish(evs []Event) {
	if len(evs) == 0 {
		return
	}
	h.store.AppendEvents(evs)
	h.mu.Lock()
	defer h.mu.Unlock()
	for sub := range h.subs {
		for _, e := range evs {
			select {
			case sub.ch <- e:
			default:
				delete(h.subs, sub)
				close(sub.ch)
				sub.overflowed = true
			}
			if sub.overflowed {
				break
			}
		}
	}
}

// Subscription receives the events published after Subscribe.
type Subscription struct {
	h          *Hub
	ch         chan Event
	overflowed bool
}

// C yields the events; it is closed when the subscriber fell behind or the
// hub closed.
func (s *Subscription) C() <-chan Event { return s.ch }

// Close ends the subscription.
func (s *Subscription) Close() {
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	if _, ok := s.h.subs[s]; ok {
		delete(s.h.subs, s)
		close(s.ch)
	}
}

// Subscribe starts a subscription. On a closed hub its channel is closed.
func (h *Hub) Subscribe() *Subscription {
	s := &Subscription{h: h, ch: make(chan Event, subBuffer)}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		close(s.ch)
		return s
	}
	h.subs[s] = struct{}{}
	return s
}

// After returns up to limit stored events after the position (index, seq).
func (h *Hub) After(index uint64, seq uint32, limit int) ([]Event, error) {
	return h.store.EventsAfter(index, seq, limit)
}

// Close ends every subscription (the node is stopping).
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for s := range h.subs {
		delete(h.subs, s)
		close(s.ch)
	}
}
