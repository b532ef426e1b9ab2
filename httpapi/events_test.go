package httpapi

import (
	"bufio"
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/events"
	"github.com/mozpool/mozpool/internal/testlog"
	"github.com/mozpool/mozpool/logstore"
)

func newEventsEnv(t *testing.T) (*testEnv, *events.Hub) {
	env := newTestEnv(t)
	cfg := logstore.DefaultConfig()
	cfg.Path, cfg.Logger = filepath.Join(t.TempDir(), "events.db"), testlog.New(t)
	store, err := logstore.Open(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { store.Close() })
	hub := events.NewHub(store)
	t.Cleanup(hub.Close)
	env.srv.SetEvents(hub)
	return env, hub
}

// Bad filters and resume positions are 400s; without a source the route
// is a 404.
func TestEvents_BadInput(t *testing.T) {
	newTestEnv(t).get("/api/events/").requireError(t, http.StatusNotFound)
	env, _ := newEventsEnv(t)
	env.get("/api/events/?kind=board").requireError(t, http.StatusBadRequest)
	env.get("/api/events/?colour=red").requireError(t, http.StatusBadRequest)
	env.get("/api/events/?since=yesterday").requireError(t, http.StatusBadRequest)
	env.get("/api/events/?last_event_id=12-x").requireError(t, http.StatusBadRequest)
	env.get("/api/events/", "Last-Event-ID", "abc").requireError(t, http.StatusBadRequest)
}

// readEvents reads n events' id lines from the stream at path.
func readEvents(t *testing.T, url string, hdr http.Header, n int) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	require.NoError(t, err)
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	var ids []string
	sc := bufio.NewScanner(resp.Body)
	for len(ids) < n && sc.Scan() {
		if id, ok := strings.CutPrefix(sc.Text(), "id: "); ok {
			ids = append(ids, id)
		}
	}
	return ids
}

// Stored events after the resume position come first, filtered, then live
// ones; the header wins over the parameter.
func TestEvents_ResumeAndFilter(t *testing.T) {
	env, hub := newEventsEnv(t)
	at := time.Now()
	hub.Publish([]events.Event{
		{Index: 5, Seq: 0, At: at, Kind: "device", Name: "dev1", State: "ready", ImagingServer: "server1"},
		{Index: 5, Seq: 1, At: at, Kind: "device", Name: "dev2", State: "ready", ImagingServer: "server1"},
		{Index: 7, Seq: 0, At: at, Kind: "request", Name: "3", State: "closed", ImagingServer: "server2", Device: "dev1"},
		{Index: 9, Seq: 0, At: at, Kind: "device", Name: "dev1", State: "failed_pxe_booting", ImagingServer: "server1"},
	})
	base := env.ts.URL + "/api/events/"
	require.Equal(t, []string{"5-0", "5-1", "7-0", "9-0"}, readEvents(t, base+"?since=0", nil, 4))
	require.Equal(t, []string{"5-1", "7-0"}, readEvents(t, base+"?last_event_id=1", http.Header{"Last-Event-ID": {"5-0"}}, 2))
	require.Equal(t, []string{"7-0", "9-0"}, readEvents(t, base+"?since=5", nil, 2))
	require.Equal(t, []string{"5-0", "7-0", "9-0"}, readEvents(t, base+"?since=0&device=dev1", nil, 3), "a request's events carry its device")
	require.Equal(t, []string{"9-0"}, readEvents(t, base+"?since=0&state=failed_pxe_booting,closed&kind=device", nil, 1))
	require.Equal(t, []string{"7-0"}, readEvents(t, base+"?since=0&imaging_server=server2", nil, 1))
	require.Equal(t, []string{"5-0", "5-1", "7-0", "9-0"}, readEvents(t, base+"?once", nil, 99), "once: the stored events, then the end")
	require.Equal(t, []string{"9-0"}, readEvents(t, base+"?once&since=7", nil, 99))

	// Live: a stream that has caught up gets what is published next.
	done := make(chan []string)
	// Exits when it has read one event or its deadline passes.
	go func() { done <- readEvents(t, base+"?since=9&request=4", nil, 1) }()
	require.Eventually(t, func() bool {
		hub.Publish([]events.Event{{Index: 11, Seq: 0, At: at, Kind: "request", Name: "4", State: "ready"}})
		select {
		case ids := <-done:
			require.Equal(t, "11-0", ids[0])
			return true
		default:
			return false
		}
	}, 10*time.Second, 50*time.Millisecond)
}
