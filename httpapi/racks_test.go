package httpapi

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/fsm"
)

// newRackEnv is the sample lab with rack1 served by server1, server2
// standing by.
func newRackEnv(t *testing.T) *testEnv {
	t.Helper()
	e := startTestEnv(t, fsm.Config{})
	inv := sampleInventory()
	inv.Racks = []fsm.InventoryRack{{Name: "rack1", Servers: []string{"server1", "server2"}}}
	e.mustApply(fsm.CmdInventorySync, &fsm.InventorySync{Inventory: inv, ShipIt: true})
	return e
}

func TestRackListAndMove(t *testing.T) {
	e := newRackEnv(t)
	racks := e.getOK("/api/rack/list/")["racks"].([]any)
	require.Len(t, racks, 2)
	r1 := racks[0].(map[string]any)
	require.Equal(t, "rack1", r1["name"])
	require.Equal(t, []any{"server1", "server2"}, r1["servers"])
	require.Equal(t, "server1", r1["owner"])
	require.Equal(t, float64(1), r1["generation"])
	require.Equal(t, float64(2), r1["devices"])
	require.Equal(t, float64(1), r1["relay_boards"])

	r := e.post("/api/rack/rack1/move/", map[string]any{"server": "server2"}, "X-Mozpool-Token", testToken)
	require.Equal(t, http.StatusOK, r.StatusCode, "%s", r.body)
	got := e.getOK("/api/rack/rack1/details/")
	require.Equal(t, "server2", got["owner"])
	require.Equal(t, float64(2), got["generation"])
	require.Equal(t, "move", got["reason"])
	// imaging_server keeps its meaning: who acts on the board now.
	require.Equal(t, "server2", e.getOK("/api/device/dev1/details/")["device"].(map[string]any)["imaging_server"])
}

// Bad input is a 4xx JSON error and changes nothing.
func TestRackMoveBadInput(t *testing.T) {
	e := newRackEnv(t)
	tok := []string{"X-Mozpool-Token", testToken}
	e.post("/api/rack/rack1/move/", map[string]any{}, tok...).requireError(t, http.StatusBadRequest)
	e.post("/api/rack/rack1/move/", "not an object", tok...).requireError(t, http.StatusBadRequest)
	e.post("/api/rack/rack1/move/", map[string]any{"server": 7}, tok...).requireError(t, http.StatusBadRequest)
	e.post("/api/rack/rack1/move/", map[string]any{"server": "nope"}, tok...).requireError(t, http.StatusBadRequest)
	e.post("/api/rack/rack2/move/", map[string]any{"server": "server1"}, tok...).requireError(t, http.StatusBadRequest)
	e.post("/api/rack/rack1/move/", map[string]any{"server": "server2", "generation": 9}, tok...).requireError(t, http.StatusConflict)
	e.post("/api/rack/nope/move/", map[string]any{"server": "server2"}, tok...).requireError(t, http.StatusNotFound)
	e.get("/api/rack/nope/details/").requireError(t, http.StatusNotFound)
	e.get("/api/rack/other/").requireError(t, http.StatusNotFound)
	got := e.getOK("/api/rack/rack1/details/")
	require.Equal(t, "server1", got["owner"])
	require.Equal(t, float64(1), got["generation"])
}
