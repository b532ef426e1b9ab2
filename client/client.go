package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
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

// Client talks to one Mozpool node. It is safe for concurrent use.
type Client struct {
	base    string // scheme://host[:port][/prefix], no trailing slash
	token   string
	hc      *http.Client
	timeout time.Duration
}

// Option configures a Client.
type Option func(*Client)

// WithToken sets the cluster token, sent in the api.HeaderToken header.
func WithToken(token string) Option { return func(c *Client) { c.token = token } }

// WithHTTPClient replaces http.DefaultClient. The client is not modified.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithTimeout bounds each call (default 30s; zero or less: no bound beyond
// the caller's context).
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

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
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// BaseURL returns the node address the client talks to.
func (c *Client) BaseURL() string { return c.base }

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
func (c *Client) do(ctx context.Context, method, path string, q url.Values, in, out any) error {
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("%s %s: encode request: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set(api.HeaderToken, c.token)
	}
	if key, ok := ctx.Value(idemKey{}).(string); ok && key != "" && method != http.MethodGet {
		req.Header.Set(api.HeaderIdempotencyKey, key)
	}

	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return fmt.Errorf("%s %s: read response: %w", method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return errorFrom(resp.StatusCode, b)
	}
	if out == nil || len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: decode response: %w", method, path, err)
	}
	return nil
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
