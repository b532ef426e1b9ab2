package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/api"
	"github.com/mozpool/mozpool/client"
)

// seen is one request as the fake server received it.
type seen struct {
	Method, Path, RawPath, Query, Body string
	Header                             http.Header
}

// fakeServer answers every request with status and body and records it.
type fakeServer struct {
	mu     sync.Mutex
	reqs   []seen
	status int
	body   string
}

func (f *fakeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.reqs = append(f.reqs, seen{r.Method, r.URL.Path, r.URL.EscapedPath(), r.URL.RawQuery, string(b), r.Header.Clone()})
	status, body := f.status, f.body
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	io.WriteString(w, body)
}

func (f *fakeServer) last(t *testing.T) seen {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	require.NotEmpty(t, f.reqs, "no request reached the server")
	return f.reqs[len(f.reqs)-1]
}

func newFake(t *testing.T, status int, body string, opts ...client.Option) (*fakeServer, *client.Client) {
	t.Helper()
	f := &fakeServer{status: status, body: body}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, client.New(srv.URL+"/", opts...)
}

func strp(s string) *string { return &s }
func boolp(b bool) *bool    { return &b }

func TestMethods(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name     string
		call     func(c *client.Client) (any, error)
		resp     string
		method   string
		path     string
		query    string
		wantBody string // JSON, compared semantically; "" means no body
		want     any
	}{
		{
			name:   "version",
			call:   func(c *client.Client) (any, error) { return c.Version(ctx) },
			resp:   `{"version": "4.2.1"}`,
			method: "GET", path: "/api/version/",
			want: "4.2.1",
		},
		{
			name:   "devices",
			call:   func(c *client.Client) (any, error) { return c.Devices(ctx) },
			resp:   `{"devices": ["panda-0001", "panda-0002"]}`,
			method: "GET", path: "/api/device/list/",
			want: []string{"panda-0001", "panda-0002"},
		},
		{
			name: "device details list",
			call: func(c *client.Client) (any, error) { return c.DeviceDetails(ctx) },
			resp: `{"devices": [{"id": 1, "name": "panda-0001", "fqdn": "panda-0001.lab", "inventory_id": 1,
				"mac_address": "00163e000001", "imaging_server": "mobile-imaging-001",
				"relay_info": "relay-1.lab:bank1:relay1", "state": "free", "comments": null,
				"image": "b2g", "boot_config": null, "environment": "prod", "request_id": 7}]}`,
			method: "GET", path: "/api/device/list/", query: "details=1",
			want: []api.Device{{
				ID: 1, Name: "panda-0001", FQDN: "panda-0001.lab", InventoryID: 1,
				MAC: "00163e000001", ImagingServer: "mobile-imaging-001",
				RelayInfo: "relay-1.lab:bank1:relay1", State: "free",
				Image: strp("b2g"), Environment: strp("prod"), RequestID: func() *int64 { v := int64(7); return &v }(),
			}},
		},
		{
			name: "device",
			call: func(c *client.Client) (any, error) { return c.Device(ctx, "panda-0001") },
			resp: `{"device": {"id": 1, "name": "panda-0001", "state": "new", "comments": "flaky",
				"hardware_type": "panda/ES Rev B2", "state_deadline": "2024-01-01T00:00:00Z",
				"generation": 3, "next_image": "android", "next_boot_config": "{}"}}`,
			method: "GET", path: "/api/device/panda-0001/details/",
			want: api.DeviceDetails{
				Device:       api.Device{ID: 1, Name: "panda-0001", State: "new", Comments: strp("flaky")},
				HardwareType: "panda/ES Rev B2", StateDeadline: strp("2024-01-01T00:00:00Z"),
				Generation: 3, NextImage: strp("android"), NextBootConfig: strp("{}"),
			},
		},
		{
			name:   "device state",
			call:   func(c *client.Client) (any, error) { return c.DeviceState(ctx, "panda-0001") },
			resp:   `{"state": "self_test"}`,
			method: "GET", path: "/api/device/panda-0001/state/",
			want: "self_test",
		},
		{
			name:   "device log",
			call:   func(c *client.Client) (any, error) { return c.DeviceLog(ctx, "panda-0001", 2) },
			resp:   `{"log": [{"id": 4, "timestamp": "2024-01-01T00:00:00Z", "source": "inventory", "message": "registered"}]}`,
			method: "GET", path: "/api/device/panda-0001/log/", query: "limit=2",
			want: []api.LogEntry{{ID: 4, Timestamp: "2024-01-01T00:00:00Z", Source: "inventory", Message: "registered"}},
		},
		{
			name:   "device log without limit",
			call:   func(c *client.Client) (any, error) { return c.DeviceLog(ctx, "panda-0001", 0) },
			resp:   `{"log": []}`,
			method: "GET", path: "/api/device/panda-0001/log/",
			want: []api.LogEntry{},
		},
		{
			name:   "set comments",
			call:   func(c *client.Client) (any, error) { return nil, c.SetComments(ctx, "panda-0001", "bad sd card") },
			resp:   `null`,
			method: "POST", path: "/api/device/panda-0001/set-comments/",
			wantBody: `{"comments": "bad sd card"}`,
		},
		{
			name:   "set environment",
			call:   func(c *client.Client) (any, error) { return nil, c.SetEnvironment(ctx, "panda-0001", "staging") },
			resp:   `null`,
			method: "POST", path: "/api/device/panda-0001/set-environment/",
			wantBody: `{"environment": "staging"}`,
		},
		{
			name:   "images",
			call:   func(c *client.Client) (any, error) { return c.Images(ctx, false) },
			resp:   `{"images": [{"id": 1, "name": "b2g", "boot_config_keys": ["b2gbase"], "can_reuse": false, "hidden": false, "has_sut_agent": true}]}`,
			method: "GET", path: "/api/image/list/",
			want: []api.Image{{ID: 1, ImageSpec: api.ImageSpec{Name: "b2g", BootConfigKeys: []string{"b2gbase"}, HasSUTAgent: true}}},
		},
		{
			name:   "all images",
			call:   func(c *client.Client) (any, error) { return c.Images(ctx, true) },
			resp:   `{"images": []}`,
			method: "GET", path: "/api/image/list/", query: "all=1",
			want: []api.Image{},
		},
		{
			name: "upsert image",
			call: func(c *client.Client) (any, error) {
				return c.UpsertImage(ctx, api.ImageSpec{Name: "android", CanReuse: true, HasSUTAgent: true})
			},
			resp:   `{"image": {"id": 2, "name": "android", "boot_config_keys": [], "can_reuse": true, "hidden": false, "has_sut_agent": true}}`,
			method: "POST", path: "/api/image/",
			wantBody: `{"name": "android", "boot_config_keys": [], "can_reuse": true, "hidden": false, "has_sut_agent": true}`,
			want:     api.Image{ID: 2, ImageSpec: api.ImageSpec{Name: "android", BootConfigKeys: []string{}, CanReuse: true, HasSUTAgent: true}},
		},
		{
			name:   "pxe configs",
			call:   func(c *client.Client) (any, error) { return c.PXEConfigs(ctx, true) },
			resp:   `{"pxe_configs": ["android-pxe", "b2g-pxe"]}`,
			method: "GET", path: "/api/bmm/pxe_config/list/", query: "active_only=1",
			want: []string{"android-pxe", "b2g-pxe"},
		},
		{
			name:   "pxe config",
			call:   func(c *client.Client) (any, error) { return c.PXEConfig(ctx, "b2g-pxe") },
			resp:   `{"details": {"name": "b2g-pxe", "description": "B2G", "contents": "default linux", "active": true}}`,
			method: "GET", path: "/api/bmm/pxe_config/b2g-pxe/details/",
			want: api.PXEConfig{Name: "b2g-pxe", Description: "B2G", Contents: "default linux", Active: true},
		},
		{
			name: "add pxe config",
			call: func(c *client.Client) (any, error) {
				return c.AddPXEConfig(ctx, api.PXEConfig{Name: "x", Description: "d", Contents: "c"})
			},
			resp:   `{"details": {"name": "x", "description": "d", "contents": "c", "active": false}}`,
			method: "POST", path: "/api/bmm/pxe_config/",
			wantBody: `{"name": "x", "description": "d", "contents": "c", "active": false}`,
			want:     api.PXEConfig{Name: "x", Description: "d", Contents: "c"},
		},
		{
			name: "update pxe config",
			call: func(c *client.Client) (any, error) {
				return c.UpdatePXEConfig(ctx, "x", api.PXEConfigUpdate{Contents: strp("new"), Active: boolp(true)})
			},
			resp:   `{"details": {"name": "x", "description": "d", "contents": "new", "active": true}}`,
			method: "POST", path: "/api/bmm/pxe_config/x/update/",
			wantBody: `{"contents": "new", "active": true}`,
			want:     api.PXEConfig{Name: "x", Description: "d", Contents: "new", Active: true},
		},
		{
			name: "set image pxe config",
			call: func(c *client.Client) (any, error) {
				return nil, c.SetImagePXEConfig(ctx, "b2g", "panda", "ES Rev B2", "b2g-pxe")
			},
			resp:   `{}`,
			method: "POST", path: "/api/bmm/image_pxe_config/",
			wantBody: `{"image": "b2g", "hardware_type": "panda", "hardware_model": "ES Rev B2", "pxe_config": "b2g-pxe"}`,
		},
		{
			name: "sync inventory",
			call: func(c *client.Client) (any, error) {
				inv := api.Inventory{ImagingServers: []api.InventoryServer{{Name: "mobile-imaging-001", Rack: "rack1"}}}
				return c.SyncInventory(ctx, inv, true, false)
			},
			resp: `{"diff": {"changes": [{"op": "add", "kind": "device", "name": "panda-0001"}], "device_changes": 1, "limit": 5},
				"applied": false, "would_refuse": false}`,
			method: "POST", path: "/api/inventory/sync/",
			wantBody: `{"inventory": {"imaging_servers": [{"name": "mobile-imaging-001", "rack": "rack1"}],
				"hardware_types": null, "images": null, "pxe_configs": null, "image_pxe_configs": null, "devices": null},
				"dry_run": true, "ship_it": false}`,
			want: api.SyncResult{Diff: api.InventoryDiff{
				Changes:       []api.Change{{Op: "add", Kind: "device", Name: "panda-0001"}},
				DeviceChanges: 1, Limit: 5,
			}, WouldRefuse: boolp(false)},
		},
		{
			name: "cluster status",
			call: func(c *client.Client) (any, error) { return c.ClusterStatus(ctx) },
			resp: `{"node": {"id": "n1", "name": "mobile-imaging-001", "raft_addr": "a:1", "http_addr": "http://a:2"},
				"state": "Leader", "term": 3, "commit_index": 10, "applied_index": 9, "failure_tolerance": 1,
				"servers": [{"id": "n1", "suffrage": "voter", "leader": true, "healthy": true}],
				"devices_by_state": {"free": 2}, "devices_by_rack": {"rack1": {"free": 2}}}`,
			method: "GET", path: "/api/cluster/status/",
			want: api.ClusterStatus{
				Status: api.Status{
					Node:  api.Identity{ID: "n1", Name: "mobile-imaging-001", RaftAddr: "a:1", HTTPAddr: "http://a:2"},
					State: "Leader", Term: 3, CommitIndex: 10, AppliedIndex: 9, FailureTolerance: 1,
					Servers: []api.ServerStatus{{ID: "n1", Suffrage: "voter", Leader: true, Healthy: true}},
				},
				DevicesByState: map[string]int{"free": 2},
				DevicesByRack:  map[string]map[string]int{"rack1": {"free": 2}},
			},
		},
		{
			name:   "health",
			call:   func(c *client.Client) (any, error) { return nil, c.Health(ctx) },
			resp:   `{"ok": true}`,
			method: "GET", path: "/api/cluster/health",
		},
		{
			name:   "self",
			call:   func(c *client.Client) (any, error) { return c.Self(ctx) },
			resp:   `{"id": "n2", "name": "mobile-imaging-002", "rack": "rack2", "raft_addr": "b:1", "http_addr": "http://b:2"}`,
			method: "GET", path: "/api/cluster/self/",
			want: api.Identity{ID: "n2", Name: "mobile-imaging-002", Rack: "rack2", RaftAddr: "b:1", HTTPAddr: "http://b:2"},
		},
		{
			name: "join",
			call: func(c *client.Client) (any, error) {
				return c.Join(ctx, api.Identity{ID: "n2", Name: "mobile-imaging-002", RaftAddr: "b:1", HTTPAddr: "http://b:2"})
			},
			resp:   `{"result": {"action": "added", "suffrage": "voter"}}`,
			method: "POST", path: "/api/cluster/join/",
			wantBody: `{"id": "n2", "name": "mobile-imaging-002", "raft_addr": "b:1", "http_addr": "http://b:2"}`,
			want:     api.JoinResult{Action: "added", Suffrage: "voter"},
		},
		{
			name:   "remove",
			call:   func(c *client.Client) (any, error) { return nil, c.Remove(ctx, "n2") },
			resp:   `{}`,
			method: "POST", path: "/api/cluster/remove/",
			wantBody: `{"id": "n2"}`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, c := newFake(t, http.StatusOK, tc.resp, client.WithToken("sekrit"))
			got, err := tc.call(c)
			require.NoError(t, err)
			if tc.want != nil {
				require.Equal(t, tc.want, got)
			}
			r := f.last(t)
			require.Equal(t, tc.method, r.Method)
			require.Equal(t, tc.path, r.Path)
			require.Equal(t, tc.query, r.Query)
			require.Equal(t, "sekrit", r.Header.Get(api.HeaderToken))
			if tc.wantBody == "" {
				require.Empty(t, r.Body)
			} else {
				require.JSONEq(t, tc.wantBody, r.Body)
				require.Equal(t, "application/json", r.Header.Get("Content-Type"))
			}
		})
	}
}

func TestErrorMapping(t *testing.T) {
	cases := []struct {
		name   string
		status int
		body   string
		want   client.Error
	}{
		{"json error", http.StatusNotFound, `{"error": "unknown device: \"nope\""}`, client.Error{Status: 404, Message: `unknown device: "nope"`}},
		{"health 503", http.StatusServiceUnavailable, `{"ok": false, "error": "no cluster leader"}`, client.Error{Status: 503, Message: "no cluster leader"}},
		{"plain text", http.StatusBadGateway, "upstream down\n", client.Error{Status: 502, Message: "upstream down"}},
		{"empty body", http.StatusInternalServerError, "", client.Error{Status: 500}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, c := newFake(t, tc.status, tc.body)
			_, err := c.DeviceState(context.Background(), "nope")
			var e *client.Error
			require.True(t, errors.As(err, &e), "error %v is not a *client.Error", err)
			require.Equal(t, tc.want, *e)
			require.Contains(t, err.Error(), "HTTP")
		})
	}
}

func TestErrorText(t *testing.T) {
	require.Equal(t, "boom (HTTP 409)", (&client.Error{Status: 409, Message: "boom"}).Error())
	require.Equal(t, "internal server error (HTTP 500)", (&client.Error{Status: 500}).Error())
}

func TestNoTokenHeaderWithoutToken(t *testing.T) {
	f, c := newFake(t, http.StatusOK, `{"version": "x"}`)
	_, err := c.Version(context.Background())
	require.NoError(t, err)
	_, sent := f.last(t).Header[api.HeaderToken]
	require.False(t, sent, "token header sent without a token")
}

func TestIdempotencyKey(t *testing.T) {
	f, c := newFake(t, http.StatusOK, `null`)
	ctx := client.WithIdempotencyKey(context.Background(), "k-1")
	require.NoError(t, c.SetComments(ctx, "panda-0001", "x"))
	require.Equal(t, "k-1", f.last(t).Header.Get(api.HeaderIdempotencyKey))

	// Reads never carry it.
	_, err := c.DeviceState(ctx, "panda-0001")
	require.NoError(t, err)
	require.Empty(t, f.last(t).Header.Get(api.HeaderIdempotencyKey))
}

func TestPathEscaping(t *testing.T) {
	f, c := newFake(t, http.StatusOK, `{"state": "x"}`)
	_, err := c.DeviceState(context.Background(), "a/b")
	require.NoError(t, err)
	require.Equal(t, "/api/device/a%2Fb/state/", f.last(t).RawPath)
}

func TestBadJSONResponse(t *testing.T) {
	_, c := newFake(t, http.StatusOK, `{"version": 3}`)
	_, err := c.Version(context.Background())
	require.ErrorContains(t, err, "decode response")
}

func TestTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	// Close waits for the handler, which returns once release is closed or
	// the client has gone away.
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	c := client.New(srv.URL, client.WithTimeout(50*time.Millisecond))
	_, err := c.Version(context.Background())
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestNewWithoutScheme(t *testing.T) {
	f := &fakeServer{status: http.StatusOK, body: `{"version": "v"}`}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	c := client.New(strings.TrimPrefix(srv.URL, "http://"), client.WithHTTPClient(srv.Client()))
	require.Equal(t, srv.URL, c.BaseURL())
	v, err := c.Version(context.Background())
	require.NoError(t, err)
	require.Equal(t, "v", v)
}

// TestRequestBodiesAreJSON guards against a nil inventory list being sent as
// something the server cannot decode.
func TestRequestBodiesAreJSON(t *testing.T) {
	f, c := newFake(t, http.StatusOK, `{"diff": {"changes": [], "device_changes": 0, "limit": 5}, "applied": true}`)
	res, err := c.SyncInventory(context.Background(), api.Inventory{}, false, true)
	require.NoError(t, err)
	require.True(t, res.Applied)
	var body map[string]any
	require.NoError(t, json.Unmarshal([]byte(f.last(t).Body), &body))
	require.Equal(t, true, body["ship_it"])
}
