package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/fsm"
)

var deviceKeys = []string{"boot_config", "comments", "environment", "fqdn", "health_score", "id", "image", "imaging_server",
	"inventory_id", "mac_address", "name", "relay_info", "request_id", "state"}

func TestDeviceList(t *testing.T) {
	e := newTestEnv(t)
	require.Equal(t, []any{"dev1", "dev2", "dev3"}, e.getOK("/api/device/list/")["devices"])

	// Any value of a flag sets it.
	for _, q := range []string{"?details=1", "?details=0", "?details"} {
		devs := e.getOK("/api/device/list/" + q)["devices"].([]any)
		require.Len(t, devs, 3, q)
		d := devs[0].(map[string]any)
		require.Equal(t, deviceKeys, keys(d), q)
		require.Equal(t, map[string]any{
			"id": float64(1), "name": "dev1", "fqdn": "dev1.lab.example.com", "inventory_id": float64(1),
			"mac_address": "001122334401", "imaging_server": "server1", "relay_info": "relay1.lab.example.com:bank1:relay1",
			"state": "new", "comments": nil, "image": nil, "boot_config": nil, "environment": "even", "request_id": nil, "health_score": float64(100),
		}, d)
		require.Nil(t, devs[2].(map[string]any)["environment"], "empty environment is null")
	}
}

func TestDeviceState(t *testing.T) {
	e := newTestEnv(t)
	r := e.get("/api/device/dev1/state/")
	require.Equal(t, http.StatusOK, r.StatusCode)
	require.Equal(t, map[string]any{"state": "new"}, r.obj(t))
	require.Equal(t, "no-cache", r.Header.Get("Cache-Control"), "without ?cache the state is always revalidated")
	e.get("/api/device/nosuch/state/").requireError(t, http.StatusNotFound)
	e.get("/api/device/nosuch/state/?cache=1").requireError(t, http.StatusNotFound)
}

func TestDeviceStateCache(t *testing.T) {
	e := newTestEnv(t)
	start := e.clock.Now()

	r := e.get("/api/device/dev3/state/?cache=0")
	require.Equal(t, http.StatusOK, r.StatusCode)
	require.Equal(t, map[string]any{"state": "new"}, r.obj(t))
	require.Equal(t, "public, max-age=6", r.Header.Get("Cache-Control"))
	require.Equal(t, start.Add(5*time.Second).Format(http.TimeFormat), r.Header.Get("Expires"))

	// dev3 leaves the inventory: the cached copy still has it for up to
	// five seconds, the fresh route does not.
	inv := sampleInventory()
	inv.Devices = inv.Devices[:2]
	res, err := e.cluster.Apply(context.Background(), fsm.CmdInventorySync, &fsm.InventorySync{Inventory: inv, ShipIt: true})
	require.NoError(t, err)
	require.NoError(t, res.Error())
	e.get("/api/device/dev3/state/").requireError(t, http.StatusNotFound)

	e.clock.Advance(2500 * time.Millisecond)
	r = e.get("/api/device/dev3/state/?cache")
	require.Equal(t, http.StatusOK, r.StatusCode)
	require.Equal(t, "public, max-age=3", r.Header.Get("Cache-Control"))
	require.Equal(t, start.Add(5*time.Second).Format(http.TimeFormat), r.Header.Get("Expires"))

	e.clock.Advance(2500 * time.Millisecond)
	e.get("/api/device/dev3/state/?cache").requireError(t, http.StatusNotFound)
	r = e.get("/api/device/dev1/state/?cache")
	require.Equal(t, http.StatusOK, r.StatusCode)
	require.Equal(t, "public, max-age=6", r.Header.Get("Cache-Control"))
}

// setComments posts comments and requires the 200 "null" answer.
func (e *testEnv) setComments(dev, comments string) {
	e.t.Helper()
	r := e.post("/api/device/"+dev+"/set-comments/", map[string]string{"comments": comments})
	require.Equal(e.t, http.StatusOK, r.StatusCode, "body %q", r.body)
	require.JSONEq(e.t, "null", string(r.body))
}

func TestDeviceStatusAndLog(t *testing.T) {
	e := newTestEnv(t)
	start := e.clock.Now()
	e.setComments("dev1", "one")
	e.clock.Advance(2 * time.Minute)
	e.setComments("dev1", "two")
	e.clock.Advance(1500 * time.Microsecond)
	e.setComments("dev1", "three")

	st := e.getOK("/api/device/dev1/status/")
	require.Equal(t, []string{"log", "state"}, keys(st))
	require.Equal(t, "new", st["state"])
	log := st["log"].([]any)
	require.Len(t, log, 4) // registration + three comments
	first := log[0].(map[string]any)
	require.Equal(t, []string{"id", "message", "source", "timestamp"}, keys(first))
	require.Equal(t, "inventory", first["source"])
	require.Equal(t, start.Format("2006-01-02T15:04:05"), first["timestamp"])
	last := log[3].(map[string]any)
	require.Equal(t, "2024-03-01T12:02:00.001500", last["timestamp"])
	require.Contains(t, last["message"], "three")

	all := e.getOK("/api/device/dev1/log/")["log"].([]any)
	require.Equal(t, log, all)

	newest := e.getOK("/api/device/dev1/log/?limit=2")["log"].([]any)
	require.Len(t, newest, 2)
	require.Contains(t, newest[0].(map[string]any)["message"], "two")
	require.Contains(t, newest[1].(map[string]any)["message"], "three")

	recent := e.getOK("/api/device/dev1/log/?timeperiod=60")["log"].([]any)
	require.Len(t, recent, 2)
	require.Contains(t, recent[0].(map[string]any)["message"], "two")

	require.Empty(t, e.getOK("/api/device/dev1/log/?limit=0")["log"])
	require.Len(t, e.getOK("/api/device/dev1/log/?timeperiod=600&limit=1")["log"], 1)

	e.get("/api/device/dev1/log/?limit=abc").requireError(t, http.StatusBadRequest)
	e.get("/api/device/dev1/log/?limit=-1").requireError(t, http.StatusBadRequest)
	e.get("/api/device/dev1/log/?timeperiod=1.5").requireError(t, http.StatusBadRequest)
	e.get("/api/device/nosuch/log/").requireError(t, http.StatusNotFound)
	e.get("/api/device/nosuch/status/").requireError(t, http.StatusNotFound)
}

func TestDeviceStatusLimitsLog(t *testing.T) {
	e := newTestEnv(t)
	for i := range 105 {
		e.clock.Advance(time.Second)
		e.setComments("dev2", strconv.Itoa(i))
	}
	log := e.getOK("/api/device/dev2/status/")["log"].([]any)
	require.Len(t, log, statusLogLines)
	require.Contains(t, log[99].(map[string]any)["message"], `"104"`)
	require.Len(t, e.getOK("/api/device/dev2/log/")["log"], 106)
}

func TestDeviceDetails(t *testing.T) {
	e := newTestEnv(t)
	d := e.getOK("/api/device/dev1/details/")["device"].(map[string]any)
	want := append([]string{"generation", "hardware_type", "history", "next_boot_config", "next_image", "state_deadline"}, deviceKeys...)
	require.ElementsMatch(t, want, keys(d))
	require.Equal(t, "panda/ES Rev B2", d["hardware_type"])
	require.Equal(t, "2024-03-01T12:00:00", d["state_deadline"])
	require.Equal(t, float64(1), d["generation"])
	require.Nil(t, d["next_image"])
	e.get("/api/device/nosuch/details/").requireError(t, http.StatusNotFound)
}

func TestSetCommentsAndEnvironment(t *testing.T) {
	e := newTestEnv(t)
	e.setComments("dev1", "flaky <sd> card & more")

	r := e.post("/api/device/dev1/set-environment/", `{"environment": "zz"}`)
	require.Equal(t, http.StatusOK, r.StatusCode, "body %q", r.body)
	require.Equal(t, "null\n", string(r.body))

	d := e.getOK("/api/device/dev1/details/")["device"].(map[string]any)
	require.Equal(t, "flaky <sd> card & more", d["comments"])
	require.Equal(t, "zz", d["environment"])
	require.Contains(t, e.getOK("/api/environment/list/")["environments"], "zz")

	// Clearing the comments renders them null again.
	e.setComments("dev1", "")
	d = e.getOK("/api/device/dev1/details/")["device"].(map[string]any)
	require.Nil(t, d["comments"])
}

func TestSetCommentsErrors(t *testing.T) {
	e := newTestEnv(t)
	for _, route := range []string{"set-comments", "set-environment"} {
		for _, body := range []string{"", "null", "[]", `"x"`, "{", `{}`, `{"other": "x"}`, `{"comments": 1, "environment": 1}`,
			`{"comments": null, "environment": null}`, `{"comments": "x", "environment": "x"} trailing`,
			// Not UTF-8: refused, not stored as U+FFFD.
			"{\"comments\": \"\xff\xfe\", \"environment\": \"\xc3\x28\"}"} {
			t.Run(fmt.Sprintf("%s %s", route, body), func(t *testing.T) {
				e.post("/api/device/dev1/"+route+"/", body).requireError(t, http.StatusBadRequest)
			})
		}
		e.post("/api/device/nosuch/"+route+"/", `{"comments": "x", "environment": "x"}`).requireError(t, http.StatusNotFound)
	}
	details := e.getOK("/api/device/dev1/details/")["device"].(map[string]any)
	require.Nil(t, details["comments"], "a refused body left the device alone")
	// The FSM's own validation (environment too long) is a 400 too.
	e.post("/api/device/dev1/set-environment/", map[string]string{"environment": string(make([]byte, 40))}).requireError(t, http.StatusBadRequest)
}

func TestEnvironmentList(t *testing.T) {
	e := newTestEnv(t)
	require.Equal(t, []any{nil, "even", "odd"}, e.getOK("/api/environment/list/")["environments"])
}
