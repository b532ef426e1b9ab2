package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/daemon/daemontest"
	"github.com/mozpool/mozpool/fsm"
)

// These tests drive mozpoolctl and the HTTP API against a real 3-node
// cluster (TCP transports, bolt stores, gossip) on loopback.

func ctl(t *testing.T, server string, args ...string) (string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(append([]string{"--server", server, "--token", daemontest.Token, "--ca-cert", daemontest.CAFile(t)}, args...), &out, &errOut)
	return out.String() + errOut.String(), code
}

func deviceCount(f *fsm.FSM) int {
	n := 0
	f.Read(func(s *fsm.State) { n = len(s.Devices) })
	return n
}

func comments(f *fsm.FSM, dev string) string {
	c := ""
	f.Read(func(s *fsm.State) {
		if d, ok := s.Devices[dev]; ok {
			c = d.Comments
		}
	})
	return c
}

func TestE2E_MozpoolctlOnRealCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-node cluster test")
	}
	c := daemontest.New(t, 3)
	follower := c.Followers()[0]

	out, code := ctl(t, follower.URL, "inventory", "sync", "--dry-run", "../../lab/lab.json")
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "+ device panda-0001")
	require.Zero(t, deviceCount(follower.FSM), "a dry run changes nothing")

	out, code = ctl(t, follower.URL, "inventory", "sync", "../../lab/lab.json")
	require.Equal(t, 1, code, "30 new devices exceed the safety valve without --ship-it: %s", out)
	out, code = ctl(t, follower.URL, "inventory", "sync", "--ship-it", "../../lab/lab.json")
	require.Equal(t, 0, code, out)
	for _, n := range c.Nodes {
		require.Eventually(t, func() bool { return deviceCount(n.FSM) == 30 }, 5*time.Second, 10*time.Millisecond)
	}

	// A write sent to a follower is applied on every node.
	out, code = ctl(t, follower.URL, "device", "set-comments", "panda-0001", "cable loose")
	require.Equal(t, 0, code, out)
	for _, n := range c.Nodes {
		require.Eventually(t, func() bool { return comments(n.FSM, "panda-0001") == "cable loose" }, 5*time.Second, 10*time.Millisecond)
	}
	out, code = ctl(t, follower.URL, "device", "set-comments", "nosuch", "x")
	require.Equal(t, 1, code)
	require.Contains(t, out, "404")

	// A 4th node joins with mozpoolctl join; repeating the join is a no-op.
	n4 := c.StartNode(daemontest.NodeName(4), "", "", false)
	out, code = ctl(t, follower.URL, "join", n4.URL)
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "added")
	out, code = ctl(t, follower.URL, "join", n4.URL)
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "unchanged")
	c.Nodes = append(c.Nodes, n4)
	require.Eventually(t, func() bool { return deviceCount(n4.FSM) == 30 }, 10*time.Second, 10*time.Millisecond, "the new node catches up")
	require.Eventually(t, func() bool {
		_, code := ctl(t, n4.URL, "health")
		return code == 0
	}, 10*time.Second, 20*time.Millisecond)

	out, code = ctl(t, n4.URL, "--json", "status")
	require.Equal(t, 0, code, out)
	var st struct {
		Servers        []struct{ ID, Suffrage string }
		DevicesByState map[string]int `json:"devices_by_state"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &st))
	require.Len(t, st.Servers, 4)
	total := 0
	for _, n := range st.DevicesByState {
		total += n
	}
	require.Equal(t, 30, total, "devices by state: %v", st.DevicesByState)

	// Remove it again.
	out, code = ctl(t, follower.URL, "remove", n4.Cluster.ID())
	require.Equal(t, 0, code, out)
	out, code = ctl(t, follower.URL, "--json", "status")
	require.Equal(t, 0, code, out)
	require.NoError(t, json.Unmarshal([]byte(out), &st))
	require.Len(t, st.Servers, 3)

	// Joining needs the token.
	var errOut bytes.Buffer
	code = run([]string{"--server", follower.URL, "--ca-cert", daemontest.CAFile(t), "join", n4.URL}, io.Discard, &errOut)
	require.Equal(t, 1, code)
	require.Contains(t, errOut.String(), "401")
}

func get(t *testing.T, url string) (*http.Response, map[string]any) {
	t.Helper()
	hc := &http.Client{Transport: daemontest.HTTPClient().Transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := hc.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	var body map[string]any
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &body)
	return resp, body
}

// post sends body as the cluster's bootstrap admin.
func post(t *testing.T, url, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+daemontest.Token)
	resp, err := daemontest.HTTPClient().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestE2E_HTTPOnFollowerAndFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-node cluster test")
	}
	c := daemontest.New(t, 3)
	inv, err := loadInventory("../../lab/lab.json")
	require.NoError(t, err)
	c.LoadInventory(inv)
	f := c.Followers()[0]
	require.Eventually(t, func() bool { return deviceCount(f.FSM) == 30 }, 5*time.Second, 10*time.Millisecond)
	u := f.URL

	resp, body := get(t, u+"/api/version/")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "application/json; charset=utf-8", resp.Header.Get("Content-Type"))
	require.Equal(t, "4.2.1", body["version"])
	resp, _ = get(t, u+"/api/device/list?details=1")
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.Equal(t, "/api/device/list/?details=1", resp.Header.Get("Location"))
	resp, _ = get(t, u+"/api/device/nosuch/state/")
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	resp, body = get(t, u+"/api/device/panda-0001/log/")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.NotEmpty(t, body["log"], "registration is logged on every node")

	r, b := post(t, u+"/api/device/panda-0002/set-environment/", `{"environment": "zz"}`)
	require.Equal(t, http.StatusOK, r.StatusCode, b)
	require.Equal(t, "null", strings.TrimSpace(b))
	r, b = post(t, u+"/api/device/panda-0002/set-environment/", `{"environment": 5}`)
	require.Equal(t, http.StatusBadRequest, r.StatusCode, b)
	require.Contains(t, b, `"error"`)
	resp, body = get(t, u+"/api/environment/list/")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, body["environments"], "zz")

	resp, body = get(t, u+"/api/cluster/status/")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Len(t, body["servers"], 3)
	require.Eventually(t, func() bool {
		_, body := get(t, u+"/api/cluster/status/")
		return body["failure_tolerance"] == float64(1)
	}, 10*time.Second, 50*time.Millisecond, "every peer healthy once gossip has converged")
	resp, _ = get(t, u+"/api/cluster/health")
	require.Equal(t, http.StatusOK, resp.StatusCode)

	// Kill the leader: writes through a surviving node succeed again once a
	// new leader is elected (the forward is held through the election).
	old := c.WaitLeader()
	old.Kill()
	survivor := c.Live()[0]
	r, b = post(t, survivor.URL+"/api/device/panda-0003/set-comments/", `{"comments": "after failover"}`)
	require.Equal(t, http.StatusOK, r.StatusCode, b)
	newLeader := c.WaitLeader()
	require.NotEqual(t, old.Cluster.ID(), newLeader.Cluster.ID())
	for _, n := range c.Live() {
		require.Eventually(t, func() bool { return comments(n.FSM, "panda-0003") == "after failover" }, 5*time.Second, 10*time.Millisecond)
	}

	// The killed node comes back from its data dir and catches up.
	back := c.Restart(old)
	require.Eventually(t, func() bool { return comments(back.FSM, "panda-0003") == "after failover" }, 15*time.Second, 20*time.Millisecond)
	// It answers reads (503 before) once it knows it has caught up with
	// the leader's commit index.
	require.Eventually(t, func() bool { return back.Cluster.Serving() }, 15*time.Second, 20*time.Millisecond)
	resp, body = get(t, back.URL+"/api/device/panda-0002/details/")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "zz", body["device"].(map[string]any)["environment"])
	require.NoError(t, back.Client().Health(context.Background()))
}

func TestE2E_BackupRestore(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-node cluster test")
	}
	c := daemontest.New(t, 3)
	inv, err := loadInventory("../../lab/lab.json")
	require.NoError(t, err)
	c.LoadInventory(inv)
	u := c.Followers()[0].URL
	file := t.TempDir() + "/lab.snap"

	out, code := ctl(t, u, "device", "set-comments", "panda-0001", "before")
	require.Equal(t, 0, code, out)
	out, code = ctl(t, u, "backup", file)
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "wrote "+file)
	out, code = ctl(t, u, "device", "set-comments", "panda-0001", "after")
	require.Equal(t, 0, code, out)

	out, code = ctl(t, u, "restore", file)
	require.Equal(t, 2, code, "restore without --yes is refused: %s", out)
	var errOut bytes.Buffer
	require.Equal(t, 1, run([]string{"--server", u, "--ca-cert", daemontest.CAFile(t), "backup", file}, io.Discard, &errOut), "backup needs the token")
	require.Contains(t, errOut.String(), "401")

	out, code = ctl(t, u, "restore", "--yes", file)
	require.Equal(t, 0, code, out)
	for _, n := range c.Nodes {
		require.Eventually(t, func() bool { return comments(n.FSM, "panda-0001") == "before" }, 10*time.Second, 20*time.Millisecond, n.Name)
	}
}

// ctlAs runs mozpoolctl with the given token ("" for none).
func ctlAs(t *testing.T, server, token string, args ...string) (string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(append([]string{"--server", server, "--token", token, "--ca-cert", daemontest.CAFile(t)}, args...), &out, &errOut)
	return out.String() + errOut.String(), code
}

// TestE2E_TokensAndPolicy: an admin creates tokens on one node, they work
// on the others (replicated); a reader may read but not write (403); the
// write of an operator is logged with its name; a revoked token is
// refused (401); under strict, anonymous reads are refused.
func TestE2E_TokensAndPolicy(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-node cluster test")
	}
	c := daemontest.New(t, 3)
	inv, err := loadInventory("../../lab/lab.json")
	require.NoError(t, err)
	c.LoadInventory(inv)
	a, b := c.Nodes[0].URL, c.Nodes[1].URL

	op, code := ctl(t, a, "token", "create", "ci-bot", "--role", "operator")
	require.Equal(t, 0, code, op)
	opSecret := secretIn(t, op)
	rd, code := ctl(t, a, "token", "create", "dashboard", "--role", "reader")
	require.Equal(t, 0, code, rd)
	rdSecret := secretIn(t, rd)

	out, code := ctl(t, b, "token", "list")
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "ci-bot")
	require.NotContains(t, out, opSecret)

	require.Eventually(t, func() bool {
		out, code = ctlAs(t, b, opSecret, "whoami")
		return code == 0
	}, 10*time.Second, 20*time.Millisecond, "the token is replicated: %s", out)
	require.Contains(t, out, "ci-bot (operator), policy open")
	out, code = ctlAs(t, b, opSecret, "device", "set-comments", "panda-0001", "flaky")
	require.Equal(t, 0, code, out)
	var logged bool
	require.Eventually(t, func() bool {
		_, body := get(t, b+"/api/device/panda-0001/log/")
		raw, _ := json.Marshal(body)
		logged = strings.Contains(string(raw), "(by ci-bot)")
		return logged
	}, 10*time.Second, 20*time.Millisecond, "the device log names the caller")

	out, code = ctlAs(t, b, rdSecret, "device", "set-comments", "panda-0001", "x")
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "403")
	out, code = ctlAs(t, b, rdSecret, "device", "list")
	require.Equal(t, 0, code, out)
	out, code = ctlAs(t, b, rdSecret, "token", "list")
	require.Equal(t, 1, code, out)

	out, code = ctl(t, a, "token", "revoke", "ci-bot")
	require.Equal(t, 0, code, out)
	require.Eventually(t, func() bool {
		_, code := ctlAs(t, b, opSecret, "whoami")
		return code == 1
	}, 10*time.Second, 20*time.Millisecond, "the revoked token is refused on every node")
	out, _ = ctlAs(t, b, opSecret, "whoami")
	require.Contains(t, out, "401")

	out, code = ctl(t, a, "policy", "strict")
	require.Equal(t, 0, code, out)
	require.Eventually(t, func() bool {
		_, code := ctlAs(t, b, "", "device", "list")
		return code == 1
	}, 10*time.Second, 20*time.Millisecond, "anonymous reads refused under strict")
	out, code = ctlAs(t, b, rdSecret, "device", "list")
	require.Equal(t, 0, code, out)
}

// secretIn finds the token secret in the output of token create.
func secretIn(t *testing.T, out string) string {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "mzp_") {
			return l
		}
	}
	t.Fatalf("no token in %q", out)
	return ""
}
