package main

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRackShow(t *testing.T) {
	f := newFakeAPI(t)
	f.on("GET /api/rack/list/", ok(map[string]any{"racks": []map[string]any{{
		"name": "rack1", "servers": []string{"mobile-imaging-001", "mobile-imaging-002"}, "owner": "mobile-imaging-002",
		"generation": 2, "devices": 40, "relay_boards": 2, "down": []string{"mobile-imaging-001"},
		"moved": "2026-01-02T03:04:05Z", "reason": "takeover",
	}}}))
	r := runCLI(t, f, "rack", "show")
	require.Equal(t, exitOK, r.code, r.stderr)
	for _, want := range []string{"rack1", "mobile-imaging-002", "mobile-imaging-001,mobile-imaging-002", "40", "takeover"} {
		require.Contains(t, r.stdout, want)
	}

	f.on("GET /api/rack/rack1/details/", ok(map[string]any{"name": "rack1", "owner": "mobile-imaging-002", "generation": 2}))
	r = runCLI(t, f, "rack", "show", "rack1")
	require.Equal(t, exitOK, r.code, r.stderr)
	require.Contains(t, r.stdout, "rack1")
}

func TestRackMove(t *testing.T) {
	f := newFakeAPI(t)
	f.on("POST /api/rack/rack1/move/", ok(map[string]any{"name": "rack1", "owner": "mobile-imaging-002", "generation": 3}))
	r := runCLI(t, f, "rack", "move", "rack1", "mobile-imaging-002")
	require.Equal(t, exitOK, r.code, r.stderr)
	require.JSONEq(t, `{"server": "mobile-imaging-002"}`, f.lastCall().Body)
	require.Equal(t, "rack rack1: owner mobile-imaging-002, generation 3\n", r.stdout)

	r = runCLI(t, f, "rack", "move", "rack1", "mobile-imaging-002", "--generation", "2")
	require.Equal(t, exitOK, r.code, r.stderr)
	require.JSONEq(t, `{"server": "mobile-imaging-002", "generation": 2}`, f.lastCall().Body)

	require.Equal(t, exitUsage, runCLI(t, f, "rack", "move", "rack1").code)
	f.on("POST /api/rack/rack9/move/", reply{http.StatusNotFound, map[string]any{"error": "unknown rack: \"rack9\""}})
	r = runCLI(t, f, "rack", "move", "rack9", "mobile-imaging-002")
	require.NotEqual(t, exitOK, r.code)
	require.Contains(t, r.stderr, "unknown rack")
}
