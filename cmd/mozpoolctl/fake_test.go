package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// call is one request the fake API received.
type call struct {
	Method, Path, Query string
	Body                string
	Token               string
}

// reply is what a route answers: a status and a value encoded as JSON.
type reply struct {
	status int
	body   any
}

func ok(v any) reply { return reply{http.StatusOK, v} }

func apiError(status int, msg string) reply {
	return reply{status, map[string]string{"error": msg}}
}

// fakeAPI is a map-based stand-in for a mozpoold node: routes are keyed by
// "METHOD /path/" (with "?query" when the route depends on it) and map to a
// function of the request body.
type fakeAPI struct {
	t      *testing.T
	srv    *httptest.Server
	mu     sync.Mutex
	routes map[string]func(body []byte) reply
	calls  []call
}

func newFakeAPI(t *testing.T) *fakeAPI {
	t.Helper()
	f := &fakeAPI{t: t, routes: map[string]func([]byte) reply{}}
	f.srv = httptest.NewServer(f)
	t.Cleanup(f.srv.Close)
	return f
}

// on sets a fixed reply for a route.
func (f *fakeAPI) on(route string, r reply) {
	f.handle(route, func([]byte) reply { return r })
}

func (f *fakeAPI) handle(route string, fn func(body []byte) reply) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.routes[route] = fn
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	key := r.Method + " " + r.URL.Path
	f.mu.Lock()
	f.calls = append(f.calls, call{r.Method, r.URL.Path, r.URL.RawQuery, string(body), r.Header.Get("X-Mozpool-Token")})
	fn, found := f.routes[key+"?"+r.URL.RawQuery]
	if !found {
		fn, found = f.routes[key]
	}
	f.mu.Unlock()
	rep := apiError(http.StatusNotFound, "not found: "+key)
	if found {
		rep = fn(body)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(rep.status)
	json.NewEncoder(w).Encode(rep.body)
}

// lastCall returns the most recent request.
func (f *fakeAPI) lastCall() call {
	f.t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	require.NotEmpty(f.t, f.calls, "no request reached the fake API")
	return f.calls[len(f.calls)-1]
}

func (f *fakeAPI) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

// result is one run of the CLI.
type result struct {
	code           int
	stdout, stderr string
}

// runCLI runs the CLI with args against server (when non-nil; its URL
// goes into --server before the command).
func runCLI(t *testing.T, f *fakeAPI, args ...string) result {
	t.Helper()
	if f != nil {
		args = append([]string{"--server", f.srv.URL, "--token", "sekrit"}, args...)
	}
	var out, errOut bytes.Buffer
	code := run(args, &out, &errOut)
	t.Logf("mozpoolctl %s -> %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out.String(), errOut.String())
	return result{code, out.String(), errOut.String()}
}
