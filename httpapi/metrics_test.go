package httpapi

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/julienschmidt/httprouter"
	"github.com/stretchr/testify/require"
)

// Requests are labelled by the pattern they were routed by, whatever
// names they carry, including names equal to a static segment.
func TestRoutePattern(t *testing.T) {
	env := newTestEnv(t)
	router := env.srv.routes().(*httprouter.Router)
	for _, tc := range []struct{ method, path, want string }{
		{"GET", "/api/device/list/", "/api/device/:id/"},
		{"GET", "/api/device/dev1/state/", "/api/device/:id/state/"},
		{"GET", "/api/device/state/state/", "/api/device/:id/state/"},
		{"GET", "/api/device/device/state", "/api/device/:id/state"},
		{"GET", "/api/device/api/event/api/", "/api/device/:id/event/:event/"},
		{"POST", "/api/device/x/state-change/x/to/x/", "/api/device/:id/state-change/:old/to/:new/"},
		{"POST", "/api/device/to/state-change/to/to/to/", "/api/device/:id/state-change/:old/to/:new/"},
		{"GET", "/ui/js/app.js", "/ui/*filepath"},
		{"GET", "/ui/", "/ui/*filepath"},
		{"POST", "/_cluster/apply", "/_cluster/*path"},
		{"GET", "/api/version/", "/api/version/"},
		{"GET", "/api/nothing/here/", "unmatched"},
		{"DELETE", "/api/device/list/", "unmatched"},
	} {
		require.Equal(t, tc.want, routePattern(router, tc.method, tc.path), "%s %s", tc.method, tc.path)
	}
}

// The instrumented handler reports the pattern, the normalised method and
// the status of each request.
func TestInstrumentedHandler(t *testing.T) {
	env := newTestEnv(t)
	type obs struct {
		method, route string
		code          int
	}
	var mu sync.Mutex
	var got []obs
	h := env.srv.InstrumentedHandler(func(method, route string, code int, _ time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, obs{method, route, code})
	})
	for _, r := range []*http.Request{
		mustRequest(t, "GET", "/api/device/dev1/state/"),
		mustRequest(t, "GET", "/api/device/nosuch/state/"),
		mustRequest(t, "BREW", "/api/device/dev1/state/"),
	} {
		h.ServeHTTP(discard{}, r)
	}
	require.Equal(t, []obs{
		{"GET", "/api/device/:id/state/", http.StatusOK},
		{"GET", "/api/device/:id/state/", http.StatusNotFound},
		{"other", "unmatched", http.StatusMethodNotAllowed},
	}, got)
}

func mustRequest(t *testing.T, method, path string) *http.Request {
	r, err := http.NewRequest(method, path, nil)
	require.NoError(t, err)
	return r
}

type discard struct{}

func (discard) Header() http.Header         { return http.Header{} }
func (discard) Write(b []byte) (int, error) { return len(b), nil }
func (discard) WriteHeader(int)             {}
