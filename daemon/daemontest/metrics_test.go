package daemontest

import (
	"context"
	"net/http"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

// scrape GETs a node's /metrics and parses the text exposition format.
func scrape(t *testing.T, n *Node) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := HTTPClient().Get(n.URL + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	return fams
}

// sample returns the value of the series of fam whose labels include want
// (a counter, a gauge, or a histogram's or summary's count), and whether
// there is one.
func sample(fam *dto.MetricFamily, want map[string]string) (float64, bool) {
	if fam == nil {
		return 0, false
	}
next:
	for _, m := range fam.Metric {
		have := map[string]string{}
		for _, l := range m.Label {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		case m.Summary != nil:
			return float64(m.Summary.GetSampleCount()), true
		case m.Untyped != nil:
			return m.Untyped.GetValue(), true
		}
	}
	return 0, false
}

// Every node of a 3-node cluster serves /metrics: after a request has been
// served, the families are there with their types, the request counts
// moved, the replicated gauges agree, and the metrics pass the linter.
func TestMetrics_ThreeNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-node cluster test")
	}
	ctx := context.Background()
	c := New(t, 3)
	c.LoadInventory(readsInventory())
	leader := c.WaitLeader()
	follower := c.Followers()[0]

	postRoute := map[string]string{"method": "POST", "route": "/api/device/:id/request/", "code": "200"}
	before, _ := sample(scrape(t, follower)["mozpool_http_request_duration_seconds"], postRoute)
	req, err := follower.Client().CreateRequest(ctx, "any", b2gSpec())
	require.NoError(t, err)
	_, err = follower.Client().RequestStatus(ctx, req.ID)
	require.NoError(t, err)
	c.WaitConverged()

	types := map[string]dto.MetricType{
		"mozpool_http_request_duration_seconds":    dto.MetricType_HISTOGRAM,
		"mozpool_devices":                          dto.MetricType_GAUGE,
		"mozpool_requests":                         dto.MetricType_GAUGE,
		"mozpool_request_oldest_waiting_seconds":   dto.MetricType_GAUGE,
		"mozpool_queue_requests":                   dto.MetricType_GAUGE,
		"mozpool_queue_oldest_wait_seconds":        dto.MetricType_GAUGE,
		"mozpool_bmm_operations_total":             dto.MetricType_COUNTER,
		"mozpool_bmm_operation_failures_total":     dto.MetricType_COUNTER,
		"mozpool_device_failures_total":            dto.MetricType_COUNTER,
		"mozpool_relay_queue_depth":                dto.MetricType_GAUGE,
		"mozpool_logstore_size_bytes":              dto.MetricType_GAUGE,
		"mozpool_logstore_pruned_entries_total":    dto.MetricType_COUNTER,
		"mozpool_cluster_is_leader":                dto.MetricType_GAUGE,
		"mozpool_cluster_has_leader":               dto.MetricType_GAUGE,
		"mozpool_cluster_caught_up":                dto.MetricType_GAUGE,
		"mozpool_raft_applied_index":               dto.MetricType_GAUGE,
		"mozpool_raft_commit_index":                dto.MetricType_GAUGE,
		"mozpool_raft_commit_time_seconds":         dto.MetricType_SUMMARY,
		"mozpool_raft_fsm_apply_seconds":           dto.MetricType_SUMMARY,
		"mozpool_raft_leader_last_contact_seconds": dto.MetricType_SUMMARY,
		"mozpool_raft_leader_elections_won_total":  dto.MetricType_COUNTER,
	}
	leaders := 0.0
	for _, n := range c.Live() {
		status, _, body := rawGet(t, n.URL+"/api/version/")
		require.Equal(t, http.StatusOK, status, body)
		fams := scrape(t, n)
		for name, typ := range types {
			require.Contains(t, fams, name, "%s exports %s", n.Name, name)
			require.Equal(t, typ, fams[name].GetType(), "type of %s", name)
		}
		devices := 0.0
		for _, m := range fams["mozpool_devices"].Metric {
			devices += m.Gauge.GetValue()
		}
		require.Equal(t, 2.0, devices, "%s counts every device", n.Name)
		requests := 0.0
		for _, m := range fams["mozpool_requests"].Metric {
			requests += m.Gauge.GetValue()
		}
		require.Equal(t, 1.0, requests, "%s counts the request", n.Name)
		// No board is ready here: the request waits in the queue, in
		// its assignee's fair-share group.
		v, ok := sample(fams["mozpool_queue_requests"], map[string]string{"group": "tester"})
		require.True(t, ok, "%s exports the queue by group", n.Name)
		require.Equal(t, 1.0, v, "%s counts the waiting request", n.Name)
		v, _ = sample(fams["mozpool_cluster_is_leader"], nil)
		leaders += v
		v, _ = sample(fams["mozpool_cluster_has_leader"], nil)
		require.Equal(t, 1.0, v, "%s knows the leader", n.Name)
		v, _ = sample(fams["mozpool_raft_applied_index"], nil)
		require.Positive(t, v)
		for name := range fams {
			require.NotContains(t, name, "commitTime", "go-metrics names are renamed")
		}
	}
	require.Equal(t, 1.0, leaders, "one node leads")

	fams := scrape(t, follower)
	after, ok := sample(fams["mozpool_http_request_duration_seconds"], postRoute)
	require.True(t, ok, "POST requests are counted by their route pattern")
	require.Equal(t, before+1, after)
	status, ok := sample(fams["mozpool_http_request_duration_seconds"], map[string]string{"route": "/api/request/:id/status/"})
	require.True(t, ok)
	require.Positive(t, status)
	for _, m := range fams["mozpool_http_request_duration_seconds"].Metric {
		for _, l := range m.Label {
			if l.GetName() == "route" {
				require.NotContains(t, l.GetValue(), "panda-0001", "a route label never holds a device name")
			}
		}
	}
	commits, ok := sample(scrape(t, leader)["mozpool_raft_commit_time_seconds"], nil)
	require.True(t, ok)
	require.Positive(t, commits, "the leader timed its commits")
	won, _ := sample(scrape(t, leader)["mozpool_raft_leader_elections_won_total"], nil)
	require.GreaterOrEqual(t, won, 1.0, "the first election is counted (go-metrics is process-wide)")

	problems, err := testutil.GatherAndLint(leader.Daemon.Metrics.Gatherer())
	require.NoError(t, err)
	require.Empty(t, problems)
}
