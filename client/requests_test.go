package client_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/api"
	"github.com/mozpool/mozpool/client"
)

// requestJSON is a request as the server's create and details routes show
// it.
const requestJSON = `{"id": 17, "requested_device": "any", "assignee": "ci@builder", "expires": "2024-01-01T01:00:00",
	"environment": "any", "image": "b2g", "boot_config": "{\"b2gbase\": \"http://builds/b2g\"}",
	"assigned_device": "panda-0003", "url": "http://10.0.0.1:8010/api/request/17/"}`

var wantRequest = api.Request{
	ID: 17, RequestedDevice: "any", Assignee: "ci@builder", Expires: "2024-01-01T01:00:00",
	Environment: "any", Image: "b2g", BootConfig: `{"b2gbase": "http://builds/b2g"}`,
	AssignedDevice: "panda-0003", URL: "http://10.0.0.1:8010/api/request/17/",
}

func TestRequestMethods(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name     string
		call     func(c *client.Client) (any, error)
		status   int
		resp     string
		method   string
		path     string
		query    string
		wantBody string // JSON, compared semantically; "" means no body
		want     any
	}{
		{
			name: "create for any",
			call: func(c *client.Client) (any, error) {
				return c.CreateRequest(ctx, "any", client.RequestSpec{
					Assignee: "ci@builder", Duration: time.Hour, Image: "b2g",
					BootConfig: map[string]any{"b2gbase": "http://builds/b2g"},
				})
			},
			resp:   `{"request": ` + requestJSON + `}`,
			method: "POST", path: "/api/device/any/request/",
			wantBody: `{"assignee": "ci@builder", "duration": 3600, "image": "b2g", "environment": "any", "b2gbase": "http://builds/b2g"}`,
			want:     wantRequest,
		},
		{
			name: "create for a named device",
			call: func(c *client.Client) (any, error) {
				return c.CreateRequest(ctx, "panda-0003", client.RequestSpec{
					Assignee: "me", Duration: 90*time.Second + 900*time.Millisecond, Image: "android", Environment: "prod",
				})
			},
			resp:   `{"request": ` + requestJSON + `}`,
			method: "POST", path: "/api/device/panda-0003/request/",
			wantBody: `{"assignee": "me", "duration": 90, "image": "android", "environment": "prod"}`,
			want:     wantRequest,
		},
		{
			name:   "details",
			call:   func(c *client.Client) (any, error) { return c.Request(ctx, 17) },
			resp:   requestJSON,
			method: "GET", path: "/api/request/17/details/",
			want: wantRequest,
		},
		{
			name:   "status",
			call:   func(c *client.Client) (any, error) { return c.RequestStatus(ctx, 17) },
			resp:   `{"state": "pending", "log": [{"id": 3, "timestamp": "2024-01-01T00:00:05", "source": "statemachine", "message": "entering state pending"}]}`,
			method: "GET", path: "/api/request/17/status/",
			want: api.RequestStatus{State: "pending", Log: []api.LogEntry{
				{ID: 3, Timestamp: "2024-01-01T00:00:05", Source: "statemachine", Message: "entering state pending"},
			}},
		},
		{
			name:   "log",
			call:   func(c *client.Client) (any, error) { return c.RequestLog(ctx, 17) },
			resp:   `{"log": [{"id": 1, "timestamp": "2024-01-01T00:00:00", "source": "statemachine", "message": "entering state new"}]}`,
			method: "GET", path: "/api/request/17/log/",
			want: []api.LogEntry{{ID: 1, Timestamp: "2024-01-01T00:00:00", Source: "statemachine", Message: "entering state new"}},
		},
		{
			name: "open requests",
			call: func(c *client.Client) (any, error) { return c.Requests(ctx, false) },
			resp: `{"requests": [{"id": 17, "imaging_server": "mobile-imaging-001", "assignee": "ci@builder",
				"boot_config": "{}", "state": "ready", "expires": "2024-01-01T01:00:00", "requested_device": "any",
				"environment": "any", "assigned_device": "panda-0003", "device_state": "busy"}]}`,
			method: "GET", path: "/api/request/list/",
			want: []api.RequestSummary{{
				ID: 17, ImagingServer: "mobile-imaging-001", Assignee: "ci@builder", BootConfig: "{}", State: "ready",
				Expires: "2024-01-01T01:00:00", RequestedDevice: "any", Environment: "any",
				AssignedDevice: "panda-0003", DeviceState: "busy",
			}},
		},
		{
			name:   "all requests",
			call:   func(c *client.Client) (any, error) { return c.Requests(ctx, true) },
			resp:   `{"requests": []}`,
			method: "GET", path: "/api/request/list/", query: "include_closed=1",
			want: []api.RequestSummary{},
		},
		{
			name: "create with queue fields",
			call: func(c *client.Client) (any, error) {
				p := 5
				return c.CreateRequest(ctx, "any", client.RequestSpec{
					Assignee: "ci", Duration: time.Hour, Image: "android", Priority: &p, Group: "release",
					HardwareType: "panda", HardwareModel: "ES", Tags: map[string]string{"cpu": "armv7"},
					MaxWait: 2 * time.Minute, NoWait: true,
				})
			},
			resp:   `{"request": ` + requestJSON + `}`,
			method: "POST", path: "/api/device/any/request/",
			wantBody: `{"assignee": "ci", "duration": 3600, "image": "android", "environment": "any", "priority": 5,
				"group": "release", "hardware_type": "panda", "hardware_model": "ES", "tags": {"cpu": "armv7"},
				"max_wait": 120, "wait": false}`,
			want: wantRequest,
		},
		{
			name: "blocking status",
			call: func(c *client.Client) (any, error) {
				st, _, err := c.WaitRequestStatus(ctx, 17, 42, 10*time.Second)
				return st, err
			},
			resp:   `{"state": "finding_device", "log": [], "queue_position": 2, "queue_length": 5, "eta": "2024-01-01T00:10:00"}`,
			method: "GET", path: "/api/request/17/status/", query: "index=42&wait=10s",
			want: api.RequestStatus{State: "finding_device", Log: []api.LogEntry{},
				QueueInfo: api.QueueInfo{QueuePosition: 2, QueueLength: 5, ETA: "2024-01-01T00:10:00"}},
		},
		{
			name:   "queue",
			call:   func(c *client.Client) (any, error) { return c.Queue(ctx, url.Values{"group": {"release"}}) },
			resp:   `{"queue": [{"id": 17, "assignee": "ci", "group": "release", "priority": 0, "requested_device": "any", "environment": "any", "image": "b2g", "queued_at": "2024-01-01T00:00:00", "queue_position": 1, "queue_length": 1}], "index": 9}`,
			method: "GET", path: "/api/queue/", query: "group=release",
			want: api.QueueReply{Index: 9, Queue: []api.QueueEntry{{ID: 17, Assignee: "ci", Group: "release", RequestedDevice: "any",
				Environment: "any", Image: "b2g", QueuedAt: "2024-01-01T00:00:00", QueuePosition: 1, QueueLength: 1}}},
		},
		{
			name:   "renew",
			call:   func(c *client.Client) (any, error) { return nil, c.RenewRequest(ctx, 17, 2*time.Hour) },
			status: http.StatusNoContent,
			method: "POST", path: "/api/request/17/renew/",
			wantBody: `{"duration": 7200}`,
		},
		{
			name:   "return",
			call:   func(c *client.Client) (any, error) { return nil, c.ReturnRequest(ctx, 17) },
			status: http.StatusNoContent,
			method: "POST", path: "/api/request/17/return/",
			wantBody: `{}`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status := tc.status
			if status == 0 {
				status = http.StatusOK
			}
			f, c := newFake(t, status, tc.resp)
			got, err := tc.call(c)
			require.NoError(t, err)
			if tc.want != nil {
				require.Equal(t, tc.want, got)
			}
			r := f.last(t)
			require.Equal(t, tc.method, r.Method)
			require.Equal(t, tc.path, r.Path)
			require.Equal(t, tc.query, r.Query)
			if tc.wantBody == "" {
				require.Empty(t, r.Body)
			} else {
				require.JSONEq(t, tc.wantBody, r.Body)
				require.Equal(t, "application/json", r.Header.Get("Content-Type"))
			}
		})
	}
}

func TestCreateRequestErrors(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name    string
		status  int
		body    string
		wantMsg string // "" when the body is not an error object
	}{
		{"missing boot config key", http.StatusBadRequest, `{"error": "missing boot config key \"b2gbase\""}`, `missing boot config key "b2gbase"`},
		{"unknown image", http.StatusNotFound, `{"error": "unknown image: \"nope\""}`, `unknown image: "nope"`},
		{"closed at once", http.StatusConflict, `{"request": ` + requestJSON + `}`, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, c := newFake(t, tc.status, tc.body)
			_, err := c.CreateRequest(ctx, "any", client.RequestSpec{Assignee: "me", Duration: time.Hour, Image: "b2g"})
			var e *client.Error
			require.True(t, errors.As(err, &e), "error %v is not a *client.Error", err)
			require.Equal(t, tc.status, e.Status)
			if tc.wantMsg != "" {
				require.Equal(t, tc.wantMsg, e.Message)
			}
		})
	}
}

func TestCreateRequestBootConfigClash(t *testing.T) {
	f, c := newFake(t, http.StatusOK, `{}`)
	_, err := c.CreateRequest(context.Background(), "any", client.RequestSpec{
		Assignee: "me", Duration: time.Hour, Image: "b2g", BootConfig: map[string]any{"image": "x"},
	})
	require.ErrorIs(t, err, client.ErrBootConfigKey)
	f.mu.Lock()
	defer f.mu.Unlock()
	require.Empty(t, f.reqs, "nothing is sent")
}

func TestCreateRequestIdempotencyKey(t *testing.T) {
	f, c := newFake(t, http.StatusOK, `{"request": `+requestJSON+`}`)
	ctx := client.WithIdempotencyKey(context.Background(), "ci-build-42")
	_, err := c.CreateRequest(ctx, "any", client.RequestSpec{Assignee: "me", Duration: time.Hour, Image: "android"})
	require.NoError(t, err)
	require.Equal(t, "ci-build-42", f.last(t).Header.Get(api.HeaderIdempotencyKey))
}

func TestDevicePathEscapingInCreate(t *testing.T) {
	f, c := newFake(t, http.StatusOK, `{"request": `+requestJSON+`}`)
	_, err := c.CreateRequest(context.Background(), "a b", client.RequestSpec{Assignee: "me", Duration: time.Hour, Image: "android"})
	require.NoError(t, err)
	require.Equal(t, "/api/device/a%20b/request/", f.last(t).RawPath)
}
