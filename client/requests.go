package client

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/mozpool/mozpool/api"
)

// ErrBootConfigKey is returned by CreateRequest when a boot-config key
// would overwrite one of the body's own keys (assignee, duration, image,
// environment): the original API puts boot-config keys at the top level of
// the body, so such a key cannot be sent.
var ErrBootConfigKey = errors.New("boot config key clashes with a request field")

// RequestSpec is what CreateRequest asks for.
type RequestSpec struct {
	// Assignee names who holds the device (mozpoolclient sends
	// "user-hostname"). Required by the server.
	Assignee string
	// Duration is the request's lifetime; it is sent in whole seconds.
	Duration time.Duration
	// Image is the image to install ("b2g", "android", ...). Required.
	Image string
	// Environment restricts the search to devices of that environment;
	// "" sends "any" (no restriction).
	Environment string
	// BootConfig holds one value per boot-config key of the image (b2g
	// needs "b2gbase"). Each key is sent at the top level of the body, as
	// the original clients do.
	BootConfig map[string]any
	// CallbackURL, if set, is POSTed a JSON notification when the request
	// becomes ready, fails or is closed.
	CallbackURL string

	// Queue fields, all optional (see docs/api.md). Priority nil and
	// MaxWait 0 leave the server's defaults; NoWait makes the request
	// fail at once when no suitable board is free.
	Priority      *int
	Group         string
	HardwareType  string
	HardwareModel string
	Tags          map[string]string
	MaxWait       time.Duration
	NoWait        bool
}

func requestPath(id int64, op string) string {
	return "/api/request/" + strconv.FormatInt(id, 10) + "/" + op + "/"
}

// CreateRequest asks for a device: device is a device name or "any". The
// server answers 400 for a missing or invalid field or boot-config key and
// 404 for an unknown image or device (an *Error). A request that is closed
// at once is answered 409, also an *Error. Use WithIdempotencyKey to make
// a retried creation return the first request.
func (c *Client) CreateRequest(ctx context.Context, device string, spec RequestSpec) (api.Request, error) {
	env := spec.Environment
	if env == "" {
		env = "any"
	}
	body := map[string]any{
		"assignee":    spec.Assignee,
		"duration":    int64(spec.Duration / time.Second),
		"image":       spec.Image,
		"environment": env,
	}
	if spec.CallbackURL != "" {
		body["callback_url"] = spec.CallbackURL
	}
	if spec.Priority != nil {
		body["priority"] = *spec.Priority
	}
	for k, v := range map[string]string{"group": spec.Group, "hardware_type": spec.HardwareType, "hardware_model": spec.HardwareModel} {
		if v != "" {
			body[k] = v
		}
	}
	if len(spec.Tags) > 0 {
		body["tags"] = spec.Tags
	}
	if spec.MaxWait > 0 {
		body["max_wait"] = int64(max(spec.MaxWait/time.Second, 1))
	}
	if spec.NoWait {
		body["wait"] = false
	}
	for k, v := range spec.BootConfig {
		if _, taken := body[k]; taken {
			return api.Request{}, fmt.Errorf("%w: %q", ErrBootConfigKey, k)
		}
		body[k] = v
	}
	var out api.RequestReply
	err := c.post(ctx, devicePath(device, "request"), body, &out)
	return out.Request, err
}

// Request returns a request's details.
func (c *Client) Request(ctx context.Context, id int64) (api.Request, error) {
	var out api.Request
	err := c.get(ctx, requestPath(id, "details"), nil, &out)
	return out, err
}

// RequestDetails returns a request's details with its queue information
// (position and ETA while it waits).
func (c *Client) RequestDetails(ctx context.Context, id int64) (api.RequestDetails, error) {
	var out api.RequestDetails
	err := c.get(ctx, requestPath(id, "details"), nil, &out)
	return out, err
}

// RequestStatus returns a request's state, its newest log lines and its
// queue information.
func (c *Client) RequestStatus(ctx context.Context, id int64) (api.RequestStatus, error) {
	var out api.RequestStatus
	err := c.get(ctx, requestPath(id, "status"), nil, &out)
	return out, err
}

// WaitRequestStatus is RequestStatus as a blocking query: the server
// answers when the request has changed after log index index (its state,
// its record, or its queue position), or after wait (at most 5 minutes;
// at most half the client's timeout). It returns the status and the index
// to pass to the next call. index 0 answers at once.
func (c *Client) WaitRequestStatus(ctx context.Context, id int64, index uint64, wait time.Duration) (api.RequestStatus, uint64, error) {
	if c.timeout > 0 && wait > c.timeout/2 {
		wait = c.timeout / 2
	}
	q := url.Values{"wait": {wait.String()}, "index": {strconv.FormatUint(index, 10)}}
	var out api.RequestStatus
	err := c.get(ctx, requestPath(id, "status"), q, &out)
	return out, c.LastIndex(), err
}

// Queue returns the waiting requests in service order (within each group
// of requests that compete for the same boards). filter may hold group,
// assignee, device, environment, image and hardware_type (exact matches).
func (c *Client) Queue(ctx context.Context, filter url.Values) (api.QueueReply, error) {
	var out api.QueueReply
	err := c.get(ctx, "/api/queue/", filter, &out)
	return out, err
}

// RequestLog returns a request's whole log, oldest first (empty for an
// unknown id, as the original).
func (c *Client) RequestLog(ctx context.Context, id int64) ([]api.LogEntry, error) {
	var out api.LogReply
	err := c.get(ctx, requestPath(id, "log"), nil, &out)
	return out.Log, err
}

// Requests lists the open requests (failed ones included); includeClosed
// adds the closed ones.
func (c *Client) Requests(ctx context.Context, includeClosed bool) ([]api.RequestSummary, error) {
	var q url.Values
	if includeClosed {
		q = url.Values{"include_closed": {"1"}}
	}
	var out api.RequestList
	err := c.get(ctx, "/api/request/list/", q, &out)
	return out.Requests, err
}

// RenewRequest sets the request to expire d from now (whole seconds). It
// works in any state and does not reopen a closed request.
func (c *Client) RenewRequest(ctx context.Context, id int64, d time.Duration) error {
	return c.post(ctx, requestPath(id, "renew"), api.Renew{Duration: int64(d / time.Second)}, nil)
}

// ReturnRequest closes the request, releasing its device (204; also when
// it is already closed or failed).
func (c *Client) ReturnRequest(ctx context.Context, id int64) error {
	return c.post(ctx, requestPath(id, "return"), struct{}{}, nil)
}

// SetGroupWeight sets a fair-share group's weight (needs the token): a
// group of weight w is served w times as often as one of weight 1 while
// both wait; 0 resets it to 1.
func (c *Client) SetGroupWeight(ctx context.Context, group string, weight int) error {
	return c.post(ctx, "/api/queue/weight/", api.QueueWeight{Group: group, Weight: weight}, nil)
}
