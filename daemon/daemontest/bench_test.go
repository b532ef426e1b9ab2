package daemontest

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mozpool/mozpool/api"
)

// benchInventory is a small lab: one imaging server, one device per client.
func benchInventory(devices int) api.Inventory {
	inv := api.Inventory{
		ImagingServers: []api.InventoryServer{{Name: NodeName(1), Rack: "rack1"}},
		HardwareTypes:  []api.InventoryHardwareType{{Type: "panda", Model: "ES Rev B2"}},
	}
	for i := 1; i <= devices; i++ {
		inv.Devices = append(inv.Devices, api.InventoryDevice{
			Name: fmt.Sprintf("panda-%04d", i), FQDN: fmt.Sprintf("panda-%04d.lab", i), InventoryID: int64(i),
			MAC: fmt.Sprintf("00163e%06x", i), ImagingServer: NodeName(1),
			HardwareType: "panda", HardwareModel: "ES Rev B2",
		})
	}
	return inv
}

// BenchmarkReplicatedWrites measures replicated writes per second through the
// HTTP API of a 3-node loopback cluster (fsync on, as in production). Each
// write is a set-comments POST sent round-robin to all three nodes (target
// all: two in three are forwarded to the leader, and the forwarding node waits
// until it has applied the write itself), or only to the leader.
func BenchmarkReplicatedWrites(b *testing.B) {
	c := New(b, 3)
	c.LoadInventory(benchInventory(64))
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 128, TLSClientConfig: ClientTLS()}, Timeout: 30 * time.Second}
	cases := []struct {
		clients int
		target  string
	}{{1, "all"}, {16, "all"}, {64, "all"}, {1, "leader"}, {64, "leader"}}
	for _, tc := range cases {
		clients := tc.clients
		targets := c.Nodes
		if tc.target == "leader" {
			targets = []*Node{c.WaitLeader()}
		}
		b.Run(fmt.Sprintf("target=%s/clients=%d", tc.target, clients), func(b *testing.B) {
			var next atomic.Int64
			var failed atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for w := 0; w < clients; w++ {
				wg.Add(1)
				// Exits when the b.N writes are handed out.
				go func(w int) {
					defer wg.Done()
					body := []byte(`{"comments": "bench"}`)
					for {
						i := next.Add(1)
						if i > int64(b.N) {
							return
						}
						node := targets[int(i)%len(targets)]
						url := fmt.Sprintf("%s/api/device/panda-%04d/set-comments/", node.URL, w+1)
						req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
						req.Header.Set("Content-Type", "application/json")
						req.Header.Set("Authorization", "Bearer "+Token) // comments need an operator
						resp, err := hc.Do(req)
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
				}(w)
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			if failed.Load() > 0 {
				b.Fatalf("%d of %d writes failed", failed.Load(), b.N)
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "writes/s")
		})
	}
}
