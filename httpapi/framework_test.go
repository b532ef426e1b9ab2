package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/cluster"
	"github.com/mozpool/mozpool/fsm"
)

func TestVersion(t *testing.T) {
	e := newTestEnv(t)
	r := e.get("/api/version/")
	require.Equal(t, http.StatusOK, r.StatusCode)
	require.Equal(t, "application/json; charset=utf-8", r.Header.Get("Content-Type"))
	require.Equal(t, strconv.Itoa(len(r.body)), r.Header.Get("Content-Length"))
	require.Equal(t, "node1", r.Header.Get("X-Mozpool-Served-By"))
	require.Equal(t, map[string]any{"version": "4.2.1"}, r.obj(t))
}

func TestSlashlessRedirect(t *testing.T) {
	e := newTestEnv(t)
	cases := []struct {
		method, path, want string
	}{
		{"GET", "/api/version", "/api/version/"},
		{"GET", "/api/device/list?details=1", "/api/device/list/?details=1"},
		{"GET", "/api/device/dev1/state?cache=1", "/api/device/dev1/state/?cache=1"},
		{"GET", "/api/bmm/pxe_config/list?active_only", "/api/bmm/pxe_config/list/?active_only"},
		{"GET", "/api/cluster/status", "/api/cluster/status/"},
		{"POST", "/api/device/dev1/set-comments", "/api/device/dev1/set-comments/"},
	}
	for _, tc := range cases {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			r := e.do(tc.method, tc.path, "{}")
			require.Equal(t, http.StatusSeeOther, r.StatusCode)
			require.Equal(t, tc.want, r.Header.Get("Location"))
		})
	}
}

func TestSlashlessChecksRunFirst(t *testing.T) {
	e := newTestEnv(t)
	// As the original's device wrapper: an unknown device is a 404 even
	// without the slash, and a list route with another name is a 404.
	e.post("/api/device/nosuch/set-comments", `{"comments": "x"}`).requireError(t, http.StatusNotFound)
	e.get("/api/device/dev1").requireError(t, http.StatusNotFound)
	e.anon().post("/api/cluster/join", "{}").requireError(t, http.StatusUnauthorized)
}

func TestHealthServesBothSpellings(t *testing.T) {
	e := newTestEnv(t)
	for _, p := range []string{"/api/cluster/health", "/api/cluster/health/"} {
		r := e.get(p)
		require.Equal(t, http.StatusOK, r.StatusCode, p)
		require.Equal(t, true, r.obj(t)["ok"])
	}
}

func TestNotFound(t *testing.T) {
	e := newTestEnv(t)
	for _, p := range []string{"/nosuch", "/api/nosuch/", "/api/device/dev1/", "/api/bmm/pxe_config/pxe1/", "/api/device/dev1/state/extra/"} {
		t.Run(p, func(t *testing.T) {
			e.get(p).requireError(t, http.StatusNotFound)
		})
	}
}

func TestMethodNotAllowed(t *testing.T) {
	e := newTestEnv(t)
	cases := []struct{ method, path string }{
		{"POST", "/api/version/"},
		{"GET", "/api/device/dev1/set-comments/"},
		{"POST", "/api/device/list/"},
		{"GET", "/api/cluster/join/"},
		{"PUT", "/api/image/list/"},
		{"OPTIONS", "/api/version/"},
		{"DELETE", "/_cluster/anything"},
	}
	for _, tc := range cases {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			e.do(tc.method, tc.path, nil).requireError(t, http.StatusMethodNotAllowed)
		})
	}
}

func TestBodyTooLarge(t *testing.T) {
	e := newTestEnv(t)
	big := `{"comments": "` + strings.Repeat("x", maxBodyBytes) + `"}`
	e.post("/api/device/dev1/set-comments/", big).requireError(t, http.StatusRequestEntityTooLarge)
	// Routes that take no body refuse one over the limit too, rather
	// than act and leave it unread.
	e.post("/api/device/dev1/state-change/new/to/locked_out/", big).requireError(t, http.StatusRequestEntityTooLarge)
	e.post("/api/request/1/return/", big).requireError(t, http.StatusRequestEntityTooLarge)
	// Nothing was proposed.
	e.getOK("/api/device/list/?details")
	require.Len(t, e.cluster.headers, 1, "only the inventory load was applied")
}

func TestBodyParsedWhateverContentType(t *testing.T) {
	e := newTestEnv(t)
	r := e.post("/api/device/dev1/set-comments/", `{"comments": "form-posted"}`,
		"Content-Type", "application/x-www-form-urlencoded; charset=UTF-8")
	require.Equal(t, http.StatusOK, r.StatusCode, "body %q", r.body)
	d := e.getOK("/api/device/dev1/details/")["device"].(map[string]any)
	require.Equal(t, "form-posted", d["comments"])
}

func TestNoLeader(t *testing.T) {
	e := newTestEnv(t)
	e.cluster.setApplyErr(cluster.ErrNoLeader)
	r := e.post("/api/device/dev1/set-comments/", `{"comments": "x"}`)
	r.requireError(t, http.StatusServiceUnavailable)
	require.Equal(t, "1", r.Header.Get("Retry-After"))
	// Reads do not need a leader.
	e.getOK("/api/device/dev1/state/")
}

func TestIdempotencyKey(t *testing.T) {
	e := newTestEnv(t)
	r := e.post("/api/bmm/pxe_config/", map[string]any{"name": "once", "contents": "c"}, "Idempotency-Key", "key-123")
	require.Equal(t, http.StatusOK, r.StatusCode, "body %q", r.body)
	require.Equal(t, "key-123", e.cluster.lastHeader().IdempotencyKey)
	// A retry with the same key gets the first result, not a 409.
	r2 := e.post("/api/bmm/pxe_config/", map[string]any{"name": "once", "contents": "c"}, "Idempotency-Key", "key-123")
	require.Equal(t, http.StatusOK, r2.StatusCode, "body %q", r2.body)
	require.Equal(t, r.obj(t), r2.obj(t))

	e.post("/api/bmm/pxe_config/", map[string]any{"name": "x"}, "Idempotency-Key", "auto:forged").requireError(t, http.StatusBadRequest)
	e.post("/api/bmm/pxe_config/", map[string]any{"name": "x"}, "Idempotency-Key", strings.Repeat("k", 300)).requireError(t, http.StatusBadRequest)
}

func TestPanicAnswers500(t *testing.T) {
	e := newTestEnv(t)
	e.cluster.mu.Lock()
	e.cluster.panicky = true
	e.cluster.mu.Unlock()
	e.get("/api/cluster/status/").requireError(t, http.StatusInternalServerError)
	// The server keeps serving.
	e.getOK("/api/version/")
}

func TestStatusFor(t *testing.T) {
	require.Equal(t, http.StatusInternalServerError, statusFor(errors.New("boom")))
	require.Equal(t, http.StatusServiceUnavailable, statusFor(cluster.ErrNoLeader))
	require.Equal(t, http.StatusServiceUnavailable, statusFor(fmt.Errorf("%w: 3 attempts", cluster.ErrTransferTimeout)))
	require.Equal(t, http.StatusNotFound, statusFor(cluster.ErrUnknownNode))
	require.Equal(t, http.StatusBadRequest, statusFor(cluster.ErrBadJoin))
	require.Equal(t, http.StatusUnauthorized, statusFor(cluster.ErrUnauthorized))
	require.Equal(t, http.StatusForbidden, statusFor(fsm.ErrForbidden))
}

func TestConfigValidate(t *testing.T) {
	cfg := DefaultConfig()
	require.Equal(t, "4.2.1", cfg.Version)
	require.Error(t, cfg.Validate())
	_, err := New(cfg)
	require.Error(t, err)
}

func TestETagRevalidation(t *testing.T) {
	e := newTestEnv(t)
	r := e.get("/api/device/list/?details=1")
	require.Equal(t, http.StatusOK, r.StatusCode)
	etag := r.Header.Get("ETag")
	require.NotEmpty(t, etag)
	require.Equal(t, "no-cache", r.Header.Get("Cache-Control"))

	r = e.get("/api/device/list/?details=1", "If-None-Match", etag)
	require.Equal(t, http.StatusNotModified, r.StatusCode)
	require.Empty(t, r.body)

	// A change gives a new body and a new tag.
	require.Equal(t, http.StatusOK, e.post("/api/device/dev1/set-comments/", map[string]any{"comments": "x"}).StatusCode)
	r = e.get("/api/device/list/?details=1", "If-None-Match", etag)
	require.Equal(t, http.StatusOK, r.StatusCode)
	require.NotEqual(t, etag, r.Header.Get("ETag"))

	// The cached state route keeps its own caching headers.
	r = e.get("/api/device/dev1/state/?cache=1")
	require.Empty(t, r.Header.Get("ETag"))
}
