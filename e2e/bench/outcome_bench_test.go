package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mozpool/mozpool/api"
	"github.com/mozpool/mozpool/daemon/daemontest"
	"github.com/mozpool/mozpool/events"
	"github.com/mozpool/mozpool/fsm"
	"github.com/mozpool/mozpool/lifeguard"
	"github.com/mozpool/mozpool/sim"
)

// Outcome soak parameters. Simulated durations are multiplied by
// outcomeScale (0.05: ten simulated minutes take 30 s).
const (
	outcomeScale   = 0.05
	outcomeBoards  = 300
	outcomeClients = 100
	// healthPeriod is ready's health-check interval (lifeguard), simulated.
	healthPeriod = 600 * time.Second
	// outcomeRun is how long the CI-like traffic runs, simulated.
	outcomeRun = 80 * time.Minute
	// outcomeHold is how long a client keeps a board once it is ready.
	outcomeHold = 2 * time.Minute
)

func scaled(d time.Duration) time.Duration { return time.Duration(float64(d) * outcomeScale) }

// transition is one state entry seen on the event stream.
type transition struct {
	at    time.Time
	state string
}

// outcomeWatch records device and request transitions from one node's
// event stream.
type outcomeWatch struct {
	mu       sync.Mutex
	devices  map[string][]transition
	requests map[int64]events.Event // newest event per request
	readyAt  map[int64]time.Time
	readyDev map[int64]string
}

func watchOutcome(b *testing.B, c *daemontest.Cluster) *outcomeWatch {
	w := &outcomeWatch{devices: map[string][]transition{}, requests: map[int64]events.Event{}, readyAt: map[int64]time.Time{}, readyDev: map[int64]string{}}
	sub := c.Nodes[0].Daemon.Events.Subscribe()
	b.Cleanup(sub.Close)
	// Exits when the subscription is closed at cleanup.
	go func() {
		for e := range sub.C() {
			w.mu.Lock()
			switch e.Kind {
			case events.KindDevice:
				w.devices[e.Name] = append(w.devices[e.Name], transition{e.At, e.State})
			case events.KindRequest:
				id, _ := strconv.ParseInt(e.Name, 10, 64)
				w.requests[id] = e
				if e.State == "ready" {
					if _, seen := w.readyAt[id]; !seen {
						w.readyAt[id], w.readyDev[id] = e.At, e.Device
					}
				}
			}
			w.mu.Unlock()
		}
	}()
	return w
}

// BenchmarkOutcome is the soak of docs/operations.md ("Outcome soak"):
// 3 nodes, 300 simulated boards with the simulator's default failure
// rates, 2% of them broken, 3% flaky, one relay board whose relays stop
// switching for ten simulated minutes, and CI-like traffic (100 clients
// that each request any board, hold it two simulated minutes once it is
// ready, return it, and start again) for 80 simulated minutes. The b2g
// image they ask for is marked in_advance, so idle boards are imaged with
// it before anyone asks. It reports, from the simulator's ground truth:
//
//   - good_handout_%: hand-outs (requests reaching ready) whose board is
//     neither broken nor flaky;
//   - broken_retire_periods: mean health-check periods (10 simulated
//     minutes) from a broken board's first ready to its retirement
//     (a failed_* state it is still in at the end), over the broken
//     boards retired; broken_retired_% how many were;
//   - relay_good_retired: good boards behind the faulty relay board that
//     entered a failed_* state from the fault's start to two periods
//     after its end; control_good_retired the same for the next relay
//     board, which has no fault (the background: a good board's self-test
//     hangs one time in five by default);
//   - ready_vs_ideal: mean request-to-ready time over the ideal imaging
//     time (the simulator's mean boot and imaging delays, scaled).
func BenchmarkOutcome(b *testing.B) {
	if b.N > 1 {
		b.Skip("a soak: run with -benchtime 1x")
	}
	c := daemontest.New(b, 3, daemontest.Options{TimeScale: outcomeScale})
	cfg := c.SimConfig(b, outcomeBoards/3)
	cfg.RelayRecovery = 10 * time.Millisecond
	cfg.BrokenFraction, cfg.FlakyFraction = 0.02, 0.03
	cfg.FaultyRelay = &sim.RelayFault{Board: 0, After: 15 * time.Minute, For: 10 * time.Minute}
	w := watchOutcome(b, c)
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	lab := daemontest.StartSim(b, cfg)
	labStart := time.Now()
	// The lab writes b2g, which CI asks for, on idle boards in advance.
	inv := lab.Inventory()
	for i := range inv.Images {
		if inv.Images[i].Name == "b2g" {
			inv.Images[i].InAdvance = true
		}
	}
	c.LoadInventory(inv)

	truth := map[string]sim.BoardState{}
	for _, s := range lab.Boards() {
		truth[s.Name] = s
	}
	// The first relay board is the faulty one; the second, as large, is
	// the control: its good boards' failures in the same window are the
	// background the fault adds to.
	faultyRelay, controlRelay := lab.Relays()[0].Addr, lab.Relays()[1].Addr
	good := func(name string) bool { s := truth[name]; return !s.Broken && !s.Flaky }

	// CI-like traffic.
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 128, TLSClientConfig: c.ClientTLS()}, Timeout: 30 * time.Second}
	body := []byte(`{"assignee": "ci", "duration": 86400, "image": "b2g", "b2gbase": "http://x"}`)
	runCtx, stopRun := context.WithTimeout(ctx, scaled(outcomeRun))
	defer stopRun()
	type handout struct {
		device string
		wait   time.Duration
	}
	var mu sync.Mutex
	var handouts []handout
	var gaveUp int
	var wg sync.WaitGroup
	for i := 0; i < outcomeClients; i++ {
		wg.Add(1)
		// Exits when runCtx ends.
		go func() {
			defer wg.Done()
			node := c.Nodes[i%len(c.Nodes)]
			for runCtx.Err() == nil {
				id, created, ok := createRequest(hc, node.URL, body)
				if !ok {
					sleepCtx(runCtx, scaled(time.Minute))
					continue
				}
				dev, ready := waitReady(runCtx, w, id, scaled(60*time.Minute))
				if ready {
					w.mu.Lock()
					at := w.readyAt[id]
					w.mu.Unlock()
					mu.Lock()
					handouts = append(handouts, handout{dev, at.Sub(created)})
					mu.Unlock()
					sleepCtx(runCtx, scaled(outcomeHold))
				} else if runCtx.Err() == nil {
					mu.Lock()
					gaveUp++
					mu.Unlock()
				}
				resp, err := hc.Post(fmt.Sprintf("%s/api/request/%d/return/", node.URL, id), "application/json", nil)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		}()
	}
	b.ResetTimer()
	wg.Wait()
	b.StopTimer()
	end := time.Now()

	// Figures.
	var goodN, brokenOut, flakyOut int
	var waitSum time.Duration
	for _, h := range handouts {
		switch s := truth[h.device]; {
		case s.Broken:
			brokenOut++
		case s.Flaky:
			flakyOut++
		default:
			goodN++
		}
		waitSum += h.wait
	}
	badOuts := map[string]int{}
	for _, h := range handouts {
		if !good(h.device) {
			badOuts[h.device]++
		}
	}
	for name, n := range badOuts {
		detail("bad hand-outs of %s (%+v): %d", name, struct{ Broken, Flaky bool }{truth[name].Broken, truth[name].Flaky}, n)
	}
	current := map[string]string{}
	histories := map[string][]fsm.Outcome{}
	goodQuarantineKinds := map[string]int{}
	c.Nodes[0].FSM.Read(func(s *fsm.State) {
		for name, d := range s.Devices {
			current[name] = d.State
			histories[name] = append([]fsm.Outcome(nil), d.History...)
			if (d.State == "failed_flapping" || d.State == "failed_health_checks") && good(name) {
				for _, o := range fsm.SinceReset(d.History) {
					if !o.OK() {
						goodQuarantineKinds[o.Fail]++
					}
				}
			}
		}
	})
	w.mu.Lock()
	for name := range badOuts {
		var path []string
		for _, t := range w.devices[name] {
			path = append(path, t.state)
		}
		detail("%s: now %s, history %v, states %v", name, current[name], histories[name], path)
	}
	var brokenN, retired int
	// Where the broken boards are at the end: retired, or not yet out of
	// their first self-test (never ready, never handed out), or elsewhere.
	brokenStates := map[string]int{}
	var retireSum float64
	faultFrom := labStart.Add(scaled(cfg.FaultyRelay.After))
	faultTo := faultFrom.Add(scaled(cfg.FaultyRelay.For + 2*healthPeriod))
	relayGoodRetired, controlGoodRetired := 0, 0
	// Quarantined boards at the end, by ground truth, and the good ones'
	// failure kinds.
	quarantined := map[string]int{}
	for name, s := range truth {
		ts := w.devices[name]
		if s.Broken {
			brokenN++
			brokenStates[current[name]]++
			if !strings.HasPrefix(current[name], "failed_") {
				var path []string
				for _, t := range ts {
					path = append(path, fmt.Sprintf("%s@%.1f", t.state, float64(t.at.Sub(labStart))/float64(scaled(healthPeriod))))
				}
				detail("broken board %s not retired: now %s, history %v, states (at health-check periods) %v", name, current[name], histories[name], path)
			}
			if strings.HasPrefix(current[name], "failed_") && len(ts) > 0 {
				var firstReady time.Time
				for _, t := range ts {
					if t.state == string(lifeguard.StateReady) {
						firstReady = t.at
						break
					}
				}
				last := ts[len(ts)-1].at
				if firstReady.IsZero() || firstReady.After(last) {
					firstReady = last
				}
				retired++
				retireSum += float64(last.Sub(firstReady)) / float64(scaled(healthPeriod))
			}
		}
		if st := current[name]; st == "failed_flapping" || st == "failed_health_checks" {
			switch {
			case s.Broken:
				quarantined["broken"]++
			case s.Flaky:
				quarantined["flaky"]++
			default:
				quarantined["good"]++
			}
		}
		if (s.Relay.Host == faultyRelay || s.Relay.Host == controlRelay) && good(name) {
			for _, t := range ts {
				if strings.HasPrefix(t.state, "failed_") && !t.at.Before(faultFrom) && t.at.Before(faultTo) {
					if s.Relay.Host == faultyRelay {
						relayGoodRetired++
					} else {
						controlGoodRetired++
					}
					detail("good board %s (relay %s) entered %s: history %v", name, s.Relay.Host, t.state, histories[name])
					break
				}
			}
		}
	}
	w.mu.Unlock()
	d := cfg.Delays
	ideal := scaled(2*d.Booting.Mean + d.MobileInit.Mean + d.Downloading.Mean + d.Extracting.Mean + d.Rebooting.Mean)
	// Printed rather than logged: the lab's log lines would bury it.
	fmt.Printf("outcome: run %s: %d hand-outs (%d good, %d broken, %d flaky), %d requests given up; broken boards %d, retired %d (states at the end %v); ideal imaging %s; quarantined %v (good ones' failures %v); states at the end %v\n",
		end.Sub(labStart).Round(time.Second), len(handouts), goodN, brokenOut, flakyOut, gaveUp, brokenN, retired, brokenStates, ideal, quarantined, goodQuarantineKinds, countStates(current))
	if len(handouts) > 0 {
		b.ReportMetric(100*float64(goodN)/float64(len(handouts)), "good_handout_%")
		b.ReportMetric(float64(waitSum)/float64(len(handouts))/float64(ideal), "ready_vs_ideal")
	}
	b.ReportMetric(float64(len(handouts)), "handouts")
	if retired > 0 {
		b.ReportMetric(retireSum/float64(retired), "broken_retire_periods")
	}
	if brokenN > 0 {
		b.ReportMetric(100*float64(retired)/float64(brokenN), "broken_retired_%")
	}
	b.ReportMetric(float64(relayGoodRetired), "relay_good_retired")
	b.ReportMetric(float64(controlGoodRetired), "control_good_retired")
}

// detail prints one line of the soak's explanation when
// MOZPOOL_OUTCOME_DETAIL is set: which boards were handed out bad, which
// good ones were retired, and their histories.
func detail(format string, args ...any) {
	if os.Getenv("MOZPOOL_OUTCOME_DETAIL") != "" {
		fmt.Printf("outcome detail: "+format+"\n", args...)
	}
}

func countStates(states map[string]string) map[string]int {
	out := map[string]int{}
	for _, s := range states {
		out[s]++
	}
	return out
}

// createRequest asks node for any board; ok is false when none was free
// or the call failed.
func createRequest(hc *http.Client, url string, body []byte) (id int64, at time.Time, ok bool) {
	at = time.Now()
	resp, err := hc.Post(url+"/api/device/any/request/", "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, at, false
	}
	defer resp.Body.Close()
	var out api.RequestReply
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&out) != nil {
		io.Copy(io.Discard, resp.Body)
		return 0, at, false
	}
	return out.Request.ID, at, true
}

// waitReady waits for request id to reach ready (returning its device), a
// failed or closed state, or the deadline.
func waitReady(ctx context.Context, w *outcomeWatch, id int64, limit time.Duration) (string, bool) {
	deadline := time.Now().Add(limit)
	for ctx.Err() == nil && time.Now().Before(deadline) {
		w.mu.Lock()
		e, ok := w.requests[id]
		_, ready := w.readyAt[id]
		dev := w.readyDev[id]
		w.mu.Unlock()
		if ready {
			return dev, true
		}
		if ok {
			switch {
			case strings.HasPrefix(e.State, "failed_"), e.State == "closed", e.State == "expired":
				return "", false
			}
		}
		sleepCtx(ctx, 20*time.Millisecond)
	}
	return "", false
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
