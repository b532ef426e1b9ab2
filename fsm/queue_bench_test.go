package fsm_test

import (
	"testing"
	"time"

	"github.com/mozpool/mozpool/fsm"
	"github.com/mozpool/mozpool/lifeguard"
	"github.com/mozpool/mozpool/requests"
)

// bigQueue is a lab of n boards, every one held, with n requests waiting
// (in three groups at three priorities, a quarter with a tag constraint
// that half the boards meet).
func bigQueue(b *testing.B, n int) *qlab {
	b.Helper()
	l := newQLab(b, n, func(i int, d *fsm.InventoryDevice) {
		if i%2 == 0 {
			d.Tags = map[string]string{"cpu": "armv7"}
		}
	})
	mod := func(i int) func(*fsm.RequestCreate) {
		return func(c *fsm.RequestCreate) {
			p := i%3 - 1
			c.Priority = &p
			c.Group = []string{"a", "b", "c"}[i/3%3]
			c.MaxWait = time.Hour
			if i%4 == 0 {
				c.Tags = map[string]string{"cpu": "armv7"}
			}
		}
	}
	// The holders queue first, so that each board is assigned as it
	// comes ready (no scan of free boards).
	for i := range n {
		l.create(func(c *fsm.RequestCreate) { c.MaxWait = time.Hour })
		_ = i
	}
	for i := range n {
		l.ready(qBoard(i))
	}
	for i := range n {
		l.create(mod(i))
	}
	var waiting int
	l.f.Read(func(s *fsm.State) { waiting = s.Queue.Len() })
	if waiting != n {
		b.Fatalf("%d waiting, want %d", waiting, n)
	}
	return l
}

// One Apply that frees a board and assigns it to the first of 10,000
// waiting requests, with 10,000 boards. Each iteration returns the board's
// request and adds a request, untimed, so the queue stays at 10,000.
func BenchmarkQueue_AssignWith10kWaiting(b *testing.B) {
	const n = 10000
	l := bigQueue(b, n)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		board := qBoard(i % n)
		if id := l.holder(board); id != 0 {
			l.ok(fsm.CmdRequestEvent, &fsm.RequestEvent{ID: id, Event: string(requests.EventClose)})
		}
		var state string
		l.f.Read(func(s *fsm.State) { state = s.Devices[board].State })
		l.create(func(c *fsm.RequestCreate) { c.MaxWait = time.Hour })
		l.at = l.at.Add(time.Millisecond)
		cmd := &fsm.DeviceStateChange{Header: fsm.Header{At: l.at}, Device: board, From: state, To: string(lifeguard.StateReady)}
		data, err := fsm.Encode(fsm.CmdDeviceStateChange, cmd)
		if err != nil {
			b.Fatal(err)
		}
		l.index++
		b.StartTimer()
		if res := l.f.ApplyCommand(l.index, data); res.Error() != nil {
			b.Fatal(res.Error())
		}
		b.StopTimer()
		if l.holder(board) == 0 {
			b.Fatal("the board was not assigned")
		}
		b.StartTimer()
	}
}

// One Apply that creates a request into a queue of 10,000 (no board free).
func BenchmarkQueue_CreateInto10k(b *testing.B) {
	const n = 10000
	l := bigQueue(b, n)
	p := 0
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		l.at = l.at.Add(time.Millisecond)
		cmd := &fsm.RequestCreate{Header: fsm.Header{At: l.at}, RequestedDevice: "any", Assignee: "ci",
			Expires: l.at.Add(time.Hour), Image: "android", BootConfig: "{}", Priority: &p, Group: "d", MaxWait: time.Hour}
		data, err := fsm.Encode(fsm.CmdRequestCreate, cmd)
		if err != nil {
			b.Fatal(err)
		}
		l.index++
		b.StartTimer()
		if res := l.f.ApplyCommand(l.index, data); res.Error() != nil {
			b.Fatal(res.Error())
		}
	}
}

// Positions and ETAs of a queue of 10,000 on 10,000 boards (a read, not
// an Apply; cached per applied index).
func BenchmarkQueue_View10k(b *testing.B) {
	l := bigQueue(b, 10000)
	at := l.at
	b.ResetTimer()
	for b.Loop() {
		at = at.Add(2 * time.Second) // past the cache
		l.f.QueueView(at)
	}
}
