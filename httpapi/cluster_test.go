package httpapi

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/cluster"
	"github.com/mozpool/mozpool/fsm"
)

func TestClusterStatus(t *testing.T) {
	e := newTestEnv(t)
	st := e.getOK("/api/cluster/status/")
	require.Equal(t, "Leader", st["state"])
	require.Equal(t, "node1", st["node"].(map[string]any)["id"])
	require.Contains(t, st, "failure_tolerance")
	require.Contains(t, st, "servers")
	require.Equal(t, map[string]any{"new": float64(3)}, st["devices_by_state"])
	require.Equal(t, map[string]any{
		"rack1": map[string]any{"new": float64(2)},
		"rack2": map[string]any{"new": float64(1)},
	}, st["devices_by_rack"])
}

func TestClusterHealth(t *testing.T) {
	e := newTestEnv(t)
	h := e.getOK("/api/cluster/health")
	require.Equal(t, true, h["ok"])
	require.Equal(t, "node1", h["node"])

	e.cluster.mu.Lock()
	e.cluster.health = errors.New("no leader known")
	e.cluster.mu.Unlock()
	r := e.get("/api/cluster/health/")
	require.Equal(t, http.StatusServiceUnavailable, r.StatusCode)
	require.Equal(t, map[string]any{"ok": false, "error": "no leader known"}, r.obj(t))
}

func TestClusterSelf(t *testing.T) {
	e := newTestEnv(t)
	self := e.getOK("/api/cluster/self/")
	require.Equal(t, "node1", self["id"])
	require.Equal(t, "http://127.0.0.1:8010", self["http_addr"])
}

func TestClusterJoin(t *testing.T) {
	e := newTestEnv(t)
	id := cluster.Identity{ID: "node2", Name: "server2", RaftAddr: "127.0.0.2:7000", HTTPAddr: "http://127.0.0.2:8010"}

	e.anon().post("/api/cluster/join/", id).requireError(t, http.StatusUnauthorized)
	e.post("/api/cluster/join/", id, "X-Mozpool-Token", "nope").requireError(t, http.StatusUnauthorized)
	require.Empty(t, e.cluster.joined)

	r := e.post("/api/cluster/join/", id, "X-Mozpool-Token", testToken)
	require.Equal(t, http.StatusOK, r.StatusCode, "body %q", r.body)
	require.Equal(t, map[string]any{"result": map[string]any{"action": "added", "suffrage": "voter"}}, r.obj(t))
	require.Equal(t, []cluster.Identity{id}, e.cluster.joined)

	e.post("/api/cluster/join/", cluster.Identity{ID: "node3"}, "X-Mozpool-Token", testToken).requireError(t, http.StatusBadRequest)
	e.post("/api/cluster/join/", `{"id": 3}`, "X-Mozpool-Token", testToken).requireError(t, http.StatusBadRequest)
}

func TestClusterRemove(t *testing.T) {
	e := newTestEnv(t)
	e.anon().post("/api/cluster/remove/", map[string]string{"id": "node2"}).requireError(t, http.StatusUnauthorized)

	r := e.post("/api/cluster/remove/", map[string]string{"id": "node2"}, "Authorization", "Bearer "+testToken)
	require.Equal(t, http.StatusOK, r.StatusCode, "body %q", r.body)
	require.Equal(t, map[string]any{}, r.obj(t))
	require.Equal(t, []string{"node2"}, e.cluster.removed)

	e.post("/api/cluster/remove/", map[string]string{"id": "node9"}, "X-Mozpool-Token", testToken).requireError(t, http.StatusNotFound)
	e.post("/api/cluster/remove/", `{}`, "X-Mozpool-Token", testToken).requireError(t, http.StatusBadRequest)
}

func TestClusterWithoutToken(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.Token = "" }).anon()
	r := e.post("/api/cluster/remove/", map[string]string{"id": "node2"})
	require.Equal(t, http.StatusOK, r.StatusCode, "body %q", r.body)
}

func TestClusterInternalMount(t *testing.T) {
	e := newTestEnv(t)
	r := e.get("/_cluster/status/x")
	require.Equal(t, http.StatusOK, r.StatusCode)
	require.Equal(t, "cluster GET /_cluster/status/x", string(r.body))
	require.Equal(t, "node1", r.Header.Get("X-Mozpool-Served-By"))

	r = e.post("/_cluster/apply", "payload")
	require.Equal(t, http.StatusOK, r.StatusCode)
	require.Equal(t, "cluster POST /_cluster/apply", string(r.body))
}

func TestBackupAndRestore(t *testing.T) {
	e := newTestEnv(t)
	e.anon().get("/api/cluster/backup/").requireError(t, http.StatusUnauthorized)
	r := e.get("/api/cluster/backup/", "X-Mozpool-Token", testToken)
	require.Equal(t, http.StatusOK, r.StatusCode)
	require.Equal(t, "application/octet-stream", r.Header.Get("Content-Type"))
	require.Equal(t, "7", r.Header.Get("X-Mozpool-Snapshot-Index"))
	backup := r.body
	require.NotEmpty(t, backup)

	require.Equal(t, http.StatusOK, e.post("/api/device/dev1/set-comments/", map[string]any{"comments": "after"}).StatusCode)
	e.post("/api/cluster/restore/", "garbage", "X-Mozpool-Token", testToken).requireError(t, http.StatusBadRequest)
	e.anon().post("/api/cluster/restore/", backup).requireError(t, http.StatusUnauthorized)
	r = e.post("/api/cluster/restore/", backup, "X-Mozpool-Token", testToken)
	require.Equal(t, http.StatusOK, r.StatusCode, string(r.body))
	e.fsm.Read(func(s *fsm.State) {
		require.Empty(t, s.Devices["dev1"].Comments, "the comment made after the backup is gone")
	})
}

// TestTokenForms: every route that needs the cluster token takes it as
// X-Mozpool-Token or as Authorization: Bearer, and refuses a missing or
// wrong one with a JSON 401 before looking at the body.
func TestTokenForms(t *testing.T) {
	e := newTestEnv(t).anon()
	routes := []struct {
		method, path string
		// pass is the status once the token is accepted: the bodies sent
		// are invalid, so nothing is changed.
		pass int
	}{
		{http.MethodPost, "/api/cluster/join/", http.StatusBadRequest},
		{http.MethodPost, "/api/cluster/remove/", http.StatusBadRequest},
		{http.MethodPost, "/api/cluster/restore/", http.StatusBadRequest},
		{http.MethodPost, "/api/inventory/sync/", http.StatusBadRequest},
		{http.MethodGet, "/api/cluster/backup/", http.StatusOK},
	}
	refused := [][]string{
		nil,
		{"X-Mozpool-Token", "wrong"},
		{"X-Mozpool-Token", ""},
		{"Authorization", "Bearer wrong"},
		{"Authorization", "Basic " + testToken},
		{"Authorization", testToken},
	}
	accepted := [][]string{
		{"X-Mozpool-Token", testToken},
		{"Authorization", "Bearer " + testToken},
		{"Authorization", "bearer " + testToken},
	}
	for _, rt := range routes {
		for _, hdr := range refused {
			e.do(rt.method, rt.path, "{}", hdr...).requireError(t, http.StatusUnauthorized)
		}
		for _, hdr := range accepted {
			r := e.do(rt.method, rt.path, "{}", hdr...)
			require.Equal(t, rt.pass, r.StatusCode, "%s %s with %q: body %q", rt.method, rt.path, hdr, r.body)
		}
	}
}

// Three boards of one imaging server that cannot fetch their PXE file
// make its PXE/TFTP suspect: listed in the cluster status, marked on its
// devices.
func TestClusterStatus_SuspectTFTP(t *testing.T) {
	e := newTestEnv(t)
	inv := sampleInventory()
	inv.Devices = append(inv.Devices, testDevice(4, "dev4", "server1", ""))
	apply := func(typ fsm.CommandType, cmd fsm.Command) {
		t.Helper()
		res, err := e.cluster.Apply(context.Background(), typ, cmd)
		require.NoError(t, err)
		require.NoError(t, res.Error())
	}
	apply(fsm.CmdInventorySync, &fsm.InventorySync{Inventory: inv, ShipIt: true})
	st := e.getOK("/api/cluster/status/")
	require.Equal(t, []any{}, st["suspect_tftp_servers"])
	for _, dev := range []string{"dev1", "dev2", "dev4"} {
		apply(fsm.CmdDeviceStateChange, &fsm.DeviceStateChange{Device: dev, From: "new", To: "pxe_booting"})
		apply(fsm.CmdDeviceEvent, &fsm.DeviceEvent{Device: dev, Event: "pxe_fetch_failed"})
	}
	st = e.getOK("/api/cluster/status/")
	sus := st["suspect_tftp_servers"].([]any)
	require.Len(t, sus, 1)
	s := sus[0].(map[string]any)
	require.Equal(t, "server1", s["server"])
	require.Equal(t, "pxe_fetch", s["kind"])
	require.Equal(t, []any{"dev1", "dev2", "dev4"}, s["devices"])
	require.Equal(t, true, e.getOK("/api/device/dev1/details/")["device"].(map[string]any)["tftp_suspect"])
	require.NotContains(t, e.getOK("/api/device/dev3/details/")["device"].(map[string]any), "tftp_suspect")
}
