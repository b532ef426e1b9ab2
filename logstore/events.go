package logstore

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// eventsBucket holds the state-change events, keyed by Raft index and
// sequence within the index, so they come back in log order and a replayed
// entry overwrites its own events.
var eventsBucket = []byte("events")

// Event is one device or request state change, as the entry at Index made
// it. Every node derives the same events from the same log, so an event's
// (Index, Seq) names it on every node.
type Event struct {
	Index uint64    `json:"index"`
	Seq   uint32    `json:"seq"`
	At    time.Time `json:"at"`
	// Kind is "device" or "request"; Name the device's name or the
	// request's id.
	Kind  string `json:"kind"`
	Name  string `json:"name"`
	State string `json:"state"`
	// ImagingServer is the device's imaging server, or the server that
	// created the request.
	ImagingServer string `json:"imaging_server,omitempty"`
	// Device is a request's device; Request a device's request (0: none).
	Device  string `json:"device,omitempty"`
	Request int64  `json:"request,omitempty"`
}

// After reports whether e comes after the position (index, seq).
func (e Event) After(index uint64, seq uint32) bool {
	return e.Index > index || (e.Index == index && e.Seq > seq)
}

func eventKey(index uint64, seq uint32) []byte {
	k := make([]byte, 12)
	binary.BigEndian.PutUint64(k, index)
	binary.BigEndian.PutUint32(k[8:], seq)
	return k
}

// AppendEvents queues events for the writer, like Append.
func (s *Store) AppendEvents(events []Event) {
	if len(events) == 0 {
		return
	}
	es := append([]Event(nil), events...)
	if err := s.enter(); err != nil {
		s.logger.Warn("dropping events: store is closed", "count", len(es))
		return
	}
	defer s.leave()
	s.queue <- item{events: es}
}

func putEvents(tx *bolt.Tx, events []Event) error {
	if len(events) == 0 {
		return nil
	}
	b := tx.Bucket(eventsBucket)
	for _, e := range events {
		v, err := json.Marshal(e)
		if err != nil {
			return err
		}
		if err := b.Put(eventKey(e.Index, e.Seq), v); err != nil {
			return err
		}
	}
	return nil
}

// EventsAfter returns up to limit events after the position (index, seq),
// in log order, once the events appended before the call are written.
func (s *Store) EventsAfter(index uint64, seq uint32, limit int) ([]Event, error) {
	if err := s.Sync(); err != nil {
		return nil, err
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	var out []Event
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(eventsBucket).Cursor()
		for k, v := c.Seek(eventKey(index, seq)); k != nil && (limit <= 0 || len(out) < limit); k, v = c.Next() {
			if len(k) != 12 {
				return fmt.Errorf("%w: event key of %d bytes", ErrCorrupt, len(k))
			}
			var e Event
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("%w: event: %v", ErrCorrupt, err)
			}
			if e.After(index, seq) {
				out = append(out, e)
			}
		}
		return nil
	})
	return out, err
}

// pruneEvents deletes the events older than before, from the oldest on
// (events are in log order, which is command-time order but for clock
// skew between leaders, so it stops at the first event to keep).
func (s *Store) pruneEvents(before time.Time) (int, error) {
	total := 0
	for {
		n, more := 0, false
		err := s.db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(eventsBucket)
			var doomed [][]byte
			c := b.Cursor()
			for k, v := c.First(); k != nil; k, v = c.Next() {
				var e Event
				if json.Unmarshal(v, &e) == nil && !e.At.Before(before) {
					break
				}
				if len(doomed) == pruneChunk {
					more = true
					break
				}
				doomed = append(doomed, bytes.Clone(k))
			}
			for _, k := range doomed {
				if err := b.Delete(k); err != nil {
					return err
				}
			}
			n = len(doomed)
			return nil
		})
		total += n
		s.pruned.Add(uint64(n))
		if err != nil || !more {
			return total, err
		}
	}
}
