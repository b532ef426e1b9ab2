package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/api"
	"github.com/mozpool/mozpool/fsm"
	"github.com/mozpool/mozpool/lifeguard"
	"github.com/mozpool/mozpool/requests"
)

// The request routes (docs/api.md#requests), served by
// an FSM running the lifeguard and request machines.

// requestKeys are the keys of a request at creation and in details/.
var requestKeys = []string{"assigned_device", "assignee", "boot_config", "environment", "expires", "id", "image", "requested_device", "url"}

// requestListKeys are the keys of a row of /api/request/list/.
var requestListKeys = []string{"assigned_device", "assignee", "boot_config", "device_state", "environment", "expires", "id",
	"imaging_server", "requested_device", "state"}

// newRequestEnv is a test env whose FSM runs both machines, with the image
// "multi" (boot-config keys aa and bb) installable on the pandas.
func newRequestEnv(t *testing.T) *testEnv {
	t.Helper()
	e := startTestEnv(t, fsm.Config{Devices: lifeguard.Machine{}, Requests: requests.Machine{}})
	e.mustApply(fsm.CmdImageUpsert, &fsm.ImageUpsert{Image: fsm.ImageSpec{Name: "multi", BootConfigKeys: []string{"bb", "aa"}}})
	e.mustApply(fsm.CmdImagePXEConfigSet, &fsm.ImagePXEConfigSet{Image: "multi", HardwareType: "panda", HardwareModel: "ES Rev B2", PXEConfig: "pxe1"})
	return e
}

// mustApply applies a command through the fake cluster and requires success.
func (e *testEnv) mustApply(t fsm.CommandType, cmd fsm.Command) fsm.Result {
	e.t.Helper()
	res, err := e.cluster.Apply(context.Background(), t, cmd)
	require.NoError(e.t, err)
	require.NoError(e.t, res.Error(), "apply %s", t)
	return res
}

// ready forces devices from "new" to ready.
func (e *testEnv) ready(devs ...string) {
	e.t.Helper()
	for _, d := range devs {
		e.mustApply(fsm.CmdDeviceStateChange, &fsm.DeviceStateChange{Device: d, From: "new", To: "ready"})
	}
}

// b2gBody is a valid create body for b2g.
func b2gBody() map[string]any {
	return map[string]any{"assignee": "slave-1", "duration": 3600, "image": "b2g", "b2gbase": "http://builds/b2g"}
}

// createRequest POSTs a create that must succeed and returns the request
// object of the answer.
func (e *testEnv) createRequest(dev string, body any, hdr ...string) map[string]any {
	e.t.Helper()
	r := e.post("/api/device/"+dev+"/request/", body, hdr...)
	require.Equal(e.t, http.StatusOK, r.StatusCode, "create: body %q", r.body)
	require.Equal(e.t, "application/json; charset=utf-8", r.Header.Get("Content-Type"))
	m := r.obj(e.t)
	require.Equal(e.t, []string{"request"}, keys(m))
	req, ok := m["request"].(map[string]any)
	require.True(e.t, ok, "body %q", r.body)
	return req
}

// requestState reads a request's state from the FSM.
func (e *testEnv) requestState(id int64) string {
	var s string
	e.fsm.Read(func(st *fsm.State) {
		if r, ok := st.Requests[id]; ok {
			s = r.State
		}
	})
	return s
}

// requestCount is the number of requests in the FSM.
func (e *testEnv) requestCount() int {
	var n int
	e.fsm.Read(func(st *fsm.State) { n = len(st.Requests) })
	return n
}

// idOf returns a JSON id as an int64.
func idOf(t testing.TB, v any) int64 {
	t.Helper()
	f, ok := v.(float64)
	require.True(t, ok, "id %v is not a number", v)
	return int64(f)
}

// Validation. Nothing is created by a refused request.
func TestPostRequestValidation(t *testing.T) {
	with := func(change func(b map[string]any)) map[string]any {
		b := b2gBody()
		change(b)
		return b
	}
	tests := []struct {
		name   string
		dev    string
		body   any
		status int
	}{
		{"empty object", "any", map[string]any{}, http.StatusBadRequest},
		{"no body", "any", nil, http.StatusBadRequest},
		{"not an object", "any", "[1, 2]", http.StatusBadRequest},
		{"not JSON", "any", "assignee=me", http.StatusBadRequest},
		{"missing assignee", "any", with(func(b map[string]any) { delete(b, "assignee") }), http.StatusBadRequest},
		{"assignee not a string", "any", with(func(b map[string]any) { b["assignee"] = 7 }), http.StatusBadRequest},
		{"missing duration", "any", with(func(b map[string]any) { delete(b, "duration") }), http.StatusBadRequest},
		{"duration abc", "any", with(func(b map[string]any) { b["duration"] = "abc" }), http.StatusBadRequest},
		{"duration null", "any", with(func(b map[string]any) { b["duration"] = nil }), http.StatusBadRequest},
		{"duration bool", "any", with(func(b map[string]any) { b["duration"] = true }), http.StatusBadRequest},
		{"duration negative", "any", with(func(b map[string]any) { b["duration"] = -5 }), http.StatusBadRequest},
		{"duration float string", "any", with(func(b map[string]any) { b["duration"] = "60.5" }), http.StatusBadRequest},
		{"missing image", "any", with(func(b map[string]any) { delete(b, "image") }), http.StatusBadRequest},
		{"missing boot-config key", "any", with(func(b map[string]any) { delete(b, "b2gbase") }), http.StatusBadRequest},
		{"one of two boot-config keys", "any", map[string]any{"assignee": "a", "duration": 60, "image": "multi", "aa": 1}, http.StatusBadRequest},
		{"unknown image", "any", with(func(b map[string]any) { b["image"] = "windows" }), http.StatusNotFound},
		{"unknown named device", "nosuch", b2gBody(), http.StatusNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newRequestEnv(t)
			e.ready("dev1")
			e.post("/api/device/"+tc.dev+"/request/", tc.body).requireError(t, tc.status)
			require.Zero(t, e.requestCount(), "a refused create must create nothing")
			require.Equal(t, []any{}, e.getOK("/api/request/list/?include_closed=1")["requests"])
		})
	}
}

// Duration is whatever Python's int() accepted.
func TestPostRequestDuration(t *testing.T) {
	tests := []struct {
		duration any
		want     time.Duration
	}{
		{"60", time.Minute},
		{" 120 ", 2 * time.Minute},
		{3600, time.Hour},
		{90.9, 90 * time.Second},
		{0, 0},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.duration), func(t *testing.T) {
			e := newRequestEnv(t)
			b := b2gBody()
			b["duration"] = tc.duration
			req := e.createRequest("any", b)
			require.Equal(t, api.FormatTime(e.clock.Now().Add(tc.want)), req["expires"])
		})
	}
}

// Only the image's boot-config keys are kept, encoded as the
// original did (sorted, Python's separators); values may be anything.
func TestPostRequestBootConfig(t *testing.T) {
	e := newRequestEnv(t)
	req := e.createRequest("any", map[string]any{"assignee": "a", "duration": 60, "image": "multi",
		"bb": map[string]any{"x": []int{1, 2}}, "aa": "http://x/?a=1&b=<2>", "cc": "dropped"})
	require.Equal(t, `{"aa": "http://x/?a=1&b=<2>", "bb": {"x":[1,2]}}`, req["boot_config"])
	var parsed map[string]any
	require.NoError(t, json.Unmarshal([]byte(req["boot_config"].(string)), &parsed))
	require.Equal(t, []string{"aa", "bb"}, keys(parsed))

	req = e.createRequest("any", map[string]any{"assignee": "a", "duration": 60, "image": "multi", "aa": nil, "bb": 2})
	require.Equal(t, `{"aa": null, "bb": 2}`, req["boot_config"])

	req = e.createRequest("any", map[string]any{"assignee": "a", "duration": 60, "image": "android", "junk": 1})
	require.Equal(t, `{}`, req["boot_config"], "an image without keys")
}

// A request for any device with one ready free device claims
// it at once; the answer carries a url that works on every node.
func TestPostRequestAny(t *testing.T) {
	e := newRequestEnv(t)
	e.ready("dev1")
	req := e.createRequest("any", b2gBody())
	require.Equal(t, requestKeys, keys(req))
	id := idOf(t, req["id"])
	require.Equal(t, map[string]any{
		"id": float64(id), "requested_device": "any", "assignee": "slave-1",
		"expires": api.FormatTime(e.clock.Now().Add(time.Hour)), "environment": "any", "image": "b2g",
		"boot_config": `{"b2gbase": "http://builds/b2g"}`, "assigned_device": "dev1",
		"url": fmt.Sprintf("http://127.0.0.1:8010/api/request/%d/", id),
	}, req)
	require.NotContains(t, req["expires"], "Z", "naive ISO time")
	require.Equal(t, "pending", e.getOK(fmt.Sprintf("/api/request/%d/status/", id))["state"])

	// The device shows its request.
	devs := e.getOK("/api/device/list/?details=1")["devices"].([]any)
	dev1 := devs[0].(map[string]any)
	require.Equal(t, "dev1", dev1["name"])
	require.Equal(t, float64(id), dev1["request_id"])
	require.Equal(t, "pxe_power_cycling", dev1["state"])

	// No device left: the request is created, unassigned, and waits.
	req = e.createRequest("any", b2gBody())
	require.Equal(t, "", req["assigned_device"])
	waiting := idOf(t, req["id"])
	require.Equal(t, "finding_device", e.requestState(waiting))

	// A board that comes ready goes to the waiting request at once.
	e.ready("dev2")
	require.Equal(t, "pending", e.requestState(waiting))

	// A named device and an environment: dev2 is held, so it waits.
	b := b2gBody()
	b["environment"] = "odd"
	req = e.createRequest("dev2", b)
	require.Equal(t, "", req["assigned_device"])
	require.Equal(t, "dev2", req["requested_device"])
	require.Equal(t, "odd", req["environment"])
	require.Equal(t, "finding_device", e.requestState(idOf(t, req["id"])))
}

// Details are the request unwrapped, with its url.
func TestRequestDetails(t *testing.T) {
	e := newRequestEnv(t)
	e.ready("dev1")
	created := e.createRequest("any", b2gBody())
	id := idOf(t, created["id"])

	// The creation's answer plus (new) the claim history.
	details := e.getOK(fmt.Sprintf("/api/request/%d/details/", id))
	claims, ok := details["claims"].([]any)
	require.True(t, ok, "claims in %v", details)
	require.Len(t, claims, 1)
	claim := claims[0].(map[string]any)
	require.Equal(t, "dev1", claim["device"])
	require.NotContains(t, claim, "to", "held")
	delete(details, "claims")
	require.Equal(t, created, details)
	require.Equal(t, http.StatusNoContent, e.post(fmt.Sprintf("/api/request/%d/return/", id), nil).StatusCode)
	claim = e.getOK(fmt.Sprintf("/api/request/%d/details/", id))["claims"].([]any)[0].(map[string]any)
	require.Greater(t, claim["to"], claim["from"], "released by the return")

	r := e.get(fmt.Sprintf("/api/request/%d/details", id))
	require.Equal(t, http.StatusSeeOther, r.StatusCode)
	require.Equal(t, fmt.Sprintf("/api/request/%d/details/", id), r.Header.Get("Location"))

	e.get("/api/request/xyz/details/").requireError(t, http.StatusBadRequest)
	e.get("/api/request/99999/details/").requireError(t, http.StatusNotFound)
}

// The list leaves closed requests out unless include_closed
// is given (any value); failed ones are listed. device_state is the state
// of the assigned device, "" when there is none.
func TestRequestList(t *testing.T) {
	e := newRequestEnv(t)
	e.ready("dev1", "dev2")
	require.Equal(t, []any{}, e.getOK("/api/request/list/")["requests"])

	returned := idOf(t, e.createRequest("any", b2gBody())["id"]) // dev1
	held := idOf(t, e.createRequest("any", b2gBody())["id"])     // dev2
	waiting := idOf(t, e.createRequest("any", b2gBody())["id"])  // nothing left
	e.mustApply(fsm.CmdDeviceStateChange, &fsm.DeviceStateChange{Device: "dev3", From: "new", To: "failed_pxe_booting"})
	failed := idOf(t, e.createRequest("dev3", b2gBody())["id"])
	require.Equal(t, "failed_bad_device", e.requestState(failed))
	require.Equal(t, http.StatusNoContent, e.post(fmt.Sprintf("/api/request/%d/return/", returned), nil).StatusCode)

	rows := e.getOK("/api/request/list/")["requests"].([]any)
	require.Len(t, rows, 3)
	byID := map[int64]map[string]any{}
	for _, row := range rows {
		m := row.(map[string]any)
		require.Equal(t, requestListKeys, keys(m))
		byID[idOf(t, m["id"])] = m
	}
	require.NotContains(t, byID, returned)
	require.Equal(t, map[string]any{
		"id": float64(held), "imaging_server": "server1", "assignee": "slave-1",
		"boot_config": `{"b2gbase": "http://builds/b2g"}`, "state": "pending",
		"expires": api.FormatTime(e.clock.Now().Add(time.Hour)), "requested_device": "any", "environment": "any",
		"assigned_device": "dev2", "device_state": "pxe_power_cycling",
	}, byID[held])
	require.Equal(t, "", byID[waiting]["assigned_device"])
	require.Equal(t, "", byID[waiting]["device_state"])
	require.Equal(t, "finding_device", byID[waiting]["state"])
	require.Equal(t, "failed_bad_device", byID[failed]["state"])

	for _, q := range []string{"?include_closed=1", "?include_closed=0", "?include_closed"} {
		rows = e.getOK("/api/request/list/" + q)["requests"].([]any)
		require.Len(t, rows, 4, q)
		first := rows[0].(map[string]any)
		require.Equal(t, float64(returned), first["id"], "%s: sorted by id", q)
		require.Equal(t, "closed", first["state"])
		require.Equal(t, "", first["device_state"])
	}
}

// Return and renew answer 204 with no body, with or
// without the trailing slash (no 303), in any state.
func TestRenewAndReturn(t *testing.T) {
	e := newRequestEnv(t)
	e.ready("dev1")
	id := idOf(t, e.createRequest("any", b2gBody())["id"])
	base := fmt.Sprintf("/api/request/%d/", id)
	expires := func() string { return e.getOK(base + "details/")["expires"].(string) }

	for _, path := range []string{base + "renew/", base + "renew"} {
		e.clock.Advance(time.Minute)
		r := e.post(path, map[string]any{"duration": 7200})
		require.Equal(t, http.StatusNoContent, r.StatusCode, "POST %s: body %q", path, r.body)
		require.Empty(t, r.body)
		require.Empty(t, r.Header.Get("Location"))
		require.Equal(t, api.FormatTime(e.clock.Now().Add(2*time.Hour)), expires(), path)
	}
	r := e.post(base+"renew/", map[string]any{"duration": "600"})
	require.Equal(t, http.StatusNoContent, r.StatusCode)
	require.Equal(t, api.FormatTime(e.clock.Now().Add(10*time.Minute)), expires())

	for _, bad := range []any{nil, map[string]any{}, map[string]any{"duration": "x"}, "[1]", map[string]any{"duration": -1}} {
		e.post(base+"renew/", bad).requireError(t, http.StatusBadRequest)
	}
	e.post("/api/request/99999/renew/", map[string]any{"duration": 60}).requireError(t, http.StatusNotFound)
	e.post("/api/request/xyz/renew/", map[string]any{"duration": 60}).requireError(t, http.StatusBadRequest)

	for i, path := range []string{base + "return/", base + "return", base + "return/"} {
		r := e.post(path, nil)
		require.Equal(t, http.StatusNoContent, r.StatusCode, "return %d: body %q", i, r.body)
		require.Empty(t, r.body)
		require.Equal(t, "closed", e.requestState(id), "return %d", i)
	}
	dev1 := e.getOK("/api/device/list/?details=1")["devices"].([]any)[0].(map[string]any)
	require.Nil(t, dev1["request_id"])
	require.Equal(t, "pxe_power_cycling", dev1["state"], "the device is not told")
	e.post("/api/request/99999/return/", nil).requireError(t, http.StatusNotFound)

	// Renewing a closed request rewrites expires and does not reopen it.
	r = e.post(base+"renew", map[string]any{"duration": 60})
	require.Equal(t, http.StatusNoContent, r.StatusCode)
	require.Equal(t, api.FormatTime(e.clock.Now().Add(time.Minute)), expires())
	require.Equal(t, "closed", e.requestState(id))

	// GET is not a route.
	require.Equal(t, http.StatusMethodNotAllowed, e.get(base+"return/").StatusCode)
}

// A failed request ignores a return, which still answers 204.
func TestReturnFailedRequest(t *testing.T) {
	e := newRequestEnv(t)
	e.mustApply(fsm.CmdDeviceStateChange, &fsm.DeviceStateChange{Device: "dev1", From: "new", To: "failed_pxe_booting"})
	id := idOf(t, e.createRequest("dev1", b2gBody())["id"])
	require.Equal(t, "failed_bad_device", e.requestState(id))
	r := e.post(fmt.Sprintf("/api/request/%d/return/", id), nil)
	require.Equal(t, http.StatusNoContent, r.StatusCode)
	require.Equal(t, "failed_bad_device", e.requestState(id))
}

// The event route delivers any event; unknown or refused ones are still
// 200 {}.
func TestRequestEventRoute(t *testing.T) {
	e := newRequestEnv(t)
	e.ready("dev1")
	id := idOf(t, e.createRequest("any", b2gBody())["id"])
	base := fmt.Sprintf("/api/request/%d/event/", id)

	r := e.get(base + "bogus/")
	require.Equal(t, http.StatusOK, r.StatusCode)
	require.Equal(t, map[string]any{}, r.obj(t))
	require.Equal(t, "pending", e.requestState(id))

	r = e.post(base+"lifeguard_finished/", map[string]any{"imaging_result": "complete"})
	require.Equal(t, http.StatusOK, r.StatusCode, "body %q", r.body)
	require.Equal(t, map[string]any{}, r.obj(t))
	require.Equal(t, "ready", e.requestState(id))

	r = e.post(base+"lifeguard_finished/", nil)
	require.Equal(t, http.StatusOK, r.StatusCode, "ignored in ready")
	require.Equal(t, "ready", e.requestState(id))

	e.post(base+"lifeguard_finished/", "{not json").requireError(t, http.StatusBadRequest)
	e.get("/api/request/99999/event/close/").requireError(t, http.StatusNotFound)
	e.get("/api/request/xyz/event/close/").requireError(t, http.StatusBadRequest)

	r = e.post(base+"close", nil)
	require.Equal(t, http.StatusSeeOther, r.StatusCode, "event is a JSON route: 303 without the slash")
	r = e.post(base+"close/", nil)
	require.Equal(t, http.StatusOK, r.StatusCode)
	require.Equal(t, "closed", e.requestState(id))
}

// status/ answers the state and the newest log lines, log/ the whole log;
// an unknown id has an empty log but no status.
func TestRequestStatusAndLog(t *testing.T) {
	e := newRequestEnv(t)
	e.ready("dev1")
	id := idOf(t, e.createRequest("any", b2gBody())["id"])
	require.Equal(t, http.StatusNoContent, e.post(fmt.Sprintf("/api/request/%d/return/", id), nil).StatusCode)

	status := e.getOK(fmt.Sprintf("/api/request/%d/status/", id))
	require.Equal(t, []string{"log", "state"}, keys(status))
	require.Equal(t, "closed", status["state"])
	lines := status["log"].([]any)
	var msgs []string
	for _, l := range lines {
		m := l.(map[string]any)
		require.Equal(t, []string{"id", "message", "source", "timestamp"}, keys(m))
		require.NotContains(t, m["timestamp"], "Z")
		msgs = append(msgs, m["message"].(string))
	}
	all := strings.Join(msgs, "\n")
	for _, want := range []string{"entering state finding_device", "claimed device dev1 and sent it please_image",
		"entering state pending", "entering state closed", "released device dev1"} {
		require.Contains(t, all, want)
	}
	require.True(t, strings.HasPrefix(msgs[0], "request for any"), "oldest first: %q", msgs[0])

	log := e.getOK(fmt.Sprintf("/api/request/%d/log/", id))
	require.Equal(t, []string{"log"}, keys(log))
	require.Equal(t, lines, log["log"])

	require.Equal(t, map[string]any{"log": []any{}}, e.getOK("/api/request/99999/log/"))
	e.get("/api/request/99999/status/").requireError(t, http.StatusNotFound)
	e.get("/api/request/xyz/log/").requireError(t, http.StatusBadRequest)
}

// A create retried with the same Idempotency-Key returns the first request
// and creates nothing more.
func TestPostRequestIdempotencyKey(t *testing.T) {
	e := newRequestEnv(t)
	e.ready("dev1", "dev2")
	first := e.createRequest("any", b2gBody(), "Idempotency-Key", "ci-job-42")
	e.clock.Advance(time.Second)
	again := e.createRequest("any", b2gBody(), "Idempotency-Key", "ci-job-42")
	require.Equal(t, first, again)
	require.Equal(t, 1, e.requestCount())

	other := e.createRequest("any", b2gBody(), "Idempotency-Key", "ci-job-43")
	require.NotEqual(t, first["id"], other["id"])
	require.Equal(t, 2, e.requestCount())
	require.Equal(t, "dev2", other["assigned_device"])

	b := b2gBody()
	e.post("/api/device/any/request/", b, "Idempotency-Key", strings.Repeat("k", 300)).requireError(t, http.StatusBadRequest)
	e.post("/api/device/any/request/", b, "Idempotency-Key", fsm.AutoKeyPrefix+"x").requireError(t, http.StatusBadRequest)
	require.Equal(t, 2, e.requestCount())
}
