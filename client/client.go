package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mozpool/mozpool/api"
)

// DefaultTimeout bounds every call unless WithTimeout says otherwise.
const DefaultTimeout = 30 * time.Second

// maxResponse caps how much of a response body is read (a device list of
// 10,000 details is a few MB).
const maxResponse = 64 << 20

// Error is a non-2xx answer from the server. Message is the server's
// {"error": "..."} text, or the body (or status text) when there is none.
type Error struct {
	Status  int
	Message string
}

func (e *Error) Error() string {
	msg := e.Message
	if msg == "" {
		msg = strings.ToLower(http.StatusText(e.Status))
	}
	return fmt.Sprintf("%s (HTTP %d)", msg, e.Status)
}

// DefaultRetries is how many times a read answered 503 with Retry-After
// is retried unless WithRetries says otherwise.
const DefaultRetries = 3

// maxRetryAfter caps the pause a Retry-After header asks for.
const maxRetryAfter = 5 * time.Second

// Client talks to one Mozpool node. It is safe for concurrent use.
//
// It remembers the highest api.HeaderIndex it has seen and sends it as
// api.HeaderMinIndex on later calls, so that it never reads an older state
// than one it has seen or written, whichever node answers (share the
// memory between clients of different nodes with WithIndex). Reads answered
// 503 with Retry-After (a node catching up, an index not reached yet) are
// retried a few times.
type Client struct {
	base    string // scheme://host[:port][/prefix], no trailing slash
	token   string
	hc      *http.Client
	timeout time.Duration

	index      *Index
	noMinIndex bool
	stale      bool
	retries    int
}

// Index is the highest api.HeaderIndex seen by the clients that share it.
// It is safe for concurrent use.
type Index struct{ v atomic.Uint64 }

// Load returns the highest index seen.
func (ix *Index) Load() uint64 { return ix.v.Load() }

// Observe records an index; a lower one than already seen is ignored.
func (ix *Index) Observe(n uint64) {
	for {
		old := ix.v.Load()
		if n <= old || ix.v.CompareAndSwap(old, n) {
			return
		}
	}
}

// Option configures a Client.
type Option func(*Client)

// WithToken sets the API token (or the cluster token), sent as
// Authorization: Bearer and in the api.HeaderToken header.
func WithToken(token string) Option { return func(c *Client) { c.token = token } }

// WithHTTPClient replaces http.DefaultClient. The client is not modified.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithTimeout bounds each call (default 30s; zero or less: no bound beyond
// the caller's context).
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

// WithIndex makes the client remember the indexes it sees in ix, which
// other clients (of other nodes) may share: a client that wrote through one
// node then reads what it wrote through another.
func WithIndex(ix *Index) Option { return func(c *Client) { c.index = ix } }

// WithoutMinIndex stops the client from sending api.HeaderMinIndex: each
// node answers from whatever it has applied.
func WithoutMinIndex() Option { return func(c *Client) { c.noMinIndex = true } }

// WithStale makes every read ask for the node's local state as it is
// (api.QueryStale), even from a node that has not caught up since it
// started, and sends no api.HeaderMinIndex. For an operator looking at a
// node that does not serve.
func WithStale() Option { return func(c *Client) { c.stale, c.noMinIndex = true, true } }

// WithRetries sets how many times a read answered 503 with Retry-After is
// retried, pausing as the header says (at most 5s); 0 disables retries.
// Default: DefaultRetries.
func WithRetries(n int) Option { return func(c *Client) { c.retries = max(0, n) } }

// New returns a client for the node at baseURL (e.g. http://10.0.0.5:8010).
// A baseURL without a scheme is taken as http.
func New(baseURL string, opts ...Option) *Client {
	if !strings.Contains(baseURL, "://") {
		baseURL = "http://" + baseURL
	}
	c := &Client{
		base:    strings.TrimRight(baseURL, "/"),
		hc:      http.DefaultClient,
		timeout: DefaultTimeout,
		index:   &Index{},
		retries: DefaultRetries,
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// BaseURL returns the node address the client talks to.
func (c *Client) BaseURL() string { return c.base }

// LastIndex returns the highest api.HeaderIndex the client has seen (0
// before any answer carried one).
func (c *Client) LastIndex() uint64 { return c.index.Load() }

type idemKey struct{}

// WithIdempotencyKey returns a context whose writes carry key in the
// Idempotency-Key header: retrying a write with the same key returns the
// first result instead of applying it twice. A key is at most
// api.MaxIdempotencyKeyLen bytes.
func WithIdempotencyKey(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, idemKey{}, key)
}

// get and post are do with the method filled in.
func (c *Client) get(ctx context.Context, path string, q url.Values, out any) error {
	return c.do(ctx, http.MethodGet, path, q, nil, out)
}

func (c *Client) post(ctx context.Context, path string, in, out any) error {
	return c.do(ctx, http.MethodPost, path, nil, in, out)
}

// do sends one request. in, when non-nil, is sent as JSON; out, when
// non-nil, receives the decoded JSON answer. Non-2xx answers become *Error.
// A GET answered 503 with Retry-After is sent again, up to c.retries times.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, in, out any) error {
	return c.doRetry(ctx, method, path, q, in, out, c.retries)
}

func (c *Client) doRetry(ctx context.Context, method, path string, q url.Values, in, out any, retries int) error {
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	if c.stale && method == http.MethodGet {
		q2 := url.Values{}
		for k, v := range q {
			q2[k] = v
		}
		q2.Set(api.QueryStale, "")
		q = q2
	}
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var body []byte
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("%s %s: encode request: %w", method, path, err)
		}
		body = b
	}
	if method != http.MethodGet {
		retries = 0 // a write is retried by its caller, with an idempotency key
	}
	for attempt := 0; ; attempt++ {
		status, pause, b, err := c.once(ctx, method, u, in != nil, body)
		if err != nil {
			return err
		}
		if status == http.StatusServiceUnavailable && pause >= 0 && attempt < retries {
			t := time.NewTimer(pause)
			select {
			case <-ctx.Done():
				t.Stop()
				return errorFrom(status, b)
			case <-t.C:
			}
			continue
		}
		if status < 200 || status > 299 {
			return errorFrom(status, b)
		}
		if out == nil || len(bytes.TrimSpace(b)) == 0 {
			return nil
		}
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: decode response: %w", method, path, err)
		}
		return nil
	}
}

// once sends one attempt and reads the answer. pause is what its
// Retry-After asks for (capped), or -1 when it has none.
func (c *Client) once(ctx context.Context, method, u string, hasBody bool, body []byte) (status int, pause time.Duration, b []byte, err error) {
	var rd io.Reader
	if hasBody {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return 0, 0, nil, err
	}
	req.Header.Set("Accept", "application/json")
	if hasBody {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
		req.Header.Set(api.HeaderToken, c.token)
	}
	if key, ok := ctx.Value(idemKey{}).(string); ok && key != "" && method != http.MethodGet {
		req.Header.Set(api.HeaderIdempotencyKey, key)
	}
	if ix := c.index.Load(); ix > 0 && !c.noMinIndex {
		req.Header.Set(api.HeaderMinIndex, strconv.FormatUint(ix, 10))
	}

	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, 0, nil, err
	}
	defer resp.Body.Close()
	if ix, err := strconv.ParseUint(resp.Header.Get(api.HeaderIndex), 10, 64); err == nil {
		c.index.Observe(ix)
	}
	b, err = io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return 0, 0, nil, fmt.Errorf("%s %s: read response: %w", method, req.URL.Path, err)
	}
	return resp.StatusCode, retryAfter(resp.Header.Get("Retry-After")), b, nil
}

// retryAfter parses a Retry-After in seconds (capped at maxRetryAfter); -1
// when there is none or it is not a number of seconds.
func retryAfter(v string) time.Duration {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 0 {
		return -1
	}
	return min(time.Duration(n)*time.Second, maxRetryAfter)
}

// errorFrom builds an *Error from a non-2xx answer.
func errorFrom(status int, body []byte) *Error {
	var e api.Error
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		return &Error{Status: status, Message: e.Error}
	}
	msg := strings.TrimSpace(string(body))
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	return &Error{Status: status, Message: msg}
}
