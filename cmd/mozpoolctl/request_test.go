package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/api"
	"github.com/mozpool/mozpool/lifeguard"
	"github.com/mozpool/mozpool/requests"
)

func testRequest(device string) api.Request {
	return api.Request{
		ID: 17, RequestedDevice: "any", Assignee: "ci@builder", Expires: "2024-01-01T01:00:00",
		Environment: "any", Image: "b2g", BootConfig: `{"b2gbase": "http://builds/b2g"}`,
		AssignedDevice: device, URL: "http://10.0.0.1:8010/api/request/17/",
	}
}

// entering is the state machine's log line of a request entering state.
func entering(state requests.State) string { return "entering state " + string(state) }

func testLog(msgs ...string) []api.LogEntry {
	out := []api.LogEntry{}
	for i, m := range msgs {
		out = append(out, api.LogEntry{ID: int64(i + 1), Timestamp: fmt.Sprintf("2024-01-01T00:00:%02d", i), Source: "statemachine", Message: m})
	}
	return out
}

func TestRequestCreate(t *testing.T) {
	f := newFakeAPI(t)
	f.on("POST /api/device/any/request/", ok(map[string]any{"request": testRequest("panda-0003")}))

	r := runCLI(t, f, "request", "any", "--image", "b2g", "--boot-config", "b2gbase=http://builds/b2g",
		"--boot-config", "extra=1", "--env", "prod", "--duration", "600", "--assignee", "ci@builder")
	require.Equal(t, exitOK, r.code)
	require.Equal(t, "request:  17\ndevice:   panda-0003\nurl:      http://10.0.0.1:8010/api/request/17/\n", r.stdout)
	require.Empty(t, r.stderr)
	got := f.lastCall()
	require.Equal(t, "POST", got.Method)
	require.Equal(t, "/api/device/any/request/", got.Path)
	require.JSONEq(t, `{"assignee": "ci@builder", "duration": 600, "image": "b2g", "environment": "prod",
		"b2gbase": "http://builds/b2g", "extra": "1"}`, got.Body)

	t.Run("defaults", func(t *testing.T) {
		f.on("POST /api/device/panda-0003/request/", ok(map[string]any{"request": testRequest("")}))
		t.Setenv("USER", "alice")
		r := runCLI(t, f, "request", "panda-0003", "--image", "android")
		require.Equal(t, exitOK, r.code)
		require.Contains(t, r.stdout, "device:   -\n")
		var body map[string]any
		require.NoError(t, json.Unmarshal([]byte(f.lastCall().Body), &body))
		require.Equal(t, 3600.0, body["duration"])
		require.Equal(t, "any", body["environment"])
		require.True(t, strings.HasPrefix(body["assignee"].(string), "alice@"), "assignee %v", body["assignee"])
	})

	t.Run("json", func(t *testing.T) {
		r := runCLI(t, f, "--json", "request", "any", "--image", "b2g", "--boot-config", "b2gbase=x")
		require.Equal(t, exitOK, r.code)
		var got api.Request
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &got))
		require.Equal(t, testRequest("panda-0003"), got)
	})

	t.Run("server refuses", func(t *testing.T) {
		f.on("POST /api/device/nope/request/", apiError(http.StatusNotFound, `unknown device: "nope"`))
		r := runCLI(t, f, "request", "nope", "--image", "b2g")
		require.Equal(t, exitFailure, r.code)
		require.Equal(t, "mozpoolctl: request nope: unknown device: \"nope\" (HTTP 404)\n", r.stderr)
	})
}

// waitScript makes the fake API walk a request through states: the n-th
// status poll answers states[min(n, len-1)]; the device is assigned from
// the second poll on.
func waitScript(t *testing.T, f *fakeAPI, states []requests.State, devStates []lifeguard.State, log []api.LogEntry) {
	t.Helper()
	var polls atomic.Int32
	f.on("POST /api/device/any/request/", ok(map[string]any{"request": testRequest("")}))
	f.handle("GET /api/request/17/status/", func([]byte) reply {
		n := int(polls.Add(1)) - 1
		return ok(api.StatusReply{State: string(states[min(n, len(states)-1)]), Log: log})
	})
	f.handle("GET /api/request/17/details/", func([]byte) reply {
		if polls.Load() < 2 {
			return ok(testRequest(""))
		}
		return ok(testRequest("panda-0003"))
	})
	f.handle("GET /api/device/panda-0003/state/", func([]byte) reply {
		n := int(polls.Load()) - 2
		return ok(map[string]string{"state": string(devStates[max(0, min(n, len(devStates)-1))])})
	})
}

func TestRequestWaitReady(t *testing.T) {
	f := newFakeAPI(t)
	waitScript(t, f,
		[]requests.State{requests.StateFindingDevice, requests.StatePending, requests.StatePending, requests.StatePending, requests.StateReady},
		[]lifeguard.State{lifeguard.StatePXEPowerCycling, lifeguard.StateB2GDownloading, lifeguard.StateB2GDownloading, lifeguard.StateReady},
		testLog(entering(requests.StateNew)))

	r := runCLI(t, f, "request", "any", "--image", "b2g", "--boot-config", "b2gbase=x", "--wait", "--interval", "1ms")
	require.Equal(t, exitOK, r.code)
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	// Not a terminal: one line per change, the elapsed time at the end.
	var shown []string
	for _, l := range lines[3 : len(lines)-1] {
		i := strings.LastIndex(l, ", ")
		require.Positive(t, i, "progress line %q", l)
		_, err := time.ParseDuration(l[i+2:])
		require.NoError(t, err, "elapsed time in %q", l)
		shown = append(shown, l[:i])
	}
	require.Equal(t, []string{
		"request 17: finding_device, no device yet",
		"request 17: pending, device panda-0003 (pxe_power_cycling)",
		"request 17: pending, device panda-0003 (b2g_downloading)",
		"request 17: ready, device panda-0003 (ready)",
	}, shown)
	require.Equal(t, "request 17 is ready: device panda-0003", lines[len(lines)-1])
	require.Empty(t, r.stderr)
}

func TestRequestWaitFailure(t *testing.T) {
	for _, final := range []requests.State{requests.StateFailedDeviceNotFound, requests.StateClosed} {
		t.Run(string(final), func(t *testing.T) {
			f := newFakeAPI(t)
			msgs := []string{entering(requests.StateNew)}
			for i := 0; i < 12; i++ {
				msgs = append(msgs, "no device found")
			}
			msgs = append(msgs, entering(final))
			waitScript(t, f, []requests.State{requests.StateFindingDevice, final}, []lifeguard.State{lifeguard.StateReady}, testLog(msgs...))

			r := runCLI(t, f, "request", "any", "--image", "b2g", "--wait", "--interval", "1ms")
			require.Equal(t, exitFailure, r.code)
			require.Contains(t, r.stdout, "request 17: finding_device, no device yet")
			require.Contains(t, r.stderr, "request 17 ended in "+string(final)+"; its last log lines:\n")
			require.Contains(t, r.stderr, "statemachine  "+entering(final)+"\n")
			require.Equal(t, defaultLogLines, strings.Count(r.stderr, "  statemachine  "), "the last 10 lines")
			require.True(t, strings.HasSuffix(r.stderr, "mozpoolctl: request 17 ended in "+string(final)+"\n"), r.stderr)
		})
	}
}

func TestRequestWaitThroughElection(t *testing.T) {
	f := newFakeAPI(t)
	var polls atomic.Int32
	f.on("POST /api/device/any/request/", ok(map[string]any{"request": testRequest("panda-0003")}))
	f.handle("GET /api/request/17/status/", func([]byte) reply {
		if polls.Add(1) < 3 {
			return apiError(http.StatusServiceUnavailable, "no cluster leader")
		}
		return ok(api.StatusReply{State: string(requests.StateReady), Log: []api.LogEntry{}})
	})
	f.on("GET /api/request/17/details/", ok(testRequest("panda-0003")))
	f.on("GET /api/device/panda-0003/state/", ok(map[string]string{"state": string(lifeguard.StateReady)}))

	r := runCLI(t, f, "--json", "request", "any", "--image", "b2g", "--wait", "--interval", "1ms")
	require.Equal(t, exitOK, r.code)
	// --json: stdout holds only the final details; progress is on stderr.
	var got api.Request
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &got))
	require.Equal(t, testRequest("panda-0003"), got)
	require.Contains(t, r.stderr, "request 17: ready, device panda-0003 (ready)")
}

func TestRequestWaitServerError(t *testing.T) {
	f := newFakeAPI(t)
	f.on("POST /api/device/any/request/", ok(map[string]any{"request": testRequest("")}))
	f.on("GET /api/request/17/status/", apiError(http.StatusNotFound, "unknown request: 17"))
	r := runCLI(t, f, "request", "any", "--image", "b2g", "--wait", "--interval", "1ms")
	require.Equal(t, exitFailure, r.code)
	require.Equal(t, "mozpoolctl: request 17: unknown request: 17 (HTTP 404)\n", r.stderr)
}

func st(s requests.State) api.RequestStatus { return api.RequestStatus{State: string(s)} }

func TestProgressOnTerminal(t *testing.T) {
	var buf bytes.Buffer
	p := newProgress(&buf, true)
	queued := api.RequestStatus{State: string(requests.StateFindingDevice)}
	queued.QueuePosition, queued.QueueLength, queued.ETA = 3, 12, "2024-03-01T12:30:00"
	p.show(17, queued, "", "", 1500*time.Millisecond)
	p.show(17, st(requests.StatePending), "panda-0003", string(lifeguard.StateB2GDownloading), 3*time.Second)
	p.show(17, st(requests.StateReady), "panda-0003", string(lifeguard.StateReady), 4*time.Second)
	p.done()
	p.done()
	first := "request 17: finding_device, position 3 of 12, eta 2024-03-01T12:30:00, no device yet, 2s"
	second := "request 17: pending, device panda-0003 (b2g_downloading), 3s"
	third := "request 17: ready, device panda-0003 (ready), 4s"
	require.Equal(t, "\r"+first+"\r"+second+strings.Repeat(" ", len(first)-len(second))+
		"\r"+third+strings.Repeat(" ", len(second)-len(third))+"\n", buf.String())
}

func TestProgressRepeatsNothingOffTerminal(t *testing.T) {
	var buf bytes.Buffer
	p := newProgress(&buf, false)
	pending := st(requests.StatePending)
	p.show(17, pending, "panda-0003", string(lifeguard.StateB2GDownloading), time.Second)
	p.show(17, pending, "panda-0003", string(lifeguard.StateB2GDownloading), 2*time.Second)
	p.show(17, pending, "panda-0003", string(lifeguard.StateB2GExtracting), 3*time.Second)
	p.done()
	require.Equal(t, "request 17: pending, device panda-0003 (b2g_downloading), 1s\n"+
		"request 17: pending, device panda-0003 (b2g_extracting), 3s\n", buf.String())
}

func TestRequestRenewReturn(t *testing.T) {
	f := newFakeAPI(t)
	f.on("POST /api/request/17/renew/", reply{http.StatusNoContent, nil})
	f.on("POST /api/request/17/return/", reply{http.StatusNoContent, nil})
	f.on("GET /api/request/17/details/", ok(testRequest("panda-0003")))

	r := runCLI(t, f, "request", "renew", "17", "7200")
	require.Equal(t, exitOK, r.code)
	require.Equal(t, "renewed request 17: expires 2024-01-01T01:00:00 UTC\n", r.stdout)
	var renew call
	f.mu.Lock()
	for _, c := range f.calls {
		if c.Path == "/api/request/17/renew/" {
			renew = c
		}
	}
	f.mu.Unlock()
	require.JSONEq(t, `{"duration": 7200}`, renew.Body)

	r = runCLI(t, f, "request", "return", "17")
	require.Equal(t, exitOK, r.code)
	require.Equal(t, "returned request 17\n", r.stdout)
	require.Equal(t, "/api/request/17/return/", f.lastCall().Path)
	require.Equal(t, "POST", f.lastCall().Method)

	f.on("POST /api/request/99/return/", apiError(http.StatusNotFound, "unknown request: 99"))
	r = runCLI(t, f, "request", "return", "99")
	require.Equal(t, exitFailure, r.code)
	require.Equal(t, "mozpoolctl: return request 99: unknown request: 99 (HTTP 404)\n", r.stderr)
}

func TestRequestList(t *testing.T) {
	f := newFakeAPI(t)
	open := []api.RequestSummary{
		{ID: 17, ImagingServer: "mobile-imaging-001", Assignee: "ci@builder", State: string(requests.StateReady), Expires: "2024-01-01T01:00:00",
			RequestedDevice: "any", Environment: "any", AssignedDevice: "panda-0003", DeviceState: string(lifeguard.StateReady)},
		{ID: 18, ImagingServer: "mobile-imaging-002", Assignee: "bob@laptop", State: string(requests.StateFindingDevice), Expires: "2024-01-01T02:00:00",
			RequestedDevice: "any", Environment: "any"},
	}
	f.on("GET /api/request/list/", ok(map[string]any{"requests": open}))
	closed := append(open, api.RequestSummary{ID: 5, State: string(requests.StateClosed), Expires: "2023-12-31T00:00:00", Image: "android"})
	f.on("GET /api/request/list/?include_closed=1", ok(map[string]any{"requests": closed}))
	f.on("GET /api/request/17/details/", ok(testRequest("panda-0003")))
	r18 := testRequest("")
	r18.ID, r18.Image = 18, "android"
	f.on("GET /api/request/18/details/", ok(r18))

	r := runCLI(t, f, "request", "list")
	require.Equal(t, exitOK, r.code)
	lines := strings.Split(r.stdout, "\n")
	require.Equal(t, []string{"ID", "STATE", "DEVICE", "DEVICE", "STATE", "ASSIGNEE", "IMAGE", "EXPIRES"}, strings.Fields(lines[0]))
	require.Equal(t, []string{"17", string(requests.StateReady), "panda-0003", string(lifeguard.StateReady), "ci@builder", "b2g", "2024-01-01T01:00:00"}, strings.Fields(lines[1]))
	require.Equal(t, []string{"18", string(requests.StateFindingDevice), "-", "-", "bob@laptop", "android", "2024-01-01T02:00:00"}, strings.Fields(lines[2]))
	require.Equal(t, strings.Index(lines[0], "IMAGE"), strings.Index(lines[1], "b2g"))

	r = runCLI(t, f, "request", "list", "--all")
	require.Equal(t, exitOK, r.code)
	require.Contains(t, r.stdout, "\n5 ")
	require.Equal(t, []string{"5", string(requests.StateClosed), "-", "-", "-", "android", "2023-12-31T00:00:00"}, strings.Fields(strings.Split(r.stdout, "\n")[3]))

	r = runCLI(t, f, "--json", "request", "list")
	require.Equal(t, exitOK, r.code)
	var got []api.RequestSummary
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &got))
	require.Equal(t, "b2g", got[0].Image)
}

func TestRequestShow(t *testing.T) {
	f := newFakeAPI(t)
	f.on("GET /api/request/17/details/", ok(testRequest("panda-0003")))
	f.on("GET /api/request/17/status/", ok(api.StatusReply{State: string(requests.StateReady),
		Log: testLog(entering(requests.StateNew), entering(requests.StateFindingDevice), entering(requests.StatePending), entering(requests.StateReady))}))

	r := runCLI(t, f, "request", "show", "17", "--lines", "2")
	require.Equal(t, exitOK, r.code)
	require.Equal(t, `id:                17
state:             ready
requested device:  any
assigned device:   panda-0003
assignee:          ci@builder
image:             b2g
boot config:       {"b2gbase": "http://builds/b2g"}
environment:       any
expires:           2024-01-01T01:00:00 UTC
url:               http://10.0.0.1:8010/api/request/17/
log:
  2024-01-01T00:00:02  statemachine  entering state pending
  2024-01-01T00:00:03  statemachine  entering state ready
`, r.stdout)

	r = runCLI(t, f, "request", "show", "17", "--json")
	require.Equal(t, exitOK, r.code)
	var got map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &got))
	require.Equal(t, string(requests.StateReady), got["state"])
	require.Equal(t, "panda-0003", got["assigned_device"])
	require.Len(t, got["log"], 4)
}

func TestRequestUsage(t *testing.T) {
	cases := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"no device", []string{"request", "--image", "b2g"}, "missing DEVICE"},
		{"no image", []string{"request", "any"}, "missing --image"},
		{"bad boot config", []string{"request", "any", "--image", "b2g", "--boot-config", "b2gbase"}, `"b2gbase" is not KEY=VALUE`},
		{"negative duration", []string{"request", "any", "--image", "b2g", "--duration", "-1"}, "--duration must not be negative"},
		{"renew without seconds", []string{"request", "renew", "17"}, "missing SECONDS"},
		{"renew bad id", []string{"request", "renew", "x", "60"}, `request id "x" is not a positive integer`},
		{"renew bad seconds", []string{"request", "renew", "17", "soon"}, `SECONDS "soon" is not a non-negative integer`},
		{"return without id", []string{"request", "return"}, "missing ID"},
		{"show bad id", []string{"request", "show", "0"}, `request id "0" is not a positive integer`},
		{"list extra", []string{"request", "list", "x"}, `unexpected argument "x"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, nil, tc.args...)
			require.Equal(t, exitUsage, r.code)
			require.Empty(t, r.stdout)
			require.Contains(t, r.stderr, tc.wantErr)
			require.Contains(t, r.stderr, "usage: mozpoolctl request")
		})
	}
}
