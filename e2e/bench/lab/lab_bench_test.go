// Package lab measures a whole lab power-cycled at once: 1,002 simulated
// boards on relay boards of 32, each relay board resting after every
// connection, all told to self-test at the same moment.
package lab

import (
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
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

const (
	servers         = 3
	boardsPerServer = 334 // 1,002 boards, as in the lab this was measured on
	target          = 1000
	// relayRest is a relay board's rest after each connection, and the
	// time the device stays off in a power cycle, at time scale 1.
	relayRest = time.Second
	// floor is the daemon's floor of the scaled off time and rest.
	floor = 20 * time.Millisecond
)

// timeScale is MOZPOOL_BENCH_SCALE, default 0.25: a relay board's 32 power
// cycles take 16 s, the self-test after them 16 s more.
func timeScale(b *testing.B) float64 {
	s := os.Getenv("MOZPOOL_BENCH_SCALE")
	if s == "" {
		return 0.25
	}
	v, err := strconv.ParseFloat(s, 64)
	require.NoError(b, err, "MOZPOOL_BENCH_SCALE")
	return v
}

// relayBoardRest is MOZPOOL_BENCH_RELAY_REST, the simulated relay boards'
// rest after each connection, not scaled (for example 1s: real relay
// boards under a compressed lifeguard, where a state's scaled timeout is
// far shorter than its relay board's queue); default: 1 s scaled, as the
// daemon's own pause.
func relayBoardRest(b *testing.B, scale float64) time.Duration {
	s := os.Getenv("MOZPOOL_BENCH_RELAY_REST")
	if s == "" {
		return max(scaled(relayRest, scale), floor)
	}
	d, err := time.ParseDuration(s)
	require.NoError(b, err, "MOZPOOL_BENCH_RELAY_REST")
	return d
}

func scaled(d time.Duration, scale float64) time.Duration { return time.Duration(float64(d) * scale) }

// BenchmarkWholeLabSelfTest starts 3 nodes and a simulated lab of 1,002
// boards (32 per relay board, the relay boards resting relayRest after
// each connection, scaled; no jitter and no failures, so that every board
// takes the same time), waits until every board has finished its first
// self-test, then sends please_self_test to every board at once (through
// the HTTP API, 32 clients, round robin over the nodes) and reports the
// time until 1,000 boards are ready again against the ideal: the
// serialised relay time of the fullest relay board (its power cycles one
// after another, each the off time plus the rest) plus the self-test's
// own time (boot, live image start, self-test). Target: ratio ≤ 1.2.
func BenchmarkWholeLabSelfTest(b *testing.B) {
	scale := timeScale(b)
	c := daemontest.New(b, servers, daemontest.Options{TimeScale: scale})
	cfg := c.SimConfig(b, boardsPerServer)
	inv := cfg.Inventory
	rest := relayBoardRest(b, scale)
	cfg.RelayRecovery = rest
	cfg.Failures = sim.Failures{SelfTestOK: 1}
	for _, d := range []*sim.Delay{&cfg.Delays.Booting, &cfg.Delays.MobileInit, &cfg.Delays.Downloading,
		&cfg.Delays.Extracting, &cfg.Delays.Rebooting, &cfg.Delays.SelfTest, &cfg.Delays.Running} {
		d.Jitter = 0
	}

	perRelay := map[string]int{}
	for _, d := range inv.Devices {
		perRelay[d.RelayInfo[:strings.LastIndex(d.RelayInfo[:strings.LastIndex(d.RelayInfo, ":")], ":")]]++
	}
	fullest := 0
	for _, n := range perRelay {
		fullest = max(fullest, n)
	}
	// A cycle: the off time, then the longer of the daemon's pause and
	// the relay board's rest, which start together when the connection
	// closes.
	cycle := max(scaled(relayRest, scale), floor) + max(scaled(relayRest, scale), floor, rest)
	selfTest := scaled(cfg.Delays.Booting.Mean+cfg.Delays.MobileInit.Mean+cfg.Delays.SelfTest.Mean, scale)
	ideal := time.Duration(fullest)*cycle + selfTest
	limit := 10 * ideal

	lab := daemontest.StartSim(b, cfg)
	start := time.Now()
	c.LoadInventory(lab.Inventory())
	first, ok := waitReady(b, c, nil, start, limit)
	if !ok {
		b.Fatalf("the lab's first self-test: %d boards not ready after %s", len(inv.Devices)-first.ready, limit)
	}
	fmt.Printf("the lab's first self-test (boards registering as they boot): %d boards ready after %s\n",
		first.ready, first.at.Sub(start).Round(10*time.Millisecond))

	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, TLSClientConfig: c.ClientTLS()}, Timeout: time.Minute}
	for i := 0; i < b.N; i++ {
		gen0 := generations(c)
		start := time.Now()
		sendAll(b, hc, c, inv.Devices, lifeguard.EventPleaseSelfTest)
		sent := time.Since(start)
		res, ok := waitReady(b, c, gen0, start, limit)
		if !ok {
			b.Fatalf("%d boards ready after %s (ideal %s): %v", res.ready, limit, ideal, res.states)
		}
		took := res.at.Sub(start)
		b.ReportMetric(took.Seconds(), "s_to_1000_ready")
		b.ReportMetric(ideal.Seconds(), "s_ideal")
		b.ReportMetric(took.Seconds()/ideal.Seconds(), "ratio")
		b.ReportMetric(sent.Seconds(), "s_to_send")
		fmt.Printf("whole lab at once (time scale %g, relay board rest %s, %d boards, %d relay boards, at most %d per relay board): "+
			"%d boards ready after %s; ideal %s (%d × %s relay + %s self-test); ratio %.2f; events sent in %s\n",
			scale, rest, len(inv.Devices), len(perRelay), fullest, target, took.Round(10*time.Millisecond), ideal,
			fullest, cycle, selfTest, took.Seconds()/ideal.Seconds(), sent.Round(10*time.Millisecond))
	}
}

// readiness is when target boards were ready, and the states then.
type readiness struct {
	ready  int
	at     time.Time
	states map[string]int
}

// generations returns every device's generation.
func generations(c *daemontest.Cluster) map[string]uint64 {
	out := map[string]uint64{}
	c.Nodes[0].FSM.Read(func(s *fsm.State) {
		for name, d := range s.Devices {
			out[name] = d.Generation
		}
	})
	return out
}

// waitReady polls the first node until target boards are ready (and, with
// gen0, have moved since gen0 was taken), or until limit has passed since
// start.
func waitReady(b *testing.B, c *daemontest.Cluster, gen0 map[string]uint64, start time.Time, limit time.Duration) (readiness, bool) {
	lastLog := time.Now()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for ; ; <-tick.C {
		r := readiness{states: map[string]int{}, at: time.Now()}
		c.Nodes[0].FSM.Read(func(s *fsm.State) {
			for name, d := range s.Devices {
				r.states[d.State]++
				if d.State == string(lifeguard.StateReady) && (gen0 == nil || d.Generation > gen0[name]) {
					r.ready++
				}
			}
		})
		if r.ready >= target {
			return r, true
		}
		if time.Since(start) > limit {
			return r, false
		}
		if time.Since(lastLog) >= 5*time.Second {
			fmt.Printf("  %s: %d ready, %v\n", time.Since(start).Round(time.Second), r.ready, r.states)
			lastLog = time.Now()
		}
	}
}

// sendAll posts event to every device, 32 at a time, round robin over the
// nodes.
func sendAll(b *testing.B, hc *http.Client, c *daemontest.Cluster, devices []fsm.InventoryDevice, event lifeguard.Event) {
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		// Exits when every device has been sent the event.
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(devices) {
					return
				}
				url := fmt.Sprintf("%s/api/device/%s/event/%s/", c.Nodes[i%len(c.Nodes)].URL, devices[i].Name, event)
				resp, err := hc.Post(url, "application/json", strings.NewReader("{}"))
				if err != nil {
					failed.Add(1)
					continue
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	require.Zero(b, failed.Load(), "events refused")
}
