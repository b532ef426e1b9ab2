package metrics

import (
	"encoding/json"
	"os"
	"regexp"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/fsm"
)

// The monitoring assets under deploy/.
const (
	rulesFile     = "../deploy/prometheus/mozpool.rules.yml"
	rulesTestFile = "../deploy/prometheus/mozpool.rules.test.yml"
	dashboardFile = "../deploy/grafana/mozpool.json"
)

type fakeCluster struct{}

func (fakeCluster) IsLeader() bool                            { return true }
func (fakeCluster) HasLeader() bool                           { return true }
func (fakeCluster) CaughtUp() bool                            { return true }
func (fakeCluster) Indexes() (uint64, uint64, uint64, uint64) { return 1, 1, 1, 1 }

// exportedNames returns every series name a node exports: each family's
// name, with _bucket, _sum and _count for histograms and summaries.
func exportedNames(t *testing.T) map[string]bool {
	t.Helper()
	m := New("server1")
	m.RegisterState(fsm.New(fsm.Config{}))
	m.RegisterCluster(fakeCluster{})
	m.RegisterRelayQueue(func() int { return 0 })
	m.RegisterLogStore(func() int64 { return 1 }, func() uint64 { return 0 })
	// Families with labels appear once they have a series.
	m.ObserveHTTP("GET", "/api/version/", 200, time.Millisecond)
	m.imagingDuration.WithLabelValues("b2g", "panda/ES").Observe(60)
	fams, err := m.Gatherer().Gather()
	require.NoError(t, err)
	names := map[string]bool{}
	for _, f := range fams {
		names[f.GetName()] = true
		if f.GetType().String() == "HISTOGRAM" {
			names[f.GetName()+"_bucket"] = true
		}
		if t := f.GetType().String(); t == "HISTOGRAM" || t == "SUMMARY" {
			names[f.GetName()+"_sum"] = true
			names[f.GetName()+"_count"] = true
		}
	}
	// The state gauges have series only when the state has devices and
	// requests.
	for _, n := range []string{"mozpool_devices", "mozpool_requests", "mozpool_request_oldest_waiting_seconds"} {
		names[n] = true
	}
	return names
}

var metricName = regexp.MustCompile(`\bmozpool_[a-zA-Z0-9_]+`)

// usedNames returns the mozpool_ names a file mentions, sorted.
func usedNames(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	seen := map[string]bool{}
	for _, n := range metricName.FindAllString(string(b), -1) {
		seen[n] = true
	}
	var out []string
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// The alerting rules, their tests and the dashboard use only metric names
// the code exports.
func TestDeployUsesExportedNames(t *testing.T) {
	exported := exportedNames(t)
	for _, path := range []string{rulesFile, rulesTestFile, dashboardFile} {
		used := usedNames(t, path)
		require.NotEmpty(t, used, path)
		for _, n := range used {
			require.True(t, exported[n], "%s uses %s, which no node exports", path, n)
		}
	}
}

// Every query of the dashboard reads a Mozpool metric.
func TestDashboardQueries(t *testing.T) {
	b, err := os.ReadFile(dashboardFile)
	require.NoError(t, err)
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	require.NoError(t, json.Unmarshal(b, &dash))
	queries := 0
	for _, p := range dash.Panels {
		if p.Type == "row" {
			continue
		}
		require.NotEmpty(t, p.Targets, "panel %q", p.Title)
		for _, tg := range p.Targets {
			require.Regexp(t, metricName, tg.Expr, "panel %q", p.Title)
			queries++
		}
	}
	require.Positive(t, queries)
}
