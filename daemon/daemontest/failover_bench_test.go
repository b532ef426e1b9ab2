package daemontest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mozpool/mozpool/client"
	"github.com/mozpool/mozpool/daemon"
)

// BenchmarkFailoverWriteGap measures how long writers lose when the leader
// goes: one writer per node sends set-comments through its own node, as
// real clients do, without pause; each iteration crashes the leader (kill:
// no leadership transfer, its connections reset, as after SIGKILL) or stops
// it gracefully (restart: leadership is transferred first), then reports the
// longest interval between two acknowledged writes of any writer of the
// surviving nodes. The victim is restarted and the cluster caught up before
// the next iteration. The nodes use the daemon's default Raft timeout.
// Figures: gap-p50-ms, gap-max-ms over b.N trials; run with -benchtime 20x
// for a p99-like maximum over 20 trials.
func BenchmarkFailoverWriteGap(b *testing.B) {
	for _, mode := range []string{"kill", "restart"} {
		b.Run(mode, func(b *testing.B) {
			c := New(b, 3, Options{RaftTimeout: daemon.DefaultConfig().RaftTimeout})
			c.LoadInventory(benchInventory(8))
			var gaps []time.Duration
			for i := 0; i < b.N; i++ {
				c.WaitConverged()
				gaps = append(gaps, failoverTrial(b, c, mode))
			}
			slices.Sort(gaps)
			ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
			b.ReportMetric(ms(gaps[len(gaps)/2]), "gap-p50-ms")
			b.ReportMetric(ms(gaps[len(gaps)-1]), "gap-max-ms")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// failoverTrial runs one trial and returns the longest write gap seen by the
// writers of the nodes that stayed up.
func failoverTrial(b *testing.B, c *Cluster, mode string) time.Duration {
	leader := c.WaitLeader()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type writer struct {
		node *Node
		mu   sync.Mutex
		acks []time.Time
	}
	var writers []*writer
	var wg sync.WaitGroup
	for i, n := range c.Live() {
		w := &writer{node: n}
		writers = append(writers, w)
		cl := client.New(n.URL, client.WithToken(Token), client.WithTimeout(20*time.Second), client.WithHTTPClient(HTTPClient()))
		dev := fmt.Sprintf("panda-%04d", i+1)
		wg.Add(1)
		// Ends when ctx is cancelled below.
		go func() {
			defer wg.Done()
			for seq := 0; ctx.Err() == nil; seq++ {
				if err := cl.SetComments(ctx, dev, fmt.Sprintf("write %d", seq)); err == nil {
					w.mu.Lock()
					w.acks = append(w.acks, time.Now())
					w.mu.Unlock()
				}
			}
		}()
	}
	survivors := func() []*writer {
		var out []*writer
		for _, w := range writers {
			if w.node != leader {
				out = append(out, w)
			}
		}
		return out
	}()
	// acksSince counts w's acknowledgements after t.
	acksSince := func(w *writer, t time.Time) int {
		w.mu.Lock()
		defer w.mu.Unlock()
		k := 0
		for _, a := range w.acks {
			if a.After(t) {
				k++
			}
		}
		return k
	}
	waitAcks := func(t time.Time, k int) {
		deadline := time.Now().Add(30 * time.Second)
		for _, w := range survivors {
			for acksSince(w, t) < k {
				if time.Now().After(deadline) {
					b.Fatalf("writer of %s: fewer than %d writes acknowledged in 30 s after the leader went", w.node.Name, k)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
	}
	waitAcks(time.Now(), 20)
	t0 := time.Now()
	if mode == "kill" {
		leader.Kill()
	} else {
		leader.Stop()
	}
	waitAcks(time.Now(), 20)
	cancel()
	wg.Wait()
	var worst time.Duration
	for _, w := range survivors {
		// The gap that spans t0: from the last ack before it onwards.
		var prev time.Time
		for _, a := range w.acks {
			if !prev.IsZero() && !a.Before(t0) {
				worst = max(worst, a.Sub(prev))
			}
			prev = a
		}
	}
	c.Restart(leader)
	return worst
}
