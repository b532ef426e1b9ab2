package main

import (
	"encoding/json"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/api"
)

func TestDevicePleaseAndState(t *testing.T) {
	f := newFakeAPI(t)
	f.on("POST /api/device/panda-0001/event/please_power_cycle/", ok(struct{}{}))
	f.on("POST /api/device/panda-0001/event/please_image/", ok(struct{}{}))
	f.on("POST /api/device/panda-0001/state-change/failed_pxe_booting/to/ready/", ok(struct{}{}))
	f.on("POST /api/device/panda-0001/state-change/ready/to/locked_out/",
		apiError(http.StatusConflict, "conflict: device panda-0001 is in state failed_pxe_booting, not ready"))

	r := runCLI(t, f, "device", "please", "panda-0001", "power_cycle")
	require.Equal(t, exitOK, r.code)
	require.Equal(t, "sent please_power_cycle to panda-0001\n", r.stdout)
	require.JSONEq(t, `{}`, f.lastCall().Body)

	r = runCLI(t, f, "--json", "device", "please", "panda-0001", "please_image", "--image", "b2g", "--boot-config", `{"b2gbase": "http://b"}`)
	require.Equal(t, exitOK, r.code)
	require.JSONEq(t, `{"device": "panda-0001", "event": "please_image"}`, r.stdout)
	require.JSONEq(t, `{"image": "b2g", "boot_config": "{\"b2gbase\": \"http://b\"}"}`, f.lastCall().Body)

	r = runCLI(t, f, "device", "please", "panda-0001", "image")
	require.Equal(t, exitUsage, r.code, "please_image needs --image")
	r = runCLI(t, f, "device", "please", "panda-0001", "image", "--image", "b2g", "--boot-config", "nope")
	require.Equal(t, exitUsage, r.code)
	r = runCLI(t, f, "device", "please", "panda-0009", "self_test")
	require.Equal(t, exitFailure, r.code)

	r = runCLI(t, f, "device", "state", "panda-0001", "--from", "failed_pxe_booting", "--to", "ready")
	require.Equal(t, exitOK, r.code)
	require.Equal(t, "moved panda-0001 from failed_pxe_booting to ready\n", r.stdout)
	r = runCLI(t, f, "--json", "device", "state", "panda-0001", "--from", "ready", "--to", "locked_out")
	require.Equal(t, exitFailure, r.code)
	require.Contains(t, r.stderr, "is in state failed_pxe_booting, not ready")
	r = runCLI(t, f, "device", "state", "panda-0001", "--to", "ready")
	require.Equal(t, exitUsage, r.code)
}

func TestDeviceHardwareCommands(t *testing.T) {
	f := newFakeAPI(t)
	f.on("POST /api/device/panda-0001/power-cycle/", ok(struct{}{}))
	f.on("GET /api/device/panda-0001/power-off/", ok(struct{}{}))
	f.on("GET /api/device/panda-0001/ping/", ok(api.Success{Success: true}))
	f.on("GET /api/device/panda-0002/ping/", ok(api.Success{Success: false}))
	f.on("POST /api/device/panda-0003/power-cycle/", apiError(http.StatusConflict, "device has no relay_info: no power control"))

	r := runCLI(t, f, "device", "power-cycle", "panda-0001")
	require.Equal(t, exitOK, r.code)
	require.Equal(t, "power cycle of panda-0001 started\n", r.stdout)
	r = runCLI(t, f, "--json", "device", "power-off", "panda-0001")
	require.Equal(t, exitOK, r.code)
	require.JSONEq(t, `{"device": "panda-0001", "started": "power off"}`, r.stdout)
	r = runCLI(t, f, "device", "power-cycle", "panda-0003")
	require.Equal(t, exitFailure, r.code)
	require.Contains(t, r.stderr, "no power control")

	r = runCLI(t, f, "device", "ping", "panda-0001")
	require.Equal(t, exitOK, r.code)
	require.Equal(t, "panda-0001 answers\n", r.stdout)
	r = runCLI(t, f, "device", "ping", "panda-0002")
	require.Equal(t, exitFailure, r.code, "no answer is a failure")
	require.Contains(t, r.stderr, "no answer")
	r = runCLI(t, f, "--json", "device", "ping", "panda-0002")
	require.Equal(t, exitFailure, r.code)
	require.JSONEq(t, `{"device": "panda-0002", "success": false}`, r.stdout)
}

func TestLogCommands(t *testing.T) {
	f := newFakeAPI(t)
	lines := []api.LogEntry{
		{ID: 1, Timestamp: "2024-05-01T10:00:00", Source: "statemachine", Message: "entering state ready"},
		{ID: 2, Timestamp: "2024-05-01T10:00:05", Source: "bmm", Message: "ping ok"},
	}
	f.on("GET /api/device/panda-0001/log/?limit=1", ok(api.LogReply{Log: lines[1:]}))
	f.on("GET /api/device/panda-0001/log/?limit=10", ok(api.LogReply{Log: lines}))

	r := runCLI(t, f, "device", "log", "panda-0001", "--lines", "1")
	require.Equal(t, exitOK, r.code)
	require.Equal(t, "2024-05-01T10:00:05  bmm           ping ok\n", r.stdout)
	r = runCLI(t, f, "--json", "device", "log", "panda-0001")
	require.Equal(t, exitOK, r.code)
	var got []api.LogEntry
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &got))
	require.Equal(t, lines, got)
	r = runCLI(t, f, "device", "log", "panda-0009")
	require.Equal(t, exitFailure, r.code)

	// request log --follow prints the lines as they come and stops once
	// the request is closed.
	var polls atomic.Int32
	f.handle("GET /api/request/7/log/", func([]byte) reply {
		n := int(polls.Add(1))
		return ok(api.LogReply{Log: lines[:min(n, 2)]})
	})
	var status atomic.Int32
	f.handle("GET /api/request/7/status/", func([]byte) reply {
		if status.Add(1) < 2 {
			return ok(api.StatusReply{State: "ready"})
		}
		return ok(api.StatusReply{State: "closed"})
	})
	r = runCLI(t, f, "request", "log", "7", "--follow")
	require.Equal(t, exitOK, r.code)
	require.Equal(t, ""+
		"2024-05-01T10:00:00  statemachine  entering state ready\n"+
		"2024-05-01T10:00:05  bmm           ping ok\n", r.stdout, "each line once")
	r = runCLI(t, f, "request", "log", "x")
	require.Equal(t, exitUsage, r.code)
}
