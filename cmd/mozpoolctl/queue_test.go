package main

import (
	"net/http"
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
