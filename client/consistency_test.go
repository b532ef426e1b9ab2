package client_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/api"
	"github.com/mozpool/mozpool/client"
)

// scripted answers requests with the next of its answers (the last one
// repeats) and records each request's Min-Index header and query.
type scripted struct {
	mu      sync.Mutex
	answers []answer
	minIdx  []string
	queries []string
}

type answer struct {
	status     int
	index      string // X-Mozpool-Index, "" for none
	retryAfter string // "" for none
	body       string
}

func (s *scripted) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	s.mu.Lock()
	a := s.answers[0]
	if len(s.answers) > 1 {
		s.answers = s.answers[1:]
	}
	s.minIdx = append(s.minIdx, r.Header.Get(api.HeaderMinIndex))
	s.queries = append(s.queries, r.URL.RawQuery)
	s.mu.Unlock()
	if a.index != "" {
		w.Header().Set(api.HeaderIndex, a.index)
	}
	if a.retryAfter != "" {
		w.Header().Set("Retry-After", a.retryAfter)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(a.status)
	io.WriteString(w, a.body)
}

func (s *scripted) seen() (minIdx, queries []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.minIdx...), append([]string(nil), s.queries...)
}

func newScripted(t *testing.T, answers ...answer) (*scripted, string) {
	t.Helper()
	s := &scripted{answers: answers}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv.URL
}

const versionBody = `{"version": "4.2.1"}`

// The client sends back the highest index it has seen, never a lower one.
func TestClient_SendsHighestIndexSeen(t *testing.T) {
	ctx := context.Background()
	s, url := newScripted(t,
		answer{status: 200, index: "7", body: versionBody},
		answer{status: 200, index: "5", body: versionBody},
		answer{status: 404, index: "9", body: `{"error": "no"}`},
		answer{status: 200, body: versionBody},
	)
	c := client.New(url)
	for range 4 {
		_, _ = c.Version(ctx)
	}
	minIdx, _ := s.seen()
	require.Equal(t, []string{"", "7", "7", "9"}, minIdx)
	require.Equal(t, uint64(9), c.LastIndex())
}

// Clients sharing an Index carry it from one node to another; a client
// made WithoutMinIndex never sends it.
func TestClient_SharedIndexAndWithoutMinIndex(t *testing.T) {
	ctx := context.Background()
	_, urlA := newScripted(t, answer{status: 200, index: "42", body: versionBody})
	b, urlB := newScripted(t, answer{status: 200, index: "42", body: versionBody})
	ix := &client.Index{}
	_, err := client.New(urlA, client.WithIndex(ix)).Version(ctx)
	require.NoError(t, err)
	_, err = client.New(urlB, client.WithIndex(ix)).Version(ctx)
	require.NoError(t, err)
	_, err = client.New(urlB, client.WithIndex(ix), client.WithoutMinIndex()).Version(ctx)
	require.NoError(t, err)
	minIdx, _ := b.seen()
	require.Equal(t, []string{"42", ""}, minIdx)
	require.Equal(t, uint64(42), ix.Load())
}

// A read answered 503 with Retry-After is retried a bounded number of
// times; a 503 without it, and a write, are not.
func TestClient_RetriesReadsOn503(t *testing.T) {
	ctx := context.Background()
	busy := answer{status: 503, retryAfter: "0", body: `{"error": "node has not caught up"}`}

	s, url := newScripted(t, busy, busy, answer{status: 200, body: versionBody})
	v, err := client.New(url).Version(ctx)
	require.NoError(t, err)
	require.Equal(t, "4.2.1", v)
	minIdx, _ := s.seen()
	require.Len(t, minIdx, 3)

	s, url = newScripted(t, busy)
	_, err = client.New(url, client.WithRetries(2)).Version(ctx)
	var e *client.Error
	require.True(t, errors.As(err, &e), "%v", err)
	require.Equal(t, 503, e.Status)
	require.Contains(t, e.Message, "caught up")
	minIdx, _ = s.seen()
	require.Len(t, minIdx, 3, "one try and two retries")

	s, url = newScripted(t, answer{status: 503, body: `{"error": "down"}`})
	_, err = client.New(url).Version(ctx)
	require.Error(t, err)
	minIdx, _ = s.seen()
	require.Len(t, minIdx, 1, "no Retry-After: no retry")

	s, url = newScripted(t, busy)
	require.Error(t, client.New(url).ReturnRequest(ctx, 1))
	minIdx, _ = s.seen()
	require.Len(t, minIdx, 1, "writes are not retried")

	s, url = newScripted(t, busy)
	require.Error(t, client.New(url).Health(ctx))
	minIdx, _ = s.seen()
	require.Len(t, minIdx, 1, "health is not retried")
}

// WithStale asks reads for ?stale and sends no Min-Index.
func TestClient_WithStale(t *testing.T) {
	ctx := context.Background()
	s, url := newScripted(t, answer{status: 200, index: "3", body: `{"requests": []}`})
	c := client.New(url, client.WithStale())
	_, err := c.Requests(ctx, true)
	require.NoError(t, err)
	_, err = c.Requests(ctx, false)
	require.NoError(t, err)
	minIdx, queries := s.seen()
	require.Equal(t, []string{"", ""}, minIdx)
	require.Equal(t, []string{"include_closed=1&stale=", "stale="}, queries)
}
