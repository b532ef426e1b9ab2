package httpapi

import (
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/api"
	"github.com/mozpool/mozpool/fsm"
)

// indexOf returns the api.HeaderIndex of an answer, which must be there.
func indexOf(t *testing.T, r response) uint64 {
	t.Helper()
	v := r.Header.Get(api.HeaderIndex)
	require.NotEmpty(t, v, "%s missing", api.HeaderIndex)
	n, err := strconv.ParseUint(v, 10, 64)
	require.NoError(t, err)
	return n
}

// A node that has not caught up since its start answers reads, and the
// writes it validates against its state, 503 with Retry-After and a JSON
// reason — not 404 for a request or device it has not replayed yet.
func TestNotServing_ReadsAndValidatedWrites503(t *testing.T) {
	e := newRequestEnv(t)
	e.ready("dev1")
	id := idOf(t, e.createRequest("any", b2gBody())["id"])
	e.cluster.setServing(false)

	for _, p := range []string{
		"/api/device/list/", "/api/device/dev1/state/", "/api/device/dev1/status/", "/api/device/dev1/details/",
		"/api/device/dev1/log/", "/api/environment/list/", "/api/image/list/", "/api/bmm/pxe_config/list/",
		"/api/bmm/pxe_config/pxe1/details/", "/api/request/list/",
		fmt.Sprintf("/api/request/%d/status/", id), fmt.Sprintf("/api/request/%d/details/", id),
		"/api/request/999/status/", "/api/device/nosuch/details/", "/api/device/dev1/bootconfig/",
	} {
		r := e.get(p)
		msg := r.requireError(t, http.StatusServiceUnavailable)
		require.Equal(t, "1", r.Header.Get("Retry-After"), p)
		require.Contains(t, msg, "caught up", p)
		require.Contains(t, msg, "?stale", p)
	}

	// Writes validated against the local state: an unknown image or device
	// is not 404 from a state that may be stale. ?stale does not apply.
	body := b2gBody()
	body["image"] = "nosuch"
	e.post("/api/device/any/request/", body).requireError(t, http.StatusServiceUnavailable)
	e.post("/api/device/any/request/?stale", b2gBody()).requireError(t, http.StatusServiceUnavailable)
	e.post("/api/device/nosuch/set-comments/", map[string]any{"comments": "x"}).requireError(t, http.StatusServiceUnavailable)
	e.post("/api/device/nosuch/event/free/", nil).requireError(t, http.StatusServiceUnavailable)
	// A device the node knows passes (the leader checks it again): a
	// board's events reach a node that is still catching up.
	r := e.post("/api/device/dev1/set-comments/", map[string]any{"comments": "while catching up"})
	require.Equal(t, http.StatusOK, r.StatusCode, "%s", r.body)
	e.post("/api/device/dev1/power-cycle/", map[string]any{}).requireError(t, http.StatusServiceUnavailable)

	// Once caught up the same calls answer.
	e.cluster.setServing(true)
	require.Equal(t, "pending", e.getOK(fmt.Sprintf("/api/request/%d/status/", id))["state"])
	e.get("/api/request/999/status/").requireError(t, http.StatusNotFound)
	e.post("/api/device/any/request/", body).requireError(t, http.StatusNotFound)
}

// ?stale reads the local state as it is, whatever its value.
func TestNotServing_StaleReads(t *testing.T) {
	e := newTestEnv(t)
	e.cluster.setServing(false)
	for _, p := range []string{"/api/device/list/?stale", "/api/device/dev1/details/?stale=1", "/api/device/list/?details=1&stale="} {
		r := e.get(p)
		require.Equal(t, http.StatusOK, r.StatusCode, "%s: %s", p, r.body)
		require.Equal(t, e.fsm.AppliedIndex(), indexOf(t, r), p)
	}
	e.get("/api/device/nosuch/details/?stale").requireError(t, http.StatusNotFound)
	r := e.get("/api/device/dev1/bootconfig?stale")
	require.Equal(t, http.StatusOK, r.StatusCode)
}

// The cluster, health and operator routes, the UI and the internal
// endpoints answer whether or not the node serves, and ignore
// X-Mozpool-Min-Index, so an operator can see why a node does not serve.
func TestNotServing_OperatorRoutesAnswer(t *testing.T) {
	e := newTestEnv(t)
	e.cluster.setServing(false)
	far := strconv.FormatUint(e.fsm.AppliedIndex()+1000, 10)
	for _, p := range []string{"/api/version/", "/api/cluster/status/", "/api/cluster/health", "/api/cluster/self/", "/api/lifeguard/states/"} {
		for _, hdr := range [][]string{nil, {api.HeaderMinIndex, far}} {
			r := e.get(p, hdr...)
			require.Equal(t, http.StatusOK, r.StatusCode, "%s %v: %s", p, hdr, r.body)
			require.NotEmpty(t, r.Header.Get(api.HeaderIndex), p)
		}
	}
	r := e.get("/ui/")
	require.Equal(t, http.StatusOK, r.StatusCode)
	r = e.post("/_cluster/apply", "payload", api.HeaderMinIndex, far)
	require.Equal(t, "cluster POST /_cluster/apply", string(r.body))
	// Writes the leader alone validates are forwarded as before.
	r = e.post("/api/image/", map[string]any{"name": "newimg"})
	require.Equal(t, http.StatusOK, r.StatusCode, "%s", r.body)
}

// Every JSON answer says which applied index it reflects; a write's is at
// least that of its entry.
func TestIndexHeader(t *testing.T) {
	e := newTestEnv(t)
	r := e.get("/api/device/list/")
	require.Equal(t, http.StatusOK, r.StatusCode)
	require.Equal(t, e.fsm.AppliedIndex(), indexOf(t, r))

	before := e.fsm.AppliedIndex()
	r = e.post("/api/device/dev1/set-comments/", map[string]any{"comments": "hi"})
	require.Equal(t, http.StatusOK, r.StatusCode, "%s", r.body)
	require.Equal(t, before+1, indexOf(t, r))

	r = e.get("/api/device/nosuch/details/")
	r.requireError(t, http.StatusNotFound)
	require.Equal(t, before+1, indexOf(t, r))
	require.Equal(t, before+1, indexOf(t, e.get("/api/device/dev1/bootconfig/")))
}

// X-Mozpool-Min-Index holds the answer until the node has applied it.
func TestMinIndex_WaitsThenAnswers(t *testing.T) {
	e := newTestEnv(t)
	e.cluster.waiting = make(chan uint64, 1)
	want := e.fsm.AppliedIndex() + 1
	type result struct {
		status int
		index  uint64
		body   string
	}
	done := make(chan result, 1)
	go func() {
		r := e.get("/api/device/dev1/details/", api.HeaderMinIndex, strconv.FormatUint(want, 10))
		done <- result{r.StatusCode, indexOf(t, r), string(r.body)}
	}()
	select {
	case got := <-e.cluster.waiting:
		require.Equal(t, want, got)
	case r := <-done:
		t.Fatalf("answered before the index was applied: %+v", r)
	}
	e.mustApply(fsm.CmdDeviceSetComments, &fsm.DeviceSetComments{Device: "dev1", Comments: "written elsewhere"})
	r := <-done
	require.Equal(t, http.StatusOK, r.status, r.body)
	require.GreaterOrEqual(t, r.index, want)
	require.Contains(t, r.body, "written elsewhere")

	// An index already applied answers at once; so does 0.
	for _, v := range []string{"0", strconv.FormatUint(want, 10), " 1 "} {
		require.Equal(t, http.StatusOK, e.get("/api/device/list/", api.HeaderMinIndex, v).StatusCode, v)
	}
}

// An index the node does not reach within MinIndexWait is a 503 with
// Retry-After and a JSON reason; on writes too.
func TestMinIndex_BeyondReach(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.MinIndexWait = 20 * time.Millisecond })
	far := strconv.FormatUint(e.fsm.AppliedIndex()+1000, 10)
	r := e.get("/api/device/list/", api.HeaderMinIndex, far)
	msg := r.requireError(t, http.StatusServiceUnavailable)
	require.Equal(t, "1", r.Header.Get("Retry-After"))
	require.Contains(t, msg, far)
	// ?stale does not lift an explicit minimum.
	e.get("/api/device/list/?stale", api.HeaderMinIndex, far).requireError(t, http.StatusServiceUnavailable)
	before := e.fsm.AppliedIndex()
	e.post("/api/device/dev1/set-comments/", map[string]any{"comments": "x"}, api.HeaderMinIndex, far).
		requireError(t, http.StatusServiceUnavailable)
	e.post("/api/request/1/return/", map[string]any{}, api.HeaderMinIndex, far).requireError(t, http.StatusServiceUnavailable)
	require.Equal(t, before, e.fsm.AppliedIndex(), "nothing was proposed")
}

// A Min-Index that is not a non-negative integer is a 400, not a 500.
func TestMinIndex_BadValue(t *testing.T) {
	e := newTestEnv(t)
	for _, v := range []string{"", "abc", "-1", "1.5", "18446744073709551616", "0x10"} {
		msg := e.get("/api/device/list/", api.HeaderMinIndex, v).requireError(t, http.StatusBadRequest)
		require.Contains(t, msg, api.HeaderMinIndex, v)
		e.post("/api/device/dev1/set-comments/", map[string]any{"comments": "x"}, api.HeaderMinIndex, v).
			requireError(t, http.StatusBadRequest)
		e.get("/api/device/dev1/bootconfig/", api.HeaderMinIndex, v).requireError(t, http.StatusBadRequest)
	}
	// Given twice.
	req, err := http.NewRequest(http.MethodGet, e.ts.URL+"/api/device/list/", nil)
	require.NoError(t, err)
	req.Header.Add(api.HeaderMinIndex, "1")
	req.Header.Add(api.HeaderMinIndex, "2")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
}

// A write proposed through a follower is answered as soon as the leader
// has committed it, before the follower's own state reflects it. Whatever
// reads the follower's state afterwards waits for that write: a read, a
// validated write, a token lookup, the token list. A write the leader
// alone validates does not wait. Here the follower's state never catches
// up within MinIndexWait, so the reads are 503 (not a 404, nor an answer
// without the write) until it does.
func TestForwardedWrites_ReadYourWrites(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.MinIndexWait = 20 * time.Millisecond })
	e.cluster.follow(t)
	before := e.fsm.AppliedIndex()

	// A token created through this node: the answer carries its secret
	// and the index it was committed at, which this node has not applied.
	r := e.post("/api/token/", map[string]any{"name": "ci", "role": "user"})
	require.Equal(t, http.StatusCreated, r.StatusCode, "%s", r.body)
	require.Equal(t, before, e.fsm.AppliedIndex(), "the answer did not wait for this node's state")
	require.Greater(t, indexOf(t, r), before, "the answer's index is the write's")
	secret, _ := r.obj(t)["token"].(string)
	require.NotEmpty(t, secret)

	// Using it, listing it, reading: 503 until this node has the write.
	auth := []string{"Authorization", "Bearer " + secret}
	require.Contains(t, e.get("/api/device/list/", auth...).requireError(t, http.StatusServiceUnavailable), "forwarded")
	require.Contains(t, e.get("/api/token/list/").requireError(t, http.StatusServiceUnavailable), "forwarded")
	require.Contains(t, e.get("/api/device/list/").requireError(t, http.StatusServiceUnavailable), "forwarded")

	e.cluster.catchUp()
	require.Equal(t, http.StatusOK, e.get("/api/device/list/", auth...).StatusCode)
	require.Contains(t, string(e.get("/api/token/list/").body), `"ci"`)

	// A write the leader validates alone goes through while this node
	// lags; the read after it waits for it.
	r = e.post("/api/device/dev1/set-comments/", map[string]any{"comments": "forwarded"})
	require.Equal(t, http.StatusOK, r.StatusCode, "%s", r.body)
	r = e.post("/api/device/dev1/set-comments/", map[string]any{"comments": "forwarded again"})
	require.Equal(t, http.StatusOK, r.StatusCode, "ordered writes do not wait: %s", r.body)
	e.get("/api/device/dev1/details/").requireError(t, http.StatusServiceUnavailable)
	// A backup would miss the write: it waits for it too.
	e.get("/api/cluster/backup/").requireError(t, http.StatusServiceUnavailable)
	e.cluster.catchUp()
	require.Equal(t, "forwarded again", e.getOK("/api/device/dev1/details/")["device"].(map[string]any)["comments"])
}
