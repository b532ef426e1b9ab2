package daemon

import (
	"context"
	"net/http"

	"github.com/mozpool/mozpool/bmm"
	"github.com/mozpool/mozpool/bmm/relay"
	"github.com/mozpool/mozpool/cluster"
	"github.com/mozpool/mozpool/metrics"
)

// MetricsPath is where every node serves its Prometheus metrics.
const MetricsPath = "/metrics"

// withMetrics serves MetricsPath from m and everything else from api.
func withMetrics(m *metrics.Metrics, api http.Handler) http.Handler {
	mh := m.Handler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == MetricsPath && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			mh.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	})
}

// clusterStatus adapts cluster.Node to metrics.ClusterStatus.
type clusterStatus struct{ n *cluster.Node }

func (c clusterStatus) IsLeader() bool  { return c.n.IsLeader() }
func (c clusterStatus) HasLeader() bool { return c.n.Leader() != nil }
func (c clusterStatus) CaughtUp() bool  { return c.n.CaughtUp() }
func (c clusterStatus) Indexes() (applied, commit, lastLog, term uint64) {
	st := c.n.Status()
	return st.AppliedIndex, st.CommitIndex, st.LastLogIndex, st.Term
}

// The hardware drivers, counting their operations and failures by kind.

type countedRelay struct {
	bmm.Relay
	m *metrics.Metrics
}

func (r countedRelay) PowerCycle(ctx context.Context, ri relay.RelayInfo) error {
	err := r.Relay.PowerCycle(ctx, ri)
	r.m.ObserveBMM(metrics.KindRelay, err)
	return err
}

func (r countedRelay) SetPower(ctx context.Context, ri relay.RelayInfo, on bool) error {
	err := r.Relay.SetPower(ctx, ri, on)
	r.m.ObserveBMM(metrics.KindRelay, err)
	return err
}

func (r countedRelay) TestComms(ctx context.Context, host string, port int) error {
	err := r.Relay.TestComms(ctx, host, port)
	r.m.ObserveBMM(metrics.KindRelay, err)
	return err
}

type countedPXE struct {
	bmm.PXE
	m *metrics.Metrics
}

func (p countedPXE) Set(ctx context.Context, mac, contents string) error {
	err := p.PXE.Set(ctx, mac, contents)
	p.m.ObserveBMM(metrics.KindPXE, err)
	return err
}

func (p countedPXE) Clear(ctx context.Context, mac string) error {
	err := p.PXE.Clear(ctx, mac)
	p.m.ObserveBMM(metrics.KindPXE, err)
	return err
}

// countedPinger counts a ping that could not be sent as a failure; a
// board that does not answer is an answer, not a failure (boards do not
// answer while they reboot).
type countedPinger struct {
	bmm.Pinger
	m *metrics.Metrics
}

func (p countedPinger) Ping(ctx context.Context, host string) (bool, error) {
	ok, err := p.Pinger.Ping(ctx, host)
	p.m.ObserveBMM(metrics.KindPing, err)
	return ok, err
}

type countedSUT struct {
	bmm.SUT
	m *metrics.Metrics
}

func (s countedSUT) Verify(ctx context.Context, host string) error {
	err := s.SUT.Verify(ctx, host)
	s.m.ObserveBMM(metrics.KindSUT, err)
	return err
}

func (s countedSUT) CheckSDCard(ctx context.Context, host string) error {
	err := s.SUT.CheckSDCard(ctx, host)
	s.m.ObserveBMM(metrics.KindSUT, err)
	return err
}
