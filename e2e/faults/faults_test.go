// Package faults is the fault suite (make test-faults): three mozpoold
// processes, each in its own network namespace, and the simulated lab in
// another, joined by a bridge; a nemesis partitions, slows, pauses and kills
// them in turn while clients create, renew, read and return requests and
// record a history; a checker then proves that no acknowledged write was
// lost, no board was held by two requests, no read went back in time and
// each request's history is linearizable. It needs root, ip(8) and
// iptables(8), and runs only with MOZPOOL_FAULTS=1.
package faults

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/api"
	"github.com/mozpool/mozpool/client"
)

const (
	boardsPerRack  = 15
	timeScale      = 0.05
	clientsPerNode = 3
	// Each scenario: traffic before the fault, the fault, traffic after.
	warmup   = 3 * time.Second
	faultFor = 10 * time.Second
	settle   = 7 * time.Second
)

func skipUnlessFaults(t *testing.T) {
	t.Helper()
	if os.Getenv("MOZPOOL_FAULTS") != "1" {
		t.Skip("the fault suite runs with MOZPOOL_FAULTS=1 (make test-faults)")
	}
	if os.Geteuid() != 0 {
		t.Skip("the fault suite needs root (network namespaces)")
	}
	for _, tool := range []string{"ip", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("the fault suite needs %s", tool)
		}
	}
}

// scenario is one fault: do applies it (and heals it, for faults that
// end by themselves) and names the nodes it touched.
type scenario struct {
	name string
	do   func(l *lab, leader int) (touched []int)
}

// nodesExcept are the indexes 0..2 other than the given ones.
func nodesExcept(xs ...int) []int {
	var out []int
	for i := range 3 {
		if !slices.Contains(xs, i) {
			out = append(out, i)
		}
	}
	return out
}

var scenarios = []scenario{
	{"isolate-leader", func(l *lab, leader int) []int {
		for _, o := range nodesExcept(leader) {
			l.cut(l.nodes[leader], l.nodes[o])
		}
		time.Sleep(faultFor)
		return []int{leader}
	}},
	{"isolate-follower", func(l *lab, leader int) []int {
		f := nodesExcept(leader)[0]
		for _, o := range nodesExcept(f) {
			l.cut(l.nodes[f], l.nodes[o])
		}
		time.Sleep(faultFor)
		return []int{f}
	}},
	{"bridge", func(l *lab, leader int) []int {
		// A follower sees both sides; the leader and the other
		// follower do not see each other.
		other := nodesExcept(leader)[1]
		l.cut(l.nodes[leader], l.nodes[other])
		time.Sleep(faultFor)
		return []int{leader, other}
	}},
	{"flap-leader-link", func(l *lab, leader int) []int {
		for range 4 {
			l.sh("ip", "link", "set", l.nodes[leader].veth, "down")
			time.Sleep(1500 * time.Millisecond)
			l.sh("ip", "link", "set", l.nodes[leader].veth, "up")
			time.Sleep(1000 * time.Millisecond)
		}
		return []int{leader}
	}},
	{"latency-loss", func(l *lab, leader int) []int {
		l.proxy.setDelay(100 * time.Millisecond)
		l.lossy(0.05)
		time.Sleep(faultFor)
		return nil
	}},
	{"pause-leader", func(l *lab, leader int) []int {
		l.nodes[leader].signal(syscall.SIGSTOP)
		time.Sleep(faultFor)
		l.nodes[leader].signal(syscall.SIGCONT)
		return []int{leader}
	}},
	{"kill-leader", func(l *lab, leader int) []int {
		l.kill(l.nodes[leader])
		time.Sleep(5 * time.Second)
		l.start(l.nodes[leader], timeScale)
		return []int{leader}
	}},
	{"kill-all", func(l *lab, leader int) []int {
		for _, n := range l.nodes {
			l.kill(n)
		}
		time.Sleep(2 * time.Second)
		for _, n := range l.nodes {
			l.start(n, timeScale)
		}
		return []int{0, 1, 2}
	}},
}

// result is one row of the table.
type result struct {
	name                                                                   string
	ops, acked, lost, doubles, stale, backward, skewed, nonLinear, unknown int
	gap                                                                    time.Duration
	healthy                                                                string
	leaders                                                                string
}

func TestFaults(t *testing.T) {
	skipUnlessFaults(t)
	l := newLab(t, boardsPerRack, timeScale)
	l.waitReadyBoards(l.devices / 2)

	var results []result
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			l.t = t
			defer func() { l.t = nil }()
			r := l.runScenario(sc)
			results = append(results, r)
			t.Log(table([]result{r}))
			require.Zero(t, r.lost, "acknowledged writes lost")
			require.Zero(t, r.doubles, "boards held by two requests")
			require.Zero(t, r.stale, "reads that went back in time")
			require.Zero(t, r.nonLinear, "requests whose history is not linearizable")
			require.Zero(t, r.backward, "requests whose state went back")
		})
		l.t = t
		if t.Failed() {
			break
		}
	}
	fmt.Print(table(results))
}

// table formats rows of results under a header.
func table(rs []result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n%-18s %6s %6s %5s %7s %6s %5s %6s %7s %9s %5s  %-7s  %s\n", "scenario", "ops", "acked", "lost",
		"doubles", "stale", "back", "nonlin", "unknown", "write-gap", "skew", "leader", "healthy nodes")
	for _, r := range rs {
		gap := "-"
		if r.healthy != "" {
			gap = r.gap.Round(10 * time.Millisecond).String()
		}
		fmt.Fprintf(&b, "%-18s %6d %6d %5d %7d %6d %5d %6d %7d %9s %5d  %-7s  %s\n", r.name, r.ops, r.acked, r.lost,
			r.doubles, r.stale, r.backward, r.nonLinear, r.unknown, gap, r.skewed, r.leaders, r.healthy)
	}
	return b.String()
}

// leader returns the index of the node that says it leads.
func (l *lab) leader() int {
	for i, n := range l.nodes {
		c := client.New(n.url, client.WithTimeout(2*time.Second), client.WithRetries(0))
		st, err := c.ClusterStatus(context.Background())
		if err == nil && st.State == "Leader" {
			return i
		}
	}
	return -1
}

// waitReadyBoards waits until at least n boards are ready.
func (l *lab) waitReadyBoards(n int) {
	c := client.New(l.nodes[0].url, client.WithTimeout(5*time.Second))
	require.Eventually(l.t, func() bool {
		devs, err := c.DeviceDetails(context.Background())
		if err != nil {
			return false
		}
		ready := 0
		for _, d := range devs {
			if d.State == "ready" {
				ready++
			}
		}
		return ready >= n
	}, 3*time.Minute, 500*time.Millisecond, "boards did not become ready")
}

func (l *lab) runScenario(sc scenario) result {
	t := l.t
	// Start from a healthy cluster with a leader.
	for _, n := range l.nodes {
		l.waitHealthy(n, 2*time.Minute)
	}
	var leader int
	require.Eventually(t, func() bool { leader = l.leader(); return leader >= 0 }, time.Minute, 100*time.Millisecond)

	h := &history{}
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var workers []*worker
	for i := range 3 * clientsPerNode {
		w := newWorker(i, i%3, sc.name, l.token, l.urls(), l.devices, h)
		workers = append(workers, w)
		wg.Add(1)
		go func() { defer wg.Done(); w.run(ctx) }()
	}
	time.Sleep(warmup)
	faultStart := time.Now()
	touched := sc.do(l, leader)
	l.heal()
	time.Sleep(settle)
	stop()
	wg.Wait()
	end := time.Now()
	for _, n := range l.nodes {
		require.True(t, n.running(), "%s exited; see %s", n.name, n.logPath)
	}

	ops := h.all()
	r := result{name: sc.name, ops: len(ops)}
	after := -1
	require.Eventually(t, func() bool { after = l.leader(); return after >= 0 }, time.Minute, 100*time.Millisecond)
	r.leaders = fmt.Sprintf("%d->%d", leader+1, after+1)
	counts, causes := map[string]int{}, map[string]int{}
	for _, o := range ops {
		counts[o.kind.String()+" "+o.out.String()]++
		if o.out != outOK {
			causes[errorKind(o)]++
		}
	}
	t.Logf("%s: operations by outcome %v; not ok because %v; %d connections between nodes went through the proxies so far",
		sc.name, counts, causes, l.proxy.accepted.Load())
	var healthy []string
	for i, n := range l.nodes {
		if !slices.Contains(touched, i) {
			healthy = append(healthy, n.name[len(n.name)-3:])
		}
	}
	r.healthy = strings.Join(healthy, ",")
	r.gap = writeGap(ops, touched, faultStart, end)
	for _, o := range ops {
		if o.out == outOK && o.kind != opRead {
			r.acked++
		}
		if o.out == outUnknown {
			r.unknown++
		}
		if o.stale != "" {
			r.stale++
			t.Errorf("stale read: client %d, request %d through %s: %s", o.client, o.req, l.nodes[o.node].name, o.stale)
		}
	}
	l.check(ops, &r)
	l.reset(sc.name)
	l.round++
	return r
}

// span is a request's hold on a board, [from, to) in log indexes.
type span struct {
	req      int64
	from, to uint64
}

// overlapping describes the spans of one board that overlap.
func overlapping(byDevice map[string][]span) []string {
	var out []string
	for dev, ss := range byDevice {
		ss = slices.Clone(ss)
		sort.Slice(ss, func(i, j int) bool { return ss[i].from < ss[j].from })
		// Sorted by start, spans overlap somewhere if and only if two
		// neighbours do.
		for i := 1; i < len(ss); i++ {
			if ss[i].from < ss[i-1].to {
				out = append(out, fmt.Sprintf("board %s held by request %d [%d, %d) and request %d [%d, %d)", dev,
					ss[i-1].req, ss[i-1].from, ss[i-1].to, ss[i].req, ss[i].from, ss[i].to))
			}
		}
	}
	return out
}

// forward checks that states entered in this order only move forward; it
// describes the first step back.
func forward(states []string) string {
	for i := 1; i < len(states); i++ {
		prev, cur := states[i-1], states[i]
		if stateRank(cur) < stateRank(prev) || (stateRank(prev) == 4 && cur != prev) {
			return fmt.Sprintf("%s after %s", cur, prev)
		}
	}
	return ""
}

// checkReplicated reads every request's claim history and log from node
// l.round%3; it counts the pairs of claim spans that overlap on one
// device, and the requests whose log enters an earlier state after a
// later one.
func (l *lab) checkReplicated(top uint64, reqs map[int64]api.RequestSummary) (doubles, backward, skewed int) {
	t := l.t
	n := l.nodes[l.round%len(l.nodes)]
	var mu sync.Mutex
	byDevice := map[string][]span{}
	ids := make(chan int64)
	var wg sync.WaitGroup
	for range 4 {
		ix := &client.Index{}
		ix.Observe(top)
		c := client.New(n.url, client.WithIndex(ix), client.WithTimeout(10*time.Second))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range ids {
				q, err := c.Request(context.Background(), id)
				if err != nil {
					t.Errorf("details of request %d from %s: %v", id, n.name, err)
					continue
				}
				entries, err := c.RequestLog(context.Background(), id)
				if err != nil {
					t.Errorf("log of request %d from %s: %v", id, n.name, err)
					continue
				}
				// The log comes in time order (the commands' timestamps);
				// its ids are in the order this node applied the entries.
				var byTime, shown []string
				for _, e := range entries {
					if s, ok := enteredState(e.Message); ok {
						byTime = append(byTime, s)
						shown = append(shown, fmt.Sprintf("%s@%s#%d", s, e.Timestamp, e.ID))
					}
				}
				slices.SortStableFunc(entries, func(a, b api.LogEntry) int { return cmp.Compare(a.ID, b.ID) })
				var applied []string
				for _, e := range entries {
					if s, ok := enteredState(e.Message); ok {
						applied = append(applied, s)
					}
				}
				mu.Lock()
				if why := forward(applied); why != "" {
					t.Errorf("request %d went back: %s (states as applied %v)", id, why, applied)
					backward++
				}
				if why := forward(byTime); why != "" {
					t.Logf("request %d: its log in time order shows %s (state@time#id: %v)", id, why, shown)
					skewed++
				}
				for _, cl := range q.Claims {
					to := cl.To
					if to == 0 {
						to = math.MaxUint64
					}
					byDevice[cl.Device] = append(byDevice[cl.Device], span{id, cl.From, to})
				}
				mu.Unlock()
			}
		}()
	}
	for id := range reqs {
		ids <- id
	}
	close(ids)
	wg.Wait()
	spans := 0
	for _, ss := range byDevice {
		spans += len(ss)
	}
	overlaps := overlapping(byDevice)
	for _, o := range overlaps {
		t.Error(o)
	}
	doubles = len(overlaps)
	t.Logf("claim history from %s: %d spans over %d boards, %d requests", n.name, spans, len(byDevice), len(reqs))
	return doubles, backward, skewed
}

// errorKind sums up why an operation failed: its HTTP status or the kind
// of failure.
func errorKind(o op) string {
	msg := o.err
	switch {
	case o.status != 0:
		return fmt.Sprintf("HTTP %d", o.status)
	case strings.Contains(msg, "deadline exceeded") || strings.Contains(msg, "Timeout"):
		return "timeout"
	case strings.Contains(msg, "connection refused"):
		return "refused"
	case strings.Contains(msg, "connection reset") || strings.Contains(msg, "EOF"):
		return "reset"
	}
	if len(msg) > 40 {
		msg = msg[:40]
	}
	return msg
}

// writeGap is the longest time, from the fault's start to the end of the
// traffic, that a client of a node the fault did not touch went without an
// acknowledged write.
func writeGap(ops []op, touched []int, from, to time.Time) time.Duration {
	acks := map[int][]time.Time{}
	homes := map[int]int{}
	for _, o := range ops {
		if o.kind == opCreate {
			homes[o.client] = o.node
		}
	}
	for _, o := range ops {
		if o.out == outOK && o.kind != opRead && o.end.After(from) && !slices.Contains(touched, homes[o.client]) {
			acks[o.client] = append(acks[o.client], o.end)
		}
	}
	var gap time.Duration
	for c, home := range homes {
		if slices.Contains(touched, home) {
			continue
		}
		ts := append([]time.Time{from}, acks[c]...)
		sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
		ts = append(ts, to)
		for i := 1; i < len(ts); i++ {
			gap = max(gap, ts[i].Sub(ts[i-1]))
		}
	}
	return gap
}

// check waits for every node to apply everything acknowledged, then
// compares each node's state with the history.
func (l *lab) check(ops []op, r *result) {
	t := l.t
	var top uint64
	for _, o := range ops {
		top = max(top, o.gotIndex)
	}
	type view struct {
		reqs map[int64]api.RequestSummary
		devs []api.Device
	}
	views := make([]view, len(l.nodes))
	for i, n := range l.nodes {
		ix := &client.Index{}
		ix.Observe(top)
		c := client.New(n.url, client.WithIndex(ix), client.WithTimeout(10*time.Second))
		require.Eventually(t, func() bool {
			reqs, err := c.Requests(context.Background(), true)
			if err != nil {
				return false
			}
			devs, err := c.DeviceDetails(context.Background())
			if err != nil {
				return false
			}
			views[i] = view{reqs: map[int64]api.RequestSummary{}, devs: devs}
			for _, q := range reqs {
				views[i].reqs[q.ID] = q
			}
			return true
		}, 2*time.Minute, 200*time.Millisecond, "%s did not catch up to index %d", n.name, top)
	}

	// Every acknowledged create exists on every node with its fields;
	// every acknowledged return left its request closed (or failed).
	lost := map[int64]bool{}
	for _, o := range ops {
		if o.out != outOK || o.kind == opRead {
			continue
		}
		for i, v := range views {
			q, ok := v.reqs[o.req]
			switch {
			case o.kind == opCreate && !ok:
				t.Errorf("acknowledged create %d (%s) not on %s", o.req, o.key, l.nodes[i].name)
				lost[o.req] = true
			case o.kind == opCreate && (q.Assignee != o.key || q.RequestedDevice != o.device ||
				!strings.Contains(q.BootConfig, "http://b2g/"+o.key)):
				t.Errorf("request %d on %s: %+v, created as %s", o.req, l.nodes[i].name, q, o.key)
				lost[o.req] = true
			case o.kind == opReturn && (!ok || (q.State != "closed" && !strings.HasPrefix(q.State, "failed_"))):
				t.Errorf("acknowledged return of %d: state %q on %s", o.req, q.State, l.nodes[i].name)
				lost[o.req] = true
			}
		}
	}
	r.lost = len(lost)

	// No board held by two requests, on any node.
	for i, v := range views {
		holder := map[string]int64{}
		for _, q := range v.reqs {
			if q.AssignedDevice == "" {
				continue
			}
			if other, dup := holder[q.AssignedDevice]; dup {
				t.Errorf("%s: board %s held by requests %d and %d", l.nodes[i].name, q.AssignedDevice, other, q.ID)
				r.doubles++
			}
			holder[q.AssignedDevice] = q.ID
		}
		for _, d := range v.devs {
			if d.RequestID != nil {
				if q, ok := v.reqs[*d.RequestID]; !ok || q.AssignedDevice != d.Name {
					t.Errorf("%s: board %s says request %d, which does not hold it", l.nodes[i].name, d.Name, *d.RequestID)
					r.doubles++
				}
			}
		}
	}

	// No board held by two requests at once over the whole replicated
	// history: the claim spans of every request, read from one node (a
	// different one each scenario), never overlap on a device.
	// Every request's states, as its log entered them, only move forward.
	doubles, backward, skewed := l.checkReplicated(top, views[l.round%len(views)].reqs)
	r.doubles += doubles
	r.backward, r.skewed = backward, skewed

	// Each request's history is linearizable.
	bad, res := linearizable(ops)
	if res != porcupine.Ok {
		t.Errorf("porcupine: %s; requests %v", res, bad)
		r.nonLinear = max(1, len(bad))
	}
}

// enteredState reads the state a request log line says it entered, without
// the audit suffix that names who made the write (" (by NAME)").
func enteredState(msg string) (string, bool) {
	s, ok := strings.CutPrefix(msg, "entering state ")
	if !ok {
		return "", false
	}
	if i := strings.Index(s, " (by "); i >= 0 {
		s = s[:i]
	}
	return s, true
}

// reset returns every request the scenario left open (with the token that
// created them: another caller may not).
func (l *lab) reset(scen string) {
	c := client.New(l.nodes[0].url, client.WithTimeout(10*time.Second), client.WithToken(l.token))
	require.Eventually(l.t, func() bool {
		reqs, err := c.Requests(context.Background(), false)
		if err != nil {
			return false
		}
		open := 0
		for _, q := range reqs {
			if strings.HasPrefix(q.Assignee, "faults-"+scen+"-") && !strings.HasPrefix(q.State, "failed_") {
				open++
				_ = c.ReturnRequest(context.Background(), q.ID)
			}
		}
		return open == 0
	}, time.Minute, 200*time.Millisecond, "requests left open")
}
