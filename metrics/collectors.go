package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mozpool/mozpool/fsm"
)

// stateCollector counts devices and requests in the replicated state when
// scraped: one pass over the maps under the read lock (at 10,000 devices,
// see BenchmarkStateCollector: go test -bench StateCollector ./metrics/).
type stateCollector struct {
	fsm      *fsm.FSM
	devices  *prometheus.Desc
	requests *prometheus.Desc
	waiting  *prometheus.Desc
	// queued and queueWait: the requests waiting in the queue, and the
	// age of the oldest of them, by fair-share group.
	queued    *prometheus.Desc
	queueWait *prometheus.Desc
	now       func() time.Time
}

// waitingStates are the request states of a request that has no device
// yet; mozpool_request_oldest_waiting_seconds reports their oldest.
var waitingStates = map[string]bool{"new": true, "finding_device": true, "pending": true}

// RegisterState exports the devices by state and imaging server and the
// requests by state of the replicated state (the same on every node).
func (m *Metrics) RegisterState(f *fsm.FSM) {
	m.Registry.MustRegister(&stateCollector{
		fsm: f,
		devices: prometheus.NewDesc(Namespace+"_devices", "Devices by lifeguard state and imaging server (replicated state: the same on every node).",
			[]string{"state", "imaging_server"}, nil),
		requests: prometheus.NewDesc(Namespace+"_requests", "Requests by state (replicated state: the same on every node).",
			[]string{"state"}, nil),
		waiting: prometheus.NewDesc(Namespace+"_request_oldest_waiting_seconds",
			"Age of the oldest request still waiting for a device (new, finding_device, pending), by state; absent when none waits.",
			[]string{"state"}, nil),
		queued: prometheus.NewDesc(Namespace+"_queue_requests",
			"Requests waiting in the queue for a board, by fair-share group (the request's group, else its assignee).",
			[]string{"group"}, nil),
		queueWait: prometheus.NewDesc(Namespace+"_queue_oldest_wait_seconds",
			"How long the longest-waiting request of each fair-share group has been in the queue; absent for a group with none waiting.",
			[]string{"group"}, nil),
		now: time.Now,
	})
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.devices
	ch <- c.requests
	ch <- c.waiting
	ch <- c.queued
	ch <- c.queueWait
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	type key struct{ state, server string }
	devices := map[key]int{}
	requests := map[string]int{}
	oldest := map[string]time.Time{}
	queued := map[string]int{}
	queuedSince := map[string]time.Time{}
	c.fsm.Read(func(s *fsm.State) {
		for _, d := range s.Devices {
			devices[key{d.State, d.ImagingServer}]++
		}
		for _, r := range s.Requests {
			requests[r.State]++
			if r.QueueSeq != 0 {
				g := r.FairGroup()
				queued[g]++
				if o, ok := queuedSince[g]; !ok || r.QueuedAt.Before(o) {
					queuedSince[g] = r.QueuedAt
				}
			}
			if waitingStates[r.State] {
				if o, ok := oldest[r.State]; !ok || r.Created.Before(o) {
					oldest[r.State] = r.Created
				}
			}
		}
	})
	now := c.now()
	for st, created := range oldest {
		ch <- prometheus.MustNewConstMetric(c.waiting, prometheus.GaugeValue, max(now.Sub(created).Seconds(), 0), st)
	}
	for g, n := range queued {
		ch <- prometheus.MustNewConstMetric(c.queued, prometheus.GaugeValue, float64(n), g)
		ch <- prometheus.MustNewConstMetric(c.queueWait, prometheus.GaugeValue, max(now.Sub(queuedSince[g]).Seconds(), 0), g)
	}
	for k, n := range devices {
		ch <- prometheus.MustNewConstMetric(c.devices, prometheus.GaugeValue, float64(n), k.state, k.server)
	}
	for st, n := range requests {
		ch <- prometheus.MustNewConstMetric(c.requests, prometheus.GaugeValue, float64(n), st)
	}
}

// ClusterStatus is what the cluster collector reads of the Raft node
// (cluster.Node).
type ClusterStatus interface {
	IsLeader() bool
	HasLeader() bool
	CaughtUp() bool
	Indexes() (applied, commit, lastLog, term uint64)
}

// RegisterCluster exports this node's view of the cluster: whether it
// leads, knows a leader, has caught up, and its Raft indexes.
func (m *Metrics) RegisterCluster(c ClusterStatus) {
	gauge := func(name, help string, f func() float64) prometheus.GaugeFunc {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: Namespace, Subsystem: "cluster", Name: name, Help: help}, f)
	}
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	m.Registry.MustRegister(
		gauge("is_leader", "1 if this node is the Raft leader.", func() float64 { return b(c.IsLeader()) }),
		gauge("has_leader", "1 if this node knows a Raft leader.", func() float64 { return b(c.HasLeader()) }),
		gauge("caught_up", "1 if this node has applied the log up to close to the commit index and knows a leader (it serves reads).",
			func() float64 { return b(c.CaughtUp()) }),
	)
	m.Registry.MustRegister(&indexCollector{c: c,
		applied: prometheus.NewDesc(Namespace+"_raft_applied_index", "Index of the last log entry applied to this node's state.", nil, nil),
		commit:  prometheus.NewDesc(Namespace+"_raft_commit_index", "Index of the last log entry this node knows is committed.", nil, nil),
		last:    prometheus.NewDesc(Namespace+"_raft_last_log_index", "Index of the last entry in this node's Raft log.", nil, nil),
		term:    prometheus.NewDesc(Namespace+"_raft_term", "This node's current Raft term.", nil, nil),
	})
}

type indexCollector struct {
	c                           ClusterStatus
	applied, commit, last, term *prometheus.Desc
}

func (c *indexCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.applied
	ch <- c.commit
	ch <- c.last
	ch <- c.term
}

func (c *indexCollector) Collect(ch chan<- prometheus.Metric) {
	applied, commit, last, term := c.c.Indexes()
	ch <- prometheus.MustNewConstMetric(c.applied, prometheus.GaugeValue, float64(applied))
	ch <- prometheus.MustNewConstMetric(c.commit, prometheus.GaugeValue, float64(commit))
	ch <- prometheus.MustNewConstMetric(c.last, prometheus.GaugeValue, float64(last))
	ch <- prometheus.MustNewConstMetric(c.term, prometheus.GaugeValue, float64(term))
}

// RegisterRelayQueue exports the number of relay operations waiting for
// their board on this node.
func (m *Metrics) RegisterRelayQueue(waiting func() int) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: Namespace, Subsystem: "relay", Name: "queue_depth",
		Help: "Relay-board operations on this node waiting for their board (queued behind another operation).",
	}, func() float64 { return float64(waiting()) }))
}

// RegisterLogStore exports the size of this node's log store and how many
// entries retention has deleted since the node started.
func (m *Metrics) RegisterLogStore(size func() int64, pruned func() uint64) {
	m.Registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: Namespace, Subsystem: "logstore", Name: "size_bytes",
			Help: "Size of this node's device and request log database.",
		}, func() float64 { return float64(size()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "logstore", Name: "pruned_entries_total",
			Help: "Log entries this node's log store deleted under its retention.",
		}, func() float64 { return float64(pruned()) }),
	)
}
