// Package bench measures request creation through the HTTP API of a
// 3-node cluster with a simulated lab of 1,000 boards.
package bench

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/daemon/daemontest"
	"github.com/mozpool/mozpool/fsm"
	"github.com/mozpool/mozpool/lifeguard"
	"github.com/mozpool/mozpool/sim"
)

const boards = 1000

// startLab starts 3 nodes and a simulated lab of 1,000 boards, and waits
// until the boards have finished their first self-test.
func startLab(b *testing.B) *daemontest.Cluster {
	const scale = 0.05
	// Free ping and SUT ports (daemontest's), random loopback networks.
	c := daemontest.New(b, 3, daemontest.Options{TimeScale: scale})
	cfg := c.SimConfig(b, boards/3)
	cfg.RelayRecovery, cfg.Failures = 10*time.Millisecond, sim.Failures{SelfTestOK: 1}
	lab := daemontest.StartSim(b, cfg)
	c.LoadInventory(lab.Inventory())
	start := time.Now()
	require.Eventually(b, func() bool {
		states := map[lifeguard.State]int{}
		c.Nodes[0].FSM.Read(func(s *fsm.State) {
			for _, d := range s.Devices {
				states[lifeguard.State(d.State)]++
			}
		})
		b.Logf("%s: %v", time.Since(start).Round(time.Second), states)
		return states[lifeguard.StateReady] >= boards*9/10
	}, 5*time.Minute, 5*time.Second, "boards did not finish their self-tests")
	return c
}

// BenchmarkRequestCreate creates requests for any board through the API,
// round-robin over the three nodes, with 1, 16 and 64 concurrent clients,
// and reports creations per second and p50/p99 latency. Each creation is
// one proposal whose Apply searches the 1,000 boards, claims one and sends
// it please_image; once every board is claimed, creations still search.
func BenchmarkRequestCreate(b *testing.B) {
	c := startLab(b)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 128, TLSClientConfig: daemontest.ClientTLS()}, Timeout: 30 * time.Second}
	body := []byte(`{"assignee": "bench", "duration": 3600, "image": "b2g", "b2gbase": "http://x"}`)
	for _, clients := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			var next, failed atomic.Int64
			lat := make([]time.Duration, b.N)
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for w := 0; w < clients; w++ {
				wg.Add(1)
				// Exits when the b.N creations are handed out.
				go func() {
					defer wg.Done()
					for {
						i := next.Add(1) - 1
						if i >= int64(b.N) {
							return
						}
						node := c.Nodes[int(i)%len(c.Nodes)]
						t0 := time.Now()
						resp, err := hc.Post(node.URL+"/api/device/any/request/", "application/json", bytes.NewReader(body))
						lat[i] = time.Since(t0)
						if err != nil {
							failed.Add(1)
							continue
						}
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode != http.StatusOK {
							failed.Add(1)
						}
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			if failed.Load() > 0 {
				b.Fatalf("%d of %d creations failed", failed.Load(), b.N)
			}
			slices.Sort(lat)
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "creates/s")
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50_ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99_ms")
		})
	}
}
