package httpapi

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/fsm"
	"github.com/mozpool/mozpool/requests"
)

// The queue keys of a creation are stored and shown in details/; bad
// values are refused 400 and create nothing.
func TestPostRequestQueueFields(t *testing.T) {
	e := newRequestEnv(t)
	b := b2gBody()
	b["priority"] = 7
	b["group"] = "release"
	b["hardware_type"] = "panda"
	b["tags"] = map[string]any{"cpu": "armv7"}
	b["max_wait"] = 120
	id := idOf(t, e.createRequest("any", b)["id"])
	details := e.getOK(fmt.Sprintf("/api/request/%d/details/", id))
	require.Equal(t, float64(7), details["priority"])
	require.Equal(t, "release", details["group"])
	require.Equal(t, "panda", details["hardware_type"])
	require.Equal(t, map[string]any{"cpu": "armv7"}, details["tags"])
	require.Equal(t, float64(120), details["max_wait"])
	// No board has the tag: it failed at once, saying why.
	require.Equal(t, "failed_device_not_found", e.requestState(id))
	require.Contains(t, details["reason"], "tag cpu=armv7")

	for name, bad := range map[string]any{
		"priority":       "high",
		"max_wait":       7200, // longer than the duration
		"tags":           map[string]any{"cpu": 7},
		"wait":           "no",
		"group":          strings.Repeat("g", 300),
		"hardware_model": 5,
	} {
		b := b2gBody()
		b[name] = bad
		msg := e.post("/api/device/any/request/", b).requireError(t, http.StatusBadRequest)
		require.Contains(t, msg, strings.Split(name, "_")[0], "%s: %s", name, msg)
	}
	b = b2gBody()
	b["priority"] = 101
	e.post("/api/device/any/request/", b).requireError(t, http.StatusBadRequest)
	var n int
	e.fsm.Read(func(s *fsm.State) { n = len(s.Requests) })
	require.Equal(t, 1, n, "refused creations create nothing")
}

// holdAll creates a request on every board, so that later ones wait.
func (e *testEnv) holdAll() []int64 {
	e.t.Helper()
	e.ready("dev1", "dev2")
	var ids []int64
	for range 2 {
		ids = append(ids, idOf(e.t, e.createRequest("any", b2gBody())["id"]))
	}
	return ids
}

// free returns a board's request and brings the board back to ready.
func (e *testEnv) free(holder int64, board string) {
	e.t.Helper()
	require.Equal(e.t, http.StatusNoContent, e.post(fmt.Sprintf("/api/request/%d/return/", holder), nil).StatusCode)
	e.mustApply(fsm.CmdDeviceStateChange, &fsm.DeviceStateChange{Device: board, From: "pxe_power_cycling", To: "ready"})
}

// A waiting request shows its position and ETA in status/ and details/;
// /api/queue/ lists the waiting requests in service order, filtered.
func TestQueuePositionAndList(t *testing.T) {
	e := newRequestEnv(t)
	e.holdAll()
	low := b2gBody()
	low["priority"] = -1
	low["group"] = "nightly"
	low["max_wait"] = 3600
	lowID := idOf(t, e.createRequest("any", low)["id"])
	high := b2gBody()
	high["max_wait"] = 3600
	highID := idOf(t, e.createRequest("any", high)["id"])

	status := e.getOK(fmt.Sprintf("/api/request/%d/status/", lowID))
	require.Equal(t, "finding_device", status["state"])
	require.Equal(t, float64(2), status["queue_position"])
	require.Equal(t, float64(2), status["queue_length"])
	require.NotEmpty(t, status["eta"])
	details := e.getOK(fmt.Sprintf("/api/request/%d/details/", highID))
	require.Equal(t, float64(1), details["queue_position"])

	q := e.getOK("/api/queue/")
	rows := q["queue"].([]any)
	require.Len(t, rows, 2)
	require.Equal(t, float64(highID), rows[0].(map[string]any)["id"])
	require.Equal(t, float64(lowID), rows[1].(map[string]any)["id"])
	require.Equal(t, "nightly", rows[1].(map[string]any)["group"])

	rows = e.getOK("/api/queue/?group=nightly")["queue"].([]any)
	require.Len(t, rows, 1)
	require.Equal(t, float64(lowID), rows[0].(map[string]any)["id"])
	require.Empty(t, e.getOK("/api/queue/?image=android")["queue"])
	e.get("/api/queue/?colour=red").requireError(t, http.StatusBadRequest)
}

// status/?wait=&index= blocks until the request changes after index and
// answers the change; bad wait or index values are 400s.
func TestRequestStatusLongPoll(t *testing.T) {
	e := newRequestEnv(t)
	holders := e.holdAll()
	id := idOf(t, e.createRequest("any", b2gBody())["id"])
	path := fmt.Sprintf("/api/request/%d/status/", id)
	first := e.get(path)
	require.Equal(t, http.StatusOK, first.StatusCode)
	index := first.Header.Get("X-Mozpool-Index")
	require.NotEmpty(t, index)

	// Nothing changes within a short wait: the same state comes back.
	r := e.get(path + "?wait=10ms&index=" + index)
	require.Equal(t, http.StatusOK, r.StatusCode)
	require.Equal(t, "finding_device", r.obj(t)["state"])

	done := make(chan response, 1)
	go func() { done <- e.get(path + "?wait=60s&index=" + index) }()
	e.free(holders[0], "dev1")
	got := <-done
	require.Equal(t, http.StatusOK, got.StatusCode)
	require.Equal(t, string(requests.StatePending), got.obj(t)["state"])

	for _, q := range []string{"?wait=forever", "?wait=10m", "?wait=1s&index=-1", "?wait=-1s"} {
		e.get(path+q).requireError(t, http.StatusBadRequest)
	}
}

// A group's weight is set with the token and shown in /api/queue/.
func TestQueueWeight(t *testing.T) {
	e := newRequestEnv(t)
	r := e.post("/api/queue/weight/", map[string]any{"group": "release", "weight": 3}, "X-Mozpool-Token", testToken)
	require.Equal(t, http.StatusNoContent, r.StatusCode, "%s", r.body)
	require.Equal(t, map[string]any{"release": float64(3)}, e.getOK("/api/queue/")["weights"])
	for _, bad := range []any{map[string]any{"group": "x", "weight": 101}, map[string]any{"weight": 1},
		map[string]any{"group": "x", "weight": "heavy"}, map[string]any{"group": "", "weight": 1}} {
		e.post("/api/queue/weight/", bad, "X-Mozpool-Token", testToken).requireError(t, http.StatusBadRequest)
	}
}

// Anonymous callers and users may ask for a priority up to
// MaxUserPriority; above it needs an operator (403, nothing created).
func TestPostRequestPriorityCap(t *testing.T) {
	e := newRequestEnv(t)
	e.anonymous = true
	b := b2gBody()
	b["priority"] = MaxUserPriority
	id := idOf(t, e.createRequest("any", b)["id"])
	require.Positive(t, id)
	b["priority"] = MaxUserPriority + 1
	msg := e.post("/api/device/any/request/", b).requireError(t, http.StatusForbidden)
	require.Contains(t, msg, "operator")
	var n int
	e.fsm.Read(func(s *fsm.State) { n = len(s.Requests) })
	require.Equal(t, 1, n, "a refused creation creates nothing")

	e.anonymous = false // the bootstrap admin
	b["priority"] = fsm.MaxPriority
	id = idOf(t, e.createRequest("any", b)["id"])
	require.Equal(t, float64(fsm.MaxPriority), e.getOK(fmt.Sprintf("/api/request/%d/details/", id))["priority"])
}
