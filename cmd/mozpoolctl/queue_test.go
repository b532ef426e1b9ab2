package main

import (
	"net/http"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestQueueList(t *testing.T) {
	f := newFakeAPI(t)
	f.on("GET /api/queue/", ok(map[string]any{"index": 9, "queue": []map[string]any{{
		"id": 41, "assignee": "ci", "group": "release", "priority": 10, "requested_device": "any",
		"environment": "b2g", "image": "android", "tags": map[string]string{"cpu": "armv7"},
		"queued_at": "2024-01-01T00:00:00", "queue_position": 1, "queue_length": 3, "eta": "2024-01-01T00:04:10",
	}}}))
	r := runCLI(t, f, "queue", "--group", "release")
	require.Equal(t, exitOK, r.code, r.stderr)
	require.Equal(t, "group=release", f.lastCall().Query)
	for _, want := range []string{"41", "1/3", "release", "cpu=armv7,env=b2g", "2024-01-01T00:04:10"} {
		require.Contains(t, r.stdout, want)
	}
}

func TestQueueWeight(t *testing.T) {
	f := newFakeAPI(t)
	f.on("POST /api/queue/weight/", reply{http.StatusNoContent, nil})
	r := runCLI(t, f, "queue", "weight", "release", "3")
	require.Equal(t, exitOK, r.code, r.stderr)
	require.JSONEq(t, `{"group": "release", "weight": 3}`, f.lastCall().Body)
	require.Equal(t, "group release: weight 3\n", r.stdout)
	require.Equal(t, exitUsage, runCLI(t, f, "queue", "weight", "release", "heavy").code)
}

// While the request waits in the queue, --wait shows its position and
// ETA and blocks on the server (status/?wait=&index=) instead of polling;
// once it has a device it follows the imaging.
func TestRequestWaitQueued(t *testing.T) {
	f := newFakeAPI(t)
	f.on("POST /api/device/any/request/", ok(map[string]any{"request": testRequest("")}))
	var mu sync.Mutex
	var statusCalls []string
	step := 0
	f.handle("GET /api/request/17/status/", func([]byte) reply {
		mu.Lock()
		defer mu.Unlock()
		statusCalls = append(statusCalls, f.calls[len(f.calls)-1].Query)
		step++
		switch {
		case step <= 2:
			return ok(map[string]any{"state": "finding_device", "log": []any{}, "queue_position": 3 - step, "queue_length": 4,
				"eta": "2024-01-01T00:10:00"})
		default:
			return ok(map[string]any{"state": "ready", "log": []any{}})
		}
	})
	f.handle("GET /api/request/17/details/", func([]byte) reply {
		mu.Lock()
		defer mu.Unlock()
		if step <= 2 {
			return ok(testRequest(""))
		}
		return ok(testRequest("panda-0003"))
	})
	f.on("GET /api/device/panda-0003/state/", ok(map[string]any{"state": "ready"}))
	r := runCLI(t, f, "request", "any", "--image", "b2g", "--boot-config", "b2gbase=x", "--wait", "--interval", "1ms")
	require.Equal(t, exitOK, r.code, r.stderr)
	require.Contains(t, r.stdout, "request 17: finding_device, position 2 of 4, eta 2024-01-01T00:10:00, no device yet")
	require.Contains(t, r.stdout, "request 17: finding_device, position 1 of 4, eta 2024-01-01T00:10:00, no device yet")
	require.Contains(t, r.stdout, "request 17 is ready: device panda-0003")
	mu.Lock()
	defer mu.Unlock()
	require.Empty(t, statusCalls[0], "the first read does not block")
	require.Contains(t, statusCalls[1], "wait=", "a queued request is followed with a blocking read")
}
