package client

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"
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
}

// Request is a request as its details (and its creation) show it.
type Request struct {
	ID              int64  `json:"id"`
	RequestedDevice string `json:"requested_device"`
	Assignee        string `json:"assignee"`
	// Expires is the expiry time in the wire format (naive ISO-8601,
	// UTC).
	Expires     string `json:"expires"`
	Environment string `json:"environment"`
	Image       string `json:"image"`
	// BootConfig is the JSON string of the image's boot-config keys.
	BootConfig string `json:"boot_config"`
	// AssignedDevice is the claimed device, "" while there is none.
	AssignedDevice string `json:"assigned_device"`
	// URL is the request's absolute URL, ending in "/"; status/,
	// details/, renew/ and return/ are relative to it.
	URL string `json:"url"`
}

// RequestStatus is a request's state and its newest log lines (at most
// 100, oldest first).
type RequestStatus struct {
	State string     `json:"state"`
	Log   []LogEntry `json:"log"`
}

// RequestSummary is one row of the request list.
type RequestSummary struct {
	ID              int64  `json:"id"`
	ImagingServer   string `json:"imaging_server"`
	Assignee        string `json:"assignee"`
	BootConfig      string `json:"boot_config"`
	State           string `json:"state"`
	Expires         string `json:"expires"`
	RequestedDevice string `json:"requested_device"`
	Environment     string `json:"environment"`
	// AssignedDevice and DeviceState are "" when no device is claimed.
	AssignedDevice string `json:"assigned_device"`
	DeviceState    string `json:"device_state"`
	// Image is filled only by servers that add it to the list (the
	// original's list has no image key); Request has it in any case.
	Image string `json:"image,omitempty"`
}

func requestPath(id int64, op string) string {
	return "/api/request/" + strconv.FormatInt(id, 10) + "/" + op + "/"
}

// CreateRequest asks for a device: device is a device name or "any". The
// server answers 400 for a missing or invalid field or boot-config key and
// 404 for an unknown image or device (an *Error). A request that is closed
// at once is answered 409, also an *Error. Use WithIdempotencyKey to make
// a retried creation return the first request.
func (c *Client) CreateRequest(ctx context.Context, device string, spec RequestSpec) (Request, error) {
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
	for k, v := range spec.BootConfig {
		if _, taken := body[k]; taken {
			return Request{}, fmt.Errorf("%w: %q", ErrBootConfigKey, k)
		}
		body[k] = v
	}
	var out struct {
		Request Request `json:"request"`
	}
	err := c.post(ctx, devicePath(device, "request"), body, &out)
	return out.Request, err
}

// Request returns a request's details.
func (c *Client) Request(ctx context.Context, id int64) (Request, error) {
	var out Request
	err := c.get(ctx, requestPath(id, "details"), nil, &out)
	return out, err
}

// RequestStatus returns a request's state and its newest log lines.
func (c *Client) RequestStatus(ctx context.Context, id int64) (RequestStatus, error) {
	var out RequestStatus
	err := c.get(ctx, requestPath(id, "status"), nil, &out)
	return out, err
}

// RequestLog returns a request's whole log, oldest first (empty for an
// unknown id, as the original).
func (c *Client) RequestLog(ctx context.Context, id int64) ([]LogEntry, error) {
	var out struct {
		Log []LogEntry `json:"log"`
	}
	err := c.get(ctx, requestPath(id, "log"), nil, &out)
	return out.Log, err
}

// Requests lists the open requests (failed ones included); includeClosed
// adds the closed ones.
func (c *Client) Requests(ctx context.Context, includeClosed bool) ([]RequestSummary, error) {
	var q url.Values
	if includeClosed {
		q = url.Values{"include_closed": {"1"}}
	}
	var out struct {
		Requests []RequestSummary `json:"requests"`
	}
	err := c.get(ctx, "/api/request/list/", q, &out)
	return out.Requests, err
}

// RenewRequest sets the request to expire d from now (whole seconds). It
// works in any state and does not reopen a closed request.
func (c *Client) RenewRequest(ctx context.Context, id int64, d time.Duration) error {
	return c.post(ctx, requestPath(id, "renew"), map[string]int64{"duration": int64(d / time.Second)}, nil)
}

// ReturnRequest closes the request, releasing its device (204; also when
// it is already closed or failed).
func (c *Client) ReturnRequest(ctx context.Context, id int64) error {
	return c.post(ctx, requestPath(id, "return"), struct{}{}, nil)
}
