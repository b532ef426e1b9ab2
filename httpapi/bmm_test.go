package httpapi

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/api"
	"github.com/mozpool/mozpool/bmm"
	"github.com/mozpool/mozpool/fsm"
)

// fakeHardware records the BMM calls it receives.
type fakeHardware struct {
	mu      sync.Mutex
	calls   []string
	pingOK  bool
	testOK  bool
	powerFn func(dev string) error
}

func (h *fakeHardware) record(c string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = append(h.calls, c)
}

func (h *fakeHardware) Calls() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.calls...)
}

func (h *fakeHardware) StartPowerCycle(dev string) error {
	h.record("power-cycle " + dev)
	if h.powerFn != nil {
		return h.powerFn(dev)
	}
	return nil
}
func (h *fakeHardware) StartPowerOff(dev string) error { h.record("power-off " + dev); return nil }
func (h *fakeHardware) SetPXE(_ context.Context, dev, pxe string) error {
	h.record("set-pxe " + dev + " " + pxe)
	return nil
}
func (h *fakeHardware) ClearPXE(_ context.Context, dev string) error {
	h.record("clear-pxe " + dev)
	return nil
}
func (h *fakeHardware) Ping(_ context.Context, dev string) (bool, error) {
	h.record("ping " + dev)
	return h.pingOK, nil
}
func (h *fakeHardware) TestRelayBoard(_ context.Context, board string) (bool, error) {
	h.record("test " + board)
	return h.testOK, nil
}

func newBMMEnv(t *testing.T) (*testEnv, *fakeHardware) {
	hw := &fakeHardware{pingOK: true, testOK: true}
	e := newTestEnv(t, func(c *Config) { c.Hardware = hw })
	return e, hw
}

func TestBMM_PowerCycle(t *testing.T) {
	e, hw := newBMMEnv(t)

	r := e.post("/api/device/dev1/power-cycle/", map[string]any{})
	require.Equal(t, http.StatusOK, r.StatusCode, string(r.body))
	require.JSONEq(t, `{}`, string(r.body))
	require.Equal(t, []string{"clear-pxe dev1", "power-cycle dev1"}, hw.Calls())

	r = e.post("/api/device/dev1/power-cycle/", map[string]any{"pxe_config": "fake-b2g", "boot_config": `{"b2gbase": "http://x"}`, "assignee": "ignored"})
	require.Equal(t, http.StatusOK, r.StatusCode, string(r.body))
	require.Equal(t, []string{"clear-pxe dev1", "power-cycle dev1", "set-pxe dev1 fake-b2g", "power-cycle dev1"}, hw.Calls())

	// bootconfig serves the next boot config verbatim, with or without slash.
	for _, p := range []string{"/api/device/dev1/bootconfig/", "/api/device/dev1/bootconfig"} {
		r = e.get(p)
		require.Equal(t, http.StatusOK, r.StatusCode)
		require.Equal(t, `{"b2gbase": "http://x"}`, string(r.body))
		require.Equal(t, "application/json; charset=utf-8", r.Header.Get("Content-Type"))
	}
	e.get("/api/device/nosuch/bootconfig/").requireError(t, http.StatusNotFound)

	// Bad input.
	e.post("/api/device/dev1/power-cycle/", map[string]any{"pxe_config": "nosuch"}).requireError(t, http.StatusBadRequest)
	e.post("/api/device/dev1/power-cycle/", map[string]any{"pxe_config": "fake-b2g", "boot_config": map[string]any{}}).requireError(t, http.StatusBadRequest)
	e.post("/api/device/dev1/power-cycle/", "null").requireError(t, http.StatusBadRequest)
	e.post("/api/device/nosuch/power-cycle/", map[string]any{}).requireError(t, http.StatusNotFound)
	e.get("/api/device/dev1/power-cycle/").requireError(t, http.StatusMethodNotAllowed)
	require.Len(t, hw.Calls(), 4, "refused requests touch no hardware")

	// A device without power control.
	hw.powerFn = func(string) error { return bmm.ErrNoPowerControl }
	e.post("/api/device/dev2/power-cycle/", map[string]any{}).requireError(t, http.StatusConflict)
}

func TestBMM_OtherRoutes(t *testing.T) {
	e, hw := newBMMEnv(t)
	require.JSONEq(t, `{}`, string(e.get("/api/device/dev1/power-off/").body))
	require.JSONEq(t, `{}`, string(e.post("/api/device/dev1/clear-pxe/", nil).body))
	require.JSONEq(t, `{"success": true}`, string(e.get("/api/device/dev1/ping/").body))
	hw.pingOK = false
	require.JSONEq(t, `{"success": false}`, string(e.get("/api/device/dev1/ping/").body))
	require.JSONEq(t, `{"success": true}`, string(e.get("/api/relay/relay1/test/").body))
	require.Equal(t, []string{"power-off dev1", "clear-pxe dev1", "ping dev1", "ping dev1", "test relay1"}, hw.Calls())
	// The device log names who asked for each hardware operation.
	log := string(e.get("/api/device/dev1/log/").body)
	require.Contains(t, log, "power-off requested (by cluster-token)")
	require.Contains(t, log, "PXE file cleared (by cluster-token)")

	e.get("/api/relay/nosuch/test/").requireError(t, http.StatusNotFound)
	e.get("/api/device/nosuch/ping/").requireError(t, http.StatusNotFound)
	e.post("/api/device/dev1/ping/", nil).requireError(t, http.StatusMethodNotAllowed)
	r := e.get("/api/device/dev1/ping")
	require.Equal(t, http.StatusSeeOther, r.StatusCode)
	require.Equal(t, "/api/device/dev1/ping/", r.Header.Get("Location"))
}

func TestBMM_ProxiedToOwner(t *testing.T) {
	e, hw := newBMMEnv(t)

	// dev3 belongs to server2, which no node serves yet.
	e.get("/api/device/dev3/ping/").requireError(t, http.StatusServiceUnavailable)

	// Bind server2 to a node: requests are proxied there, verbatim.
	var mu sync.Mutex
	var got []string
	owner := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, r.Method+" "+r.URL.RequestURI()+" "+string(b)+" from "+r.Header.Get(api.HeaderForwarded))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Write([]byte(`{"success": true, "by": "owner"}`))
	}))
	defer owner.Close()
	res, err := e.cluster.Apply(context.Background(), fsm.CmdServerUpsert, &fsm.ServerUpsert{
		Name: "server2", NodeID: "node2", RaftAddr: "127.0.0.1:1", HTTPAddr: owner.URL,
	})
	require.NoError(t, err)
	require.NoError(t, res.Error())

	r := e.get("/api/device/dev3/ping/?x=1")
	require.Equal(t, http.StatusOK, r.StatusCode)
	require.JSONEq(t, `{"success": true, "by": "owner"}`, string(r.body))
	r = e.post("/api/device/dev3/power-cycle/", `{"pxe_config": "fake-b2g"}`)
	require.Equal(t, http.StatusOK, r.StatusCode)
	mu.Lock()
	require.Equal(t, []string{
		"GET /api/device/dev3/ping/?x=1  from node1",
		`POST /api/device/dev3/power-cycle/ {"pxe_config": "fake-b2g"} from node1`,
	}, got)
	mu.Unlock()
	require.Empty(t, hw.Calls(), "this node never touches another server's hardware")

	// A request already forwarded to us is not forwarded again.
	e.get("/api/device/dev3/ping/", api.HeaderForwarded, "node9").requireError(t, http.StatusServiceUnavailable)

	// An unreachable owner is a 502.
	owner.Close()
	e.get("/api/device/dev3/ping/").requireError(t, http.StatusBadGateway)
}

func TestBMM_NoHardware(t *testing.T) {
	e := newTestEnv(t)
	e.get("/api/device/dev1/ping/").requireError(t, http.StatusServiceUnavailable)
}
