package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/api"
	"github.com/mozpool/mozpool/callbacks"
	"github.com/mozpool/mozpool/client"
	"github.com/mozpool/mozpool/daemon/daemontest"
	"github.com/mozpool/mozpool/lifeguard"
	"github.com/mozpool/mozpool/requests"
)

// scrapeOn GETs a node's /metrics, parsed.
func scrapeOn(t *testing.T, n *daemontest.Node) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := daemontest.HTTPClient().Get(n.URL + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	return fams
}

// seriesValue sums the series of fam whose labels include want (counters,
// gauges, histogram counts).
func seriesValue(fam *dto.MetricFamily, want map[string]string) float64 {
	total := 0.0
	if fam == nil {
		return 0
	}
next:
	for _, m := range fam.Metric {
		for _, l := range m.Label {
			if v, ok := want[l.GetName()]; ok && v != l.GetValue() {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			total += m.Counter.GetValue()
		case m.Gauge != nil:
			total += m.Gauge.GetValue()
		case m.Histogram != nil:
			total += float64(m.Histogram.GetSampleCount())
		}
	}
	return total
}

// TestOperability serves one request on the simulated lab and checks what
// an operator sees of it: the callback receiver is told ready (with the
// device and the imaging result) and then closed; the board's owner
// counted the imaging by image and hardware type and its hardware
// operations by kind; the event stream has the request's changes.
func TestOperability(t *testing.T) {
	skipShort(t)
	t.Parallel()
	l := startLab(t, labOptions{})
	dev := "panda-32"
	for _, b := range l.boards() {
		l.waitState(t, b, lifeguard.StateReady, selfTestTimeout)
	}

	var mu sync.Mutex
	var got []callbacks.Notification
	seen := map[string]bool{}
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n callbacks.Notification
		if err := json.NewDecoder(r.Body).Decode(&n); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if !seen[n.ID] {
			seen[n.ID] = true
			got = append(got, n)
		}
	}))
	defer recv.Close()

	owner := l.ownerOf(t, dev)
	before := scrapeOn(t, owner)
	body := requestBody("b2g", "any", 3600)
	body["callback_url"] = recv.URL + "/mozpool"
	req := l.createRequest(t, l.nonOwner(t, dev), dev, body)
	l.waitRequestState(t, req.ID, requests.StateReady, flowTimeout)
	require.Equal(t, http.StatusNoContent, returnRequest(t, l.node(), req.ID))
	l.waitRequestState(t, req.ID, requests.StateClosed, 10*time.Second)

	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == 2
	}, 20*time.Second, poll, "two callbacks")
	mu.Lock()
	require.Equal(t, "ready", got[0].State)
	require.Equal(t, dev, got[0].Device)
	require.Equal(t, "complete", got[0].ImagingResult)
	require.Equal(t, "closed", got[1].State)
	require.Equal(t, req.ID, got[1].RequestID)
	mu.Unlock()

	after := scrapeOn(t, owner)
	imaging := map[string]string{"image": "b2g", "hardware_type": "panda/ES Rev B2"}
	require.Equal(t, seriesValue(before["mozpool_imaging_duration_seconds"], imaging)+1,
		seriesValue(after["mozpool_imaging_duration_seconds"], imaging), "the b2g imaging is timed")
	require.Positive(t, seriesValue(after["mozpool_imaging_duration_seconds"], map[string]string{"image": "self-test"}),
		"the boards' first self-tests were timed")
	// The b2g flow power-cycles, writes and clears the PXE file and checks
	// the SUT agent; the self-tests before it pinged.
	for _, kind := range []string{"relay", "pxe", "sut"} {
		k := map[string]string{"kind": kind}
		require.Greater(t, seriesValue(after["mozpool_bmm_operations_total"], k), seriesValue(before["mozpool_bmm_operations_total"], k),
			"%s operations counted", kind)
	}
	require.Positive(t, seriesValue(after["mozpool_bmm_operations_total"], map[string]string{"kind": "ping"}))
	require.Equal(t, float64(boardsPerRack), seriesValue(after["mozpool_devices"], map[string]string{"imaging_server": owner.Name}),
		"the owner's rack, by state")
	problems, err := testutil.GatherAndLint(owner.Daemon.Metrics.Gatherer())
	require.NoError(t, err)
	require.Empty(t, problems)

	var states []string
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err = l.node().Client().Events(ctx, client.EventFilter{Kind: []string{"request"}, Request: []string{strconv.FormatInt(req.ID, 10)}, Once: true},
		"0", func(e api.Event) error { states = append(states, e.State); return nil })
	require.NoError(t, err)
	require.Equal(t, []string{"finding_device", "pending", "ready", "closed"}, states)
}
