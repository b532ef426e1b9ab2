package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/api"
	"github.com/mozpool/mozpool/lifeguard"
)

func TestUsage(t *testing.T) {
	cases := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string // in stdout
		wantErr  string // in stderr
	}{
		{"no command", nil, exitUsage, "", "usage: mozpoolctl"},
		{"help", []string{"help"}, exitOK, "pxe-config map IMAGE HWTYPE HWMODEL PXECONFIG", ""},
		{"dash h", []string{"-h"}, exitOK, "usage: mozpoolctl", ""},
		{"unknown command", []string{"frobnicate"}, exitUsage, "", `unknown command "frobnicate"`},
		{"unknown subcommand", []string{"pxe-config", "frob"}, exitUsage, "", `unknown command "pxe-config frob"`},
		{"group without subcommand", []string{"device"}, exitUsage, "", "device needs a subcommand"},
		{"unknown global flag", []string{"--frob", "status"}, exitUsage, "", "flag provided but not defined: -frob"},
		{"unknown command flag", []string{"status", "--frob"}, exitUsage, "", "usage: mozpoolctl status"},
		{"missing argument", []string{"remove"}, exitUsage, "", "missing ID"},
		{"extra argument", []string{"remove", "a", "b"}, exitUsage, "", `unexpected argument "b"`},
		{"missing map arguments", []string{"pxe-config", "map", "b2g", "panda"}, exitUsage, "", "missing HWMODEL PXECONFIG"},
		{"command help", []string{"inventory", "sync", "-h"}, exitOK, "-ship-it", ""},
		{"pxe add without contents", []string{"pxe-config", "add", "x"}, exitUsage, "", "missing --contents-file or --contents"},
		{"pxe add with both contents", []string{"pxe-config", "add", "x", "--contents", "a", "--contents-file", "f"}, exitUsage, "", "not both"},
		{"pxe modify nothing", []string{"pxe-config", "modify", "x"}, exitUsage, "", "nothing to modify"},
		{"pxe modify active and inactive", []string{"pxe-config", "modify", "x", "--active", "--inactive"}, exitUsage, "", "not both"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, nil, tc.args...)
			require.Equal(t, tc.wantCode, r.code)
			require.Contains(t, r.stdout, tc.wantOut)
			require.Contains(t, r.stderr, tc.wantErr)
		})
	}
}

func TestHelpListsEveryCommand(t *testing.T) {
	r := runCLI(t, nil, "help")
	require.Equal(t, exitOK, r.code)
	for _, c := range commands {
		require.Contains(t, r.stdout, c.name)
		for _, a := range c.aliases {
			require.Contains(t, r.stdout, a)
		}
	}
}

func TestServerFromEnvironment(t *testing.T) {
	f := newFakeAPI(t)
	f.on("GET /api/device/list/", ok(map[string][]string{"devices": {"panda-0001"}}))
	t.Setenv("MOZPOOL_SERVER", f.srv.URL)
	t.Setenv("MOZPOOL_TOKEN", "from-env")
	r := runCLI(t, nil, "device", "list")
	require.Equal(t, exitOK, r.code)
	require.Equal(t, "panda-0001\n", r.stdout)
	require.Equal(t, "from-env", f.lastCall().Token)
}

func TestServerErrorExitsOne(t *testing.T) {
	f := newFakeAPI(t)
	f.on("GET /api/device/nope/details/", apiError(http.StatusNotFound, `unknown device: "nope"`))
	r := runCLI(t, f, "device", "show", "nope")
	require.Equal(t, exitFailure, r.code)
	require.Equal(t, "mozpoolctl: device nope: unknown device: \"nope\" (HTTP 404)\n", r.stderr)
	require.Empty(t, r.stdout)
}

func TestUnreachableServerExitsOne(t *testing.T) {
	f := newFakeAPI(t)
	f.srv.Close()
	r := runCLI(t, f, "status")
	require.Equal(t, exitFailure, r.code)
	require.Contains(t, r.stderr, "mozpoolctl: ")
}

func int64p(v int64) *int64 { return &v }

func testStatus() api.ClusterStatus {
	leader := api.Identity{ID: "n1", Name: "mobile-imaging-001", Rack: "rack1", RaftAddr: "10.0.0.1:8300", HTTPAddr: "http://10.0.0.1:8010"}
	ready, newState := string(lifeguard.StateReady), string(lifeguard.StateNew)
	return api.ClusterStatus{
		Status: api.Status{
			Node: leader, State: "Leader", Leader: &leader,
			Term: 4, CommitIndex: 120, AppliedIndex: 119, LastLogIndex: 120,
			Servers: []api.ServerStatus{
				{ID: "n1", Name: "mobile-imaging-001", Rack: "rack1", Suffrage: "voter", RaftAddr: "10.0.0.1:8300", HTTPAddr: "http://10.0.0.1:8010", Leader: true, Healthy: true, Gossip: "alive"},
				{ID: "n2", Name: "mobile-imaging-002", Rack: "rack2", Suffrage: "voter", RaftAddr: "10.0.0.2:8300", HTTPAddr: "http://10.0.0.2:8010", Healthy: true, LastContactMS: int64p(12), Gossip: "alive"},
				{ID: "n3", Name: "mobile-imaging-003", Rack: "rack3", Suffrage: "nonvoter", RaftAddr: "10.0.0.3:8300", HTTPAddr: "http://10.0.0.3:8010", Healthy: false, LastContactMS: int64p(9000), Gossip: "suspect"},
			},
			FailureTolerance: 1,
		},
		DevicesByState: map[string]int{ready: 25, newState: 5},
		DevicesByRack:  map[string]map[string]int{"rack1": {ready: 10}, "rack2": {ready: 10}, "rack3": {ready: 5, newState: 5}},
	}
}

func TestStatus(t *testing.T) {
	f := newFakeAPI(t)
	f.on("GET /api/cluster/status/", ok(testStatus()))

	for _, name := range []string{"status", "members"} {
		t.Run(name, func(t *testing.T) {
			r := runCLI(t, f, name)
			require.Equal(t, exitOK, r.code)
			lines := strings.Split(r.stdout, "\n")
			require.Equal(t, []string{"ID", "NAME", "RACK", "SUFFRAGE", "RAFT", "HTTP", "LEADER", "HEALTHY", "LAST", "CONTACT"}, strings.Fields(lines[0]))
			require.Equal(t, []string{"n1", "mobile-imaging-001", "rack1", "voter", "10.0.0.1:8300", "http://10.0.0.1:8010", "*", "yes", "-"}, strings.Fields(lines[1]))
			require.Equal(t, []string{"n2", "mobile-imaging-002", "rack2", "voter", "10.0.0.2:8300", "http://10.0.0.2:8010", "yes", "12ms"}, strings.Fields(lines[2]))
			require.Equal(t, []string{"n3", "mobile-imaging-003", "rack3", "nonvoter", "10.0.0.3:8300", "http://10.0.0.3:8010", "no", "(suspect)", "9s"}, strings.Fields(lines[3]))
			// Columns line up: every header starts where its column does.
			require.Equal(t, strings.Index(lines[0], "LEADER"), strings.Index(lines[1], "*"))
			require.Contains(t, r.stdout, "leader:             n1 (mobile-imaging-001)\n")
			require.Contains(t, r.stdout, "term:               4\n")
			require.Contains(t, r.stdout, "commit index:       120\n")
			require.Contains(t, r.stdout, "applied index:      119\n")
			require.Contains(t, r.stdout, "failure tolerance:  1\n")
			require.Contains(t, r.stdout, "devices:            30 (new 5, ready 25)\n")
			require.Contains(t, r.stdout, "  rack3:            10 (new 5, ready 5)\n")
		})
	}

	t.Run("json", func(t *testing.T) {
		r := runCLI(t, f, "--json", "status")
		require.Equal(t, exitOK, r.code)
		var got api.ClusterStatus
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &got))
		require.Equal(t, testStatus(), got)
	})

	t.Run("json after the command", func(t *testing.T) {
		r := runCLI(t, f, "status", "--json")
		require.Equal(t, exitOK, r.code)
		require.True(t, json.Valid([]byte(r.stdout)))
	})
}

func TestJoin(t *testing.T) {
	node := newFakeAPI(t)
	node.on("GET /api/cluster/self/", ok(api.Identity{
		ID: "n2", Name: "mobile-imaging-002", Rack: "rack2", RaftAddr: "10.0.0.2:8300", HTTPAddr: "http://10.0.0.2:8010",
	}))

	leader := newFakeAPI(t)
	members := map[string]api.Identity{}
	leader.handle("POST /api/cluster/join/", func(body []byte) reply {
		var id api.Identity
		if err := json.Unmarshal(body, &id); err != nil || id.ID == "" || id.RaftAddr == "" || id.HTTPAddr == "" {
			return apiError(http.StatusBadRequest, "join needs id, raft address and http address")
		}
		action := "added"
		if members[id.ID] == id {
			action = "unchanged"
		}
		members[id.ID] = id
		return ok(map[string]api.JoinResult{"result": {Action: action, Suffrage: "voter"}})
	})

	r := runCLI(t, leader, "join", node.srv.URL)
	require.Equal(t, exitOK, r.code)
	require.Equal(t, "joined n2 (mobile-imaging-002) as voter: added\n", r.stdout)
	require.Equal(t, 1, node.callCount(), "the node is asked for its identity")
	got := leader.lastCall()
	require.Equal(t, "/api/cluster/join/", got.Path)
	require.Equal(t, "sekrit", got.Token)
	require.JSONEq(t, `{"id": "n2", "name": "mobile-imaging-002", "rack": "rack2", "raft_addr": "10.0.0.2:8300", "http_addr": "http://10.0.0.2:8010"}`, got.Body)

	r = runCLI(t, leader, "join", node.srv.URL)
	require.Equal(t, exitOK, r.code)
	require.Equal(t, "joined n2 (mobile-imaging-002) as voter: unchanged\n", r.stdout)

	t.Run("identity from flags", func(t *testing.T) {
		before := node.callCount()
		r := runCLI(t, leader, "join", "http://10.0.0.9:8010", "--id", "n9", "--raft", "10.0.0.9:8300", "--name", "mobile-imaging-009", "--rack", "rack9")
		require.Equal(t, exitOK, r.code)
		require.Equal(t, "joined n9 (mobile-imaging-009) as voter: added\n", r.stdout)
		require.Equal(t, before, node.callCount(), "no identity lookup")
		require.JSONEq(t, `{"id": "n9", "name": "mobile-imaging-009", "rack": "rack9", "raft_addr": "10.0.0.9:8300", "http_addr": "http://10.0.0.9:8010"}`, leader.lastCall().Body)
	})

	t.Run("override after lookup", func(t *testing.T) {
		r := runCLI(t, leader, "join", "--rack", "rack7", node.srv.URL)
		require.Equal(t, exitOK, r.code)
		require.Contains(t, leader.lastCall().Body, `"rack":"rack7"`)
	})

	t.Run("json", func(t *testing.T) {
		r := runCLI(t, leader, "--json", "join", node.srv.URL)
		require.Equal(t, exitOK, r.code)
		var got struct {
			Node   api.Identity   `json:"node"`
			Result api.JoinResult `json:"result"`
		}
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &got))
		require.Equal(t, "n2", got.Node.ID)
		require.Equal(t, "voter", got.Result.Suffrage)
	})

	t.Run("node unreachable", func(t *testing.T) {
		r := runCLI(t, leader, "join", "http://127.0.0.1:1")
		require.Equal(t, exitFailure, r.code)
		require.Contains(t, r.stderr, "mozpoolctl: read identity of http://127.0.0.1:1")
	})

	t.Run("refused", func(t *testing.T) {
		leader.on("POST /api/cluster/join/", apiError(http.StatusForbidden, "bad or missing cluster token"))
		r := runCLI(t, leader, "join", node.srv.URL)
		require.Equal(t, exitFailure, r.code)
		require.Equal(t, "mozpoolctl: join n2: bad or missing cluster token (HTTP 403)\n", r.stderr)
	})
}

func TestRemove(t *testing.T) {
	f := newFakeAPI(t)
	f.on("POST /api/cluster/remove/", ok(map[string]any{}))
	r := runCLI(t, f, "remove", "n3")
	require.Equal(t, exitOK, r.code)
	require.Equal(t, "removed n3\n", r.stdout)
	require.JSONEq(t, `{"id": "n3"}`, f.lastCall().Body)
	require.Equal(t, "sekrit", f.lastCall().Token)

	f.on("POST /api/cluster/remove/", apiError(http.StatusNotFound, "unknown node"))
	r = runCLI(t, f, "remove", "n3")
	require.Equal(t, exitFailure, r.code)
	require.Equal(t, "mozpoolctl: remove n3: unknown node (HTTP 404)\n", r.stderr)
}

// writeFile writes content to a file in a temporary directory.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	return p
}

func TestInventorySync(t *testing.T) {
	inv := writeFile(t, "lab.json", `{"imaging_servers": [{"name": "mobile-imaging-001", "rack": "rack1"}], "devices": []}`)
	diff := api.InventoryDiff{
		Changes: []api.Change{
			{Op: "add", Kind: "imaging_server", Name: "mobile-imaging-001"},
			{Op: "add", Kind: "device", Name: "panda-0001"},
			{Op: "update", Kind: "device", Name: "panda-0002", Fields: []string{"relay_info", "environment"}},
			{Op: "delete", Kind: "device", Name: "panda-0003"},
		},
		DeviceChanges: 3, Limit: 5,
	}
	f := newFakeAPI(t)
	var req struct {
		Inventory api.Inventory `json:"inventory"`
		DryRun    bool          `json:"dry_run"`
		ShipIt    bool          `json:"ship_it"`
	}
	f.handle("POST /api/inventory/sync/", func(body []byte) reply {
		require.NoError(t, json.Unmarshal(body, &req))
		return ok(api.SyncResult{Diff: diff, Applied: !req.DryRun})
	})
	wantDiff := "+ imaging_server mobile-imaging-001\n" +
		"+ device panda-0001\n" +
		"~ device panda-0002 (relay_info, environment)\n" +
		"- device panda-0003\n" +
		"3 device changes (limit 5)\n"

	t.Run("dry run", func(t *testing.T) {
		r := runCLI(t, f, "inventory", "sync", "--dry-run", inv)
		require.Equal(t, exitOK, r.code)
		require.Equal(t, wantDiff+"dry run: nothing changed\n", r.stdout)
		require.True(t, req.DryRun)
		require.False(t, req.ShipIt)
		require.Equal(t, []api.InventoryServer{{Name: "mobile-imaging-001", Rack: "rack1"}}, req.Inventory.ImagingServers)
		require.Equal(t, "sekrit", f.lastCall().Token)
	})

	t.Run("apply, flags after the file", func(t *testing.T) {
		r := runCLI(t, f, "inventory", "sync", inv, "--ship-it")
		require.Equal(t, exitOK, r.code)
		require.Equal(t, wantDiff+"applied\n", r.stdout)
		require.False(t, req.DryRun)
		require.True(t, req.ShipIt)
	})

	t.Run("json", func(t *testing.T) {
		r := runCLI(t, f, "--json", "inventory", "sync", inv)
		require.Equal(t, exitOK, r.code)
		var got api.SyncResult
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &got))
		require.Equal(t, api.SyncResult{Diff: diff, Applied: true}, got)
	})

	t.Run("dry run over the valve", func(t *testing.T) {
		g := newFakeAPI(t)
		refuse := true
		g.on("POST /api/inventory/sync/", ok(api.SyncResult{Diff: api.InventoryDiff{DeviceChanges: 30, Limit: 5}, WouldRefuse: &refuse}))
		r := runCLI(t, g, "inventory", "sync", "--dry-run", inv)
		require.Equal(t, exitOK, r.code)
		require.Contains(t, r.stdout, "30 device changes (limit 5)\n")
		require.Contains(t, r.stdout, "would be refused")
		require.Contains(t, r.stdout, "--ship-it")
	})

	t.Run("refused by the safety valve", func(t *testing.T) {
		g := newFakeAPI(t)
		g.on("POST /api/inventory/sync/", apiError(http.StatusConflict,
			"too many changes: 30 device changes exceed the safety limit of 5 (use ship-it to apply)"))
		r := runCLI(t, g, "inventory", "sync", inv)
		require.Equal(t, exitFailure, r.code)
		require.Empty(t, r.stdout)
		require.Contains(t, r.stderr, "mozpoolctl: inventory sync refused: too many changes: 30 device changes exceed the safety limit of 5")
		require.Contains(t, r.stderr, "(HTTP 409)")
		require.Contains(t, r.stderr, "rerun with --ship-it")
	})

	t.Run("server error", func(t *testing.T) {
		g := newFakeAPI(t)
		g.on("POST /api/inventory/sync/", apiError(http.StatusBadRequest, `invalid: device "panda-0001" needs a positive inventory_id`))
		r := runCLI(t, g, "inventory", "sync", inv)
		require.Equal(t, exitFailure, r.code)
		require.Equal(t, "mozpoolctl: inventory sync: invalid: device \"panda-0001\" needs a positive inventory_id (HTTP 400)\n", r.stderr)
	})
}

func TestInventorySyncBadFiles(t *testing.T) {
	f := newFakeAPI(t)
	cases := []struct {
		name    string
		path    string
		wantErr string
	}{
		{"missing file", filepath.Join(t.TempDir(), "nope.json"), "read inventory: open "},
		{"syntax error", writeFile(t, "bad.json", "{\n  \"devices\": [\n    {\"name\": \"x\",}\n  ]\n}\n"), "invalid JSON at line 3"},
		{"wrong type", writeFile(t, "type.json", `{"devices": [{"inventory_id": "one"}]}`), "invalid JSON at line 1"},
		{"unknown field", writeFile(t, "typo.json", `{"imaging_server": []}`), `unknown field "imaging_server"`},
		{"trailing data", writeFile(t, "trail.json", `{} {}`), "data after the top-level object"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, f, "inventory", "sync", tc.path)
			require.Equal(t, exitFailure, r.code)
			require.Contains(t, r.stderr, "mozpoolctl: ")
			require.Contains(t, r.stderr, tc.wantErr)
		})
	}
	require.Zero(t, f.callCount(), "a bad file never reaches the server")
}

func TestPXEConfig(t *testing.T) {
	f := newFakeAPI(t)
	configs := map[string]api.PXEConfig{}
	f.handle("POST /api/bmm/pxe_config/", func(body []byte) reply {
		var pc api.PXEConfig
		require.NoError(t, json.Unmarshal(body, &pc))
		if _, ok := configs[pc.Name]; ok {
			return apiError(http.StatusConflict, "already exists: pxe config "+pc.Name)
		}
		configs[pc.Name] = pc
		return ok(map[string]api.PXEConfig{"details": pc})
	})
	f.handle("POST /api/bmm/pxe_config/b2g-pxe/update/", func(body []byte) reply {
		var u api.PXEConfigUpdate
		require.NoError(t, json.Unmarshal(body, &u))
		pc := configs["b2g-pxe"]
		if u.Description != nil {
			pc.Description = *u.Description
		}
		if u.Contents != nil {
			pc.Contents = *u.Contents
		}
		if u.Active != nil {
			pc.Active = *u.Active
		}
		configs["b2g-pxe"] = pc
		return ok(map[string]api.PXEConfig{"details": pc})
	})
	f.handle("GET /api/bmm/pxe_config/b2g-pxe/details/", func([]byte) reply {
		return ok(map[string]api.PXEConfig{"details": configs["b2g-pxe"]})
	})
	f.on("GET /api/bmm/pxe_config/list/", ok(map[string][]string{"pxe_configs": {"android-pxe", "b2g-pxe"}}))
	f.on("GET /api/bmm/pxe_config/list/?active_only=1", ok(map[string][]string{"pxe_configs": {"b2g-pxe"}}))
	f.on("POST /api/bmm/image_pxe_config/", ok(map[string]any{}))

	contents := "default linux\nlabel linux\n  kernel http://%IPADDRESS%/kernel\n"
	file := writeFile(t, "b2g.pxe", contents)

	r := runCLI(t, f, "pxe-config", "add", "b2g-pxe", "--contents-file", file, "--description", "B2G", "--inactive")
	require.Equal(t, exitOK, r.code)
	require.Equal(t, "added pxe config b2g-pxe\n", r.stdout)
	require.Equal(t, api.PXEConfig{Name: "b2g-pxe", Description: "B2G", Contents: contents, Active: false}, configs["b2g-pxe"])

	r = runCLI(t, f, "pxe-config", "add", "b2g-pxe", "--contents", "x")
	require.Equal(t, exitFailure, r.code)
	require.Equal(t, "mozpoolctl: add pxe config b2g-pxe: already exists: pxe config b2g-pxe (HTTP 409)\n", r.stderr)

	r = runCLI(t, f, "pxe-config", "modify", "b2g-pxe", "--active", "--description", "")
	require.Equal(t, exitOK, r.code)
	require.Equal(t, "modified pxe config b2g-pxe\n", r.stdout)
	require.JSONEq(t, `{"description": "", "active": true}`, f.lastCall().Body, "only the given fields are sent")

	r = runCLI(t, f, "pxe-config", "show", "b2g-pxe")
	require.Equal(t, exitOK, r.code)
	require.Equal(t, "name:        b2g-pxe\ndescription: \nactive:      yes\ncontents:\n"+contents, r.stdout)

	r = runCLI(t, f, "--json", "pxe-config", "show", "b2g-pxe")
	require.Equal(t, exitOK, r.code)
	require.JSONEq(t, `{"name": "b2g-pxe", "description": "", "contents": `+mustJSON(t, contents)+`, "active": true}`, r.stdout)

	r = runCLI(t, f, "pxe-config", "list")
	require.Equal(t, exitOK, r.code)
	require.Equal(t, "android-pxe\nb2g-pxe\n", r.stdout)

	r = runCLI(t, f, "pxe-config", "list", "--active-only")
	require.Equal(t, exitOK, r.code)
	require.Equal(t, "b2g-pxe\n", r.stdout)

	r = runCLI(t, f, "pxe-config", "map", "b2g", "panda", "ES Rev B2", "b2g-pxe")
	require.Equal(t, exitOK, r.code)
	require.Equal(t, "mapped b2g on panda/ES Rev B2 to b2g-pxe\n", r.stdout)
	require.JSONEq(t, `{"image": "b2g", "hardware_type": "panda", "hardware_model": "ES Rev B2", "pxe_config": "b2g-pxe"}`, f.lastCall().Body)

	r = runCLI(t, f, "pxe-config", "map", "b2g", "panda", "ES Rev B2", "")
	require.Equal(t, exitOK, r.code)
	require.Equal(t, "unmapped b2g on panda/ES Rev B2\n", r.stdout)
	require.JSONEq(t, `{"image": "b2g", "hardware_type": "panda", "hardware_model": "ES Rev B2", "pxe_config": ""}`, f.lastCall().Body)

	r = runCLI(t, f, "pxe-config", "add", "x", "--contents-file", filepath.Join(t.TempDir(), "missing"))
	require.Equal(t, exitFailure, r.code)
	require.Contains(t, r.stderr, "mozpoolctl: read contents: ")
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

func TestImage(t *testing.T) {
	f := newFakeAPI(t)
	f.handle("POST /api/image/", func(body []byte) reply {
		var spec api.ImageSpec
		require.NoError(t, json.Unmarshal(body, &spec))
		return ok(api.ImageReply{Image: api.Image{ID: 3, ImageSpec: spec}})
	})
	images := []api.Image{
		{ID: 1, ImageSpec: api.ImageSpec{Name: "b2g", BootConfigKeys: []string{"b2gbase"}, HasSUTAgent: true}},
		{ID: 2, ImageSpec: api.ImageSpec{Name: "android", BootConfigKeys: []string{}, CanReuse: true, HasSUTAgent: true}},
	}
	hidden := api.Image{ID: 3, ImageSpec: api.ImageSpec{Name: "self-test", BootConfigKeys: []string{}, Hidden: true}}
	f.on("GET /api/image/list/", ok(api.Images{Images: images}))
	f.on("GET /api/image/list/?all=1", ok(api.Images{Images: append(images, hidden)}))

	r := runCLI(t, f, "image", "add", "b2g", "--boot-config-keys", "b2gbase, extra", "--has-sut-agent")
	require.Equal(t, exitOK, r.code)
	require.Equal(t, "saved image b2g (id 3)\n", r.stdout)
	require.JSONEq(t, `{"name": "b2g", "boot_config_keys": ["b2gbase", "extra"], "can_reuse": false, "hidden": false, "has_sut_agent": true}`, f.lastCall().Body)

	r = runCLI(t, f, "image", "add", "maintenance", "--hidden", "--can-reuse")
	require.Equal(t, exitOK, r.code)
	require.JSONEq(t, `{"name": "maintenance", "boot_config_keys": [], "can_reuse": true, "hidden": true, "has_sut_agent": false}`, f.lastCall().Body)

	r = runCLI(t, f, "image", "list")
	require.Equal(t, exitOK, r.code)
	require.Equal(t, ""+
		"ID  NAME     BOOT CONFIG KEYS  CAN REUSE  HIDDEN  SUT AGENT\n"+
		"1   b2g      b2gbase           no         no      yes\n"+
		"2   android  -                 yes        no      yes\n", r.stdout)

	r = runCLI(t, f, "image", "list", "--all")
	require.Equal(t, exitOK, r.code)
	require.Contains(t, r.stdout, "self-test")
	require.Equal(t, "all=1", f.lastCall().Query)

	r = runCLI(t, f, "--json", "image", "list")
	require.Equal(t, exitOK, r.code)
	var got []api.Image
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &got))
	require.Equal(t, images, got)
}

func TestDevice(t *testing.T) {
	f := newFakeAPI(t)
	prod := "prod"
	comments := "flaky sd card"
	devs := []api.Device{
		{ID: 1, Name: "panda-0001", FQDN: "panda-0001.lab", InventoryID: 1, MAC: "00163e000001", ImagingServer: "mobile-imaging-001",
			RelayInfo: "relay-1.lab:bank1:relay1", State: string(lifeguard.StateReady), Environment: &prod},
		{ID: 2, Name: "panda-0002", FQDN: "panda-0002.lab", InventoryID: 2, MAC: "00163e000002", ImagingServer: "mobile-imaging-001",
			RelayInfo: "relay-1.lab:bank1:relay2", State: string(lifeguard.StateSelfTestRunning), Comments: &comments, RequestID: int64p(7)},
	}
	f.on("GET /api/device/list/", ok(map[string][]string{"devices": {"panda-0001", "panda-0002"}}))
	f.on("GET /api/device/list/?details=1", ok(map[string][]api.Device{"devices": devs}))
	deadline := "2024-05-01T10:00:00Z"
	scored := devs[1]
	scored.HealthScore = 50
	f.on("GET /api/device/panda-0002/details/", ok(api.DeviceDetailsReply{Device: api.DeviceDetails{
		Device: scored, HardwareType: "panda/ES Rev B2", Generation: 4, StateDeadline: &deadline,
		History: []api.DeviceOutcome{{At: "2024-03-01T12:00:00", Op: "boot", Fail: "pxe_booting"}, {At: "2024-03-01T12:05:00", Op: "imaging"}},
	}}))
	f.on("POST /api/device/panda-0001/set-comments/", ok(nil))
	f.on("POST /api/device/panda-0001/set-environment/", ok(nil))

	r := runCLI(t, f, "device", "list")
	require.Equal(t, exitOK, r.code)
	require.Equal(t, "panda-0001\npanda-0002\n", r.stdout)

	r = runCLI(t, f, "--json", "device", "list")
	require.Equal(t, exitOK, r.code)
	require.JSONEq(t, `["panda-0001", "panda-0002"]`, r.stdout)

	r = runCLI(t, f, "device", "list", "--details")
	require.Equal(t, exitOK, r.code)
	require.Equal(t, ""+
		"NAME        STATE              IMAGE  ENVIRONMENT  IMAGING SERVER      RELAY                     REQUEST  COMMENTS\n"+
		"panda-0001  ready              -      prod         mobile-imaging-001  relay-1.lab:bank1:relay1  -        -\n"+
		"panda-0002  self_test_running  -      -            mobile-imaging-001  relay-1.lab:bank1:relay2  7        flaky sd card\n", r.stdout)

	r = runCLI(t, f, "--json", "device", "list", "--details")
	require.Equal(t, exitOK, r.code)
	var got []map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &got))
	require.Len(t, got, 2)
	require.Contains(t, got[0], "comments", "nullable keys are kept")
	require.Nil(t, got[0]["comments"])

	r = runCLI(t, f, "device", "show", "panda-0002")
	require.Equal(t, exitOK, r.code)
	require.Contains(t, r.stdout, "name:              panda-0002\n")
	require.Contains(t, r.stdout, "state:             self_test_running (generation 4)\n")
	require.Contains(t, r.stdout, "hardware type:     panda/ES Rev B2\n")
	require.Contains(t, r.stdout, "comments:          flaky sd card\n")
	require.Contains(t, r.stdout, "health score:      50\n")
	require.Contains(t, r.stdout, "history:           imaging ok, boot failed (pxe_booting)\n")

	r = runCLI(t, f, "device", "set-comments", "panda-0001", "reseated the sd card")
	require.Equal(t, exitOK, r.code)
	require.Equal(t, "set comments of panda-0001 to \"reseated the sd card\"\n", r.stdout)
	require.JSONEq(t, `{"comments": "reseated the sd card"}`, f.lastCall().Body)

	r = runCLI(t, f, "device", "set-comments", "panda-0001", "")
	require.Equal(t, exitOK, r.code)
	require.JSONEq(t, `{"comments": ""}`, f.lastCall().Body)

	r = runCLI(t, f, "device", "set-comments", "panda-0001", "--", "-x marks the spot")
	require.Equal(t, exitOK, r.code)
	require.JSONEq(t, `{"comments": "-x marks the spot"}`, f.lastCall().Body)

	r = runCLI(t, f, "device", "set-environment", "panda-0001", "staging")
	require.Equal(t, exitOK, r.code)
	require.JSONEq(t, `{"environment": "staging"}`, f.lastCall().Body)

	r = runCLI(t, f, "device", "set-environment", "panda-0009", "staging")
	require.Equal(t, exitFailure, r.code)
	require.Contains(t, r.stderr, "mozpoolctl: set environment of panda-0009: ")
	require.Contains(t, r.stderr, "(HTTP 404)")
}

// --stale asks the node for its state as it is (?stale), for an operator
// looking at a node that has not caught up.
func TestStaleFlag(t *testing.T) {
	f := newFakeAPI(t)
	f.on("GET /api/device/list/", ok(map[string][]string{"devices": {"panda-0001"}}))
	r := runCLI(t, f, "--stale", "device", "list")
	require.Equal(t, exitOK, r.code)
	require.Equal(t, "panda-0001\n", r.stdout)
	require.Equal(t, "stale=", f.lastCall().Query)

	r = runCLI(t, f, "device", "list")
	require.Equal(t, exitOK, r.code)
	require.Equal(t, "", f.lastCall().Query)
}
