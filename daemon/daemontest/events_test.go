package daemontest

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/api"
	"github.com/mozpool/mozpool/client"
)

// eventLog collects the events an SSE client receives.
type eventLog struct {
	mu  sync.Mutex
	got []api.Event
}

func (l *eventLog) add(e api.Event) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.got = append(l.got, e)
	return nil
}

func (l *eventLog) has(kind, name, state string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.got {
		if e.Kind == kind && e.Name == name && e.State == state {
			return true
		}
	}
	return false
}

// follow streams n's events into l from after lastID until ctx ends or the
// stream does, and returns the last id read on the channel.
func follow(ctx context.Context, n *Node, lastID string, l *eventLog) <-chan string {
	out := make(chan string, 1)
	c := n.Client()
	// Exits when the stream ends (ctx, or the node stops).
	go func() {
		last, _ := c.Events(ctx, client.EventFilter{}, lastID, l.add)
		out <- last
	}()
	return out
}

// An SSE client that follows a node, loses it to a restart and resumes
// with Last-Event-ID gets every event exactly once, in log order: the
// events a node that stayed up stored.
func TestEvents_ResumeAfterNodeRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-node cluster test")
	}
	ctx := context.Background()
	c := New(t, 3)
	c.LoadInventory(readsInventory())
	leader := c.WaitLeader()
	x := c.Followers()[0]
	l := &eventLog{}

	closeOne := func(via *Node) int64 {
		r, err := via.Client().CreateRequest(ctx, "any", b2gSpec())
		require.NoError(t, err)
		require.NoError(t, via.Client().ReturnRequest(ctx, r.ID))
		return r.ID
	}
	waitFor := func(id int64) {
		require.Eventually(t, func() bool { return l.has("request", strconv.FormatInt(id, 10), "closed") },
			20*time.Second, 10*time.Millisecond, "request %d closed not streamed", id)
	}

	sctx, cancel := context.WithCancel(ctx)
	ended := follow(sctx, x, "0", l) // from the start of the log
	r1 := closeOne(leader)
	waitFor(r1)

	x.Stop()
	lastID := <-ended
	require.NotEmpty(t, lastID)
	r2 := closeOne(leader) // while x is down
	x = c.Restart(x)
	c.WaitConverged()

	ended = follow(sctx, x, lastID, l)
	waitFor(r2)
	r3 := closeOne(leader)
	waitFor(r3)
	cancel()
	<-ended

	l.mu.Lock()
	got := append([]api.Event(nil), l.got...)
	l.mu.Unlock()
	last := got[len(got)-1]
	stored, err := leader.Daemon.Events.After(0, 0, 0)
	require.NoError(t, err)
	var want []string
	for _, e := range stored {
		if e.Index < last.Index || (e.Index == last.Index && e.Seq <= last.Seq) {
			want = append(want, strconv.FormatUint(e.Index, 10)+"-"+strconv.FormatUint(uint64(e.Seq), 10)+" "+e.Kind+" "+e.Name+" "+e.State)
		}
	}
	var have []string
	for _, e := range got {
		have = append(have, e.ID()+" "+e.Kind+" "+e.Name+" "+e.State)
	}
	require.Equal(t, want, have, "every event once, in order, across the restart")
	for _, id := range []int64{r1, r2, r3} {
		require.True(t, l.has("request", strconv.FormatInt(id, 10), "finding_device"), "request %d", id)
	}
}
