package metrics

import (
	"errors"
	"testing"
	"time"

	gometrics "github.com/hashicorp/go-metrics"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/fsm"
)

func family(t *testing.T, m *Metrics, name string) *dto.MetricFamily {
	t.Helper()
	fams, err := m.Gatherer().Gather()
	require.NoError(t, err)
	for _, f := range fams {
		if f.GetName() == name {
			return f
		}
	}
	return nil
}

// Imaging is timed from the start of a network boot to ready, for this
// node's devices only, by image and hardware type; failures are counted
// by imaging server; commands from before the node started are skipped.
func TestFollowImaging(t *testing.T) {
	m := New("server1")
	at := m.started.Add(time.Second)
	devs := map[string]deviceInfo{
		"mine":   {server: "server1", nextImage: "b2g", hardwareType: "panda/ES"},
		"theirs": {server: "server2", nextImage: "b2g", hardwareType: "panda/ES"},
	}
	step := func(at time.Time, dev, state string) {
		m.follow(fsm.Notification{At: at, Transitions: []fsm.Transition{{Device: dev, State: state}}}, devs)
	}
	step(at, "mine", "start_pxe_boot")
	step(at, "theirs", "start_pxe_boot")
	step(at.Add(time.Minute), "mine", "pxe_booting")
	step(at.Add(3*time.Minute), "mine", "ready")
	step(at.Add(3*time.Minute), "theirs", "ready")
	step(at.Add(4*time.Minute), "mine", "ready") // a health check: not imaging
	require.Equal(t, 1, testutil.CollectAndCount(m.imagingDuration))
	h := family(t, m, "mozpool_imaging_duration_seconds").Metric[0]
	require.Equal(t, uint64(1), h.GetHistogram().GetSampleCount())
	require.InDelta(t, 180, h.GetHistogram().GetSampleSum(), 0.001)

	step(at.Add(5*time.Minute), "mine", "start_pxe_boot")
	step(at.Add(6*time.Minute), "mine", "failed_pxe_booting")
	step(at.Add(7*time.Minute), "mine", "ready")
	require.Equal(t, uint64(1), family(t, m, "mozpool_imaging_duration_seconds").Metric[0].GetHistogram().GetSampleCount())
	require.Equal(t, 1.0, testutil.ToFloat64(m.deviceFailures.WithLabelValues("server1")))

	// A replayed command from before the start changes nothing.
	f := fsm.New(fsm.Config{})
	m.Notify(f, fsm.Notification{At: m.started.Add(-time.Hour), Transitions: []fsm.Transition{{Device: "mine", State: "failed_pxe_booting"}}})
	require.Equal(t, 1.0, testutil.ToFloat64(m.deviceFailures.WithLabelValues("server1")))
}

func TestObserveBMM(t *testing.T) {
	m := New("server1")
	m.ObserveBMM(KindRelay, nil)
	m.ObserveBMM(KindRelay, errors.New("board down"))
	m.ObserveBMM(KindSUT, nil)
	require.Equal(t, 2.0, testutil.ToFloat64(m.bmmOps.WithLabelValues(KindRelay)))
	require.Equal(t, 1.0, testutil.ToFloat64(m.bmmFailures.WithLabelValues(KindRelay)))
	require.Equal(t, 0.0, testutil.ToFloat64(m.bmmFailures.WithLabelValues(KindSUT)))
}

// Raft's go-metrics keys come out renamed to Prometheus conventions, with
// milliseconds turned into seconds; keys not listed are dropped.
func TestRaftBridge(t *testing.T) {
	m := New("server1")
	before := family(t, m, "mozpool_raft_leader_elections_won_total").Metric[0].GetCounter().GetValue()
	gometrics.IncrCounter([]string{"raft", "state", "leader"}, 1)
	gometrics.AddSample([]string{"raft", "commitTime"}, 250) // ms
	gometrics.IncrCounter([]string{"raft", "barrier"}, 1)
	require.Equal(t, before+1, family(t, m, "mozpool_raft_leader_elections_won_total").Metric[0].GetCounter().GetValue())
	commit := family(t, m, "mozpool_raft_commit_time_seconds")
	require.Equal(t, dto.MetricType_SUMMARY, commit.GetType())
	require.GreaterOrEqual(t, commit.Metric[0].GetSummary().GetSampleSum(), 0.25)
	require.Less(t, commit.Metric[0].GetSummary().GetSampleSum(), 250.0)
	require.Nil(t, family(t, m, "mozpool_raft_barrier"))
	require.Nil(t, family(t, m, "mozpool_raft_commitTime"))
}

// Every metric name and help follows the Prometheus conventions.
func TestLint(t *testing.T) {
	m := New("server1")
	m.RegisterState(fsm.New(fsm.Config{}))
	m.RegisterRelayQueue(func() int { return 0 })
	m.RegisterLogStore(func() int64 { return 1 }, func() uint64 { return 0 })
	m.ObserveHTTP("GET", "/api/device/:id/", 200, time.Millisecond)
	m.imagingDuration.WithLabelValues("b2g", "panda/ES").Observe(60)
	problems, err := testutil.GatherAndLint(m.Gatherer())
	require.NoError(t, err)
	require.Empty(t, problems)
}
