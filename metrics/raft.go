package metrics

import (
	"sync"
	"time"

	gometrics "github.com/hashicorp/go-metrics"
	gmprom "github.com/hashicorp/go-metrics/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
)

// raftMetric is one of Raft's go-metrics keys that /metrics exports, under
// its Prometheus name. Timings come from go-metrics in milliseconds and
// are exported in seconds.
type raftMetric struct {
	key    []string // go-metrics key, service name first
	name   string
	kind   dto.MetricType
	millis bool
	help   string
}

var raftMetrics = []raftMetric{
	{[]string{Namespace, "raft", "commitTime"}, "mozpool_raft_commit_time_seconds", dto.MetricType_SUMMARY, true,
		"Time from a leader appending an entry to its commit (leader only)."},
	{[]string{Namespace, "raft", "fsm", "apply"}, "mozpool_raft_fsm_apply_seconds", dto.MetricType_SUMMARY, true,
		"Time to apply one committed entry to the state."},
	{[]string{Namespace, "raft", "leader", "lastContact"}, "mozpool_raft_leader_last_contact_seconds", dto.MetricType_SUMMARY, true,
		"Time since the leader last heard from each follower, sampled by the leader."},
	{[]string{Namespace, "raft", "state", "leader"}, "mozpool_raft_leader_elections_won_total", dto.MetricType_COUNTER, false,
		"Times a node of this process became leader (leader changes)."},
	{[]string{Namespace, "raft", "state", "candidate"}, "mozpool_raft_candidacies_total", dto.MetricType_COUNTER, false,
		"Times a node of this process started an election."},
	{[]string{Namespace, "raft", "state", "follower"}, "mozpool_raft_follower_transitions_total", dto.MetricType_COUNTER, false,
		"Times a node of this process became a follower."},
	{[]string{Namespace, "raft", "apply"}, "mozpool_raft_applies_total", dto.MetricType_COUNTER, false,
		"Commands proposed to Raft on the leader."},
}

var (
	raftOnce   sync.Once
	raftReg    *prometheus.Registry
	raftByName map[string]raftMetric
)

// setupRaft installs go-metrics' Prometheus sink as the process's global
// go-metrics sink (the one hashicorp/raft reports to), keeping only the
// keys of raftMetrics.
func setupRaft() {
	raftReg = prometheus.NewRegistry()
	raftByName = map[string]raftMetric{}
	opts := gmprom.PrometheusOpts{Registerer: raftReg, Name: "mozpool_raft_sink", Expiration: 0}
	cfg := gometrics.DefaultConfig(Namespace)
	cfg.EnableHostname, cfg.EnableRuntimeMetrics, cfg.EnableServiceLabel = false, false, false
	cfg.EnableHostnameLabel, cfg.FilterDefault = false, false
	for _, rm := range raftMetrics {
		flat := flatten(rm.key)
		raftByName[flat] = rm
		cfg.AllowedPrefixes = append(cfg.AllowedPrefixes, join(rm.key))
		switch rm.kind {
		case dto.MetricType_SUMMARY:
			opts.SummaryDefinitions = append(opts.SummaryDefinitions, gmprom.SummaryDefinition{Name: rm.key, Help: rm.help})
		case dto.MetricType_COUNTER:
			opts.CounterDefinitions = append(opts.CounterDefinitions, gmprom.CounterDefinition{Name: rm.key, Help: rm.help})
		}
	}
	sink, err := gmprom.NewPrometheusSinkFrom(opts)
	if err != nil {
		// Only a duplicate registration fails, and the registry is new.
		panic(err)
	}
	if _, err := gometrics.NewGlobal(cfg, sink); err != nil {
		panic(err)
	}
}

func flatten(key []string) string {
	s := ""
	for i, k := range key {
		if i > 0 {
			s += "_"
		}
		s += k
	}
	return s
}

func join(key []string) string {
	s := ""
	for i, k := range key {
		if i > 0 {
			s += "."
		}
		s += k
	}
	return s
}

// RaftGatherer returns the process's Raft metrics under Prometheus names
// (seconds, _total), installing the go-metrics bridge on first use.
func RaftGatherer() prometheus.Gatherer {
	raftOnce.Do(setupRaft)
	return raftGatherer{}
}

type raftGatherer struct{}

func (raftGatherer) Gather() ([]*dto.MetricFamily, error) {
	fams, err := raftReg.Gather()
	if err != nil {
		return nil, err
	}
	out := make([]*dto.MetricFamily, 0, len(fams))
	for _, f := range fams {
		rm, ok := raftByName[f.GetName()]
		if !ok || f.GetType() != rm.kind {
			continue
		}
		f = proto.Clone(f).(*dto.MetricFamily)
		f.Name, f.Help = proto.String(rm.name), proto.String(rm.help)
		if rm.millis {
			for _, m := range f.Metric {
				if s := m.Summary; s != nil {
					s.SampleSum = proto.Float64(s.GetSampleSum() / float64(time.Second/time.Millisecond))
					for _, q := range s.Quantile {
						q.Value = proto.Float64(q.GetValue() / float64(time.Second/time.Millisecond))
					}
				}
			}
		}
		out = append(out, f)
	}
	return out, nil
}
