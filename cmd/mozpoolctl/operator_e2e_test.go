package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/api"
	"github.com/mozpool/mozpool/client"
	"github.com/mozpool/mozpool/daemon/daemontest"
)

// syncBuffer is a bytes.Buffer safe to read while a command writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// ctlFollow runs a following command until its output contains every one
// of want, then interrupts it (as Ctrl-C would) and returns its output and
// exit code.
func ctlFollow(t *testing.T, server string, want func(out string) bool, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	baseContext = func() context.Context { return ctx }
	defer func() { baseContext = context.Background }()
	out := &syncBuffer{}
	code := make(chan int, 1)
	// Exits when the command returns (interrupted below).
	go func() {
		code <- run(append([]string{"--server", server, "--token", daemontest.Token, "--ca-cert", daemontest.CAFile(t)}, args...), out, out)
	}()
	require.Eventually(t, func() bool { return want(out.String()) }, 30*time.Second, 10*time.Millisecond,
		"mozpoolctl %s never printed what was expected; output:\n%s", strings.Join(args, " "), out)
	cancel()
	return out.String(), <-code
}

// The operator commands against a real 3-node cluster: raft peers,
// leadership transfer and removal, the event stream with and without
// --follow, and following a device's log.
func TestE2E_OperatorCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-node cluster test")
	}
	ctx := context.Background()
	c := daemontest.New(t, 3)
	out, code := ctl(t, c.Nodes[0].URL, "inventory", "sync", "--ship-it", "../../lab/lab.json")
	require.Equal(t, 0, code, out)
	c.WaitConverged()
	leader := c.WaitLeader()
	follower := c.Followers()[0]

	out, code = ctl(t, follower.URL, "operator", "raft", "list-peers")
	require.Equal(t, 0, code, out)
	require.Equal(t, 4, len(strings.Split(strings.TrimSpace(out), "\n")), out)
	require.Contains(t, out, "NODE")
	for _, n := range c.Nodes {
		require.Contains(t, out, n.Cluster.ID())
	}
	out, code = ctl(t, follower.URL, "--json", "operator", "raft", "list-peers")
	require.Equal(t, 0, code, out)
	var peers []api.ServerStatus
	require.NoError(t, json.Unmarshal([]byte(out), &peers))
	require.Len(t, peers, 3)

	// Hand leadership to the follower, through the other follower.
	other := c.Followers()[1]
	out, code = ctl(t, other.URL, "operator", "raft", "transfer-leader", "--id", follower.Cluster.ID())
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "leadership transferred from "+leader.Cluster.ID()+" to "+follower.Cluster.ID())
	require.Eventually(t, func() bool { return follower.Cluster.IsLeader() }, 20*time.Second, 10*time.Millisecond)
	out, code = ctl(t, other.URL, "operator", "raft", "transfer-leader", "--id", "no-such-node")
	require.Equal(t, 1, code, out)
	out, code = ctl(t, other.URL, "--token", "wrong", "operator", "raft", "transfer-leader")
	require.Equal(t, 1, code, out)

	// Events: the kept ones, then following new ones.
	cl := follower.Client()
	req, err := cl.CreateRequest(ctx, "any", client.RequestSpec{Assignee: "ops", Duration: time.Hour, Image: "b2g",
		BootConfig: map[string]any{"b2gbase": "http://builds/b2g"}})
	require.NoError(t, err)
	id := strconv.FormatInt(req.ID, 10)
	c.WaitConverged()
	out, code = ctl(t, other.URL, "events", "--kind", "request", "--request", id)
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "KIND")
	require.Contains(t, out, "request  "+id)
	out, code = ctl(t, other.URL, "--json", "events", "--kind", "request", "--request", id)
	require.Equal(t, 0, code, out)
	var ev api.Event
	require.NoError(t, json.Unmarshal([]byte(strings.Split(out, "\n")[0]), &ev))
	require.Equal(t, "request", ev.Kind)
	require.Equal(t, id, ev.Name)

	// While the commands follow, a write makes what they wait for.
	meanwhile := func(what string, write func() error) chan error {
		errc := make(chan error, 1)
		// Exits when the write succeeds or its deadline passes.
		go func() {
			deadline := time.Now().Add(20 * time.Second)
			for {
				err := write()
				if err == nil || time.Now().After(deadline) {
					errc <- err
					return
				}
				time.Sleep(50 * time.Millisecond) // retry pause, not a wait for a condition
			}
		}()
		return errc
	}
	errc := meanwhile("return", func() error { return cl.ReturnRequest(ctx, req.ID) })
	out, code = ctlFollow(t, other.URL, func(out string) bool { return strings.Contains(out, "closed") },
		"events", "--follow", "--request", id, "--state", "closed")
	require.NoError(t, <-errc)
	require.Equal(t, 0, code, "interrupting --follow is not a failure: %s", out)
	require.Contains(t, out, "request  "+id)
	require.NotContains(t, out, "finding_device", "filtered by state")

	// A device's log, followed: a forced state change shows up in it.
	errc = meanwhile("lock out", func() error {
		st, err := cl.DeviceState(ctx, "panda-0001")
		if err != nil {
			return err
		}
		return cl.ForceState(ctx, "panda-0001", st, "locked_out")
	})
	// Not --lines 1: the change may be committed before the command
	// starts, and a hardware result line filed after it (a power cycle
	// under way) would then be the last line.
	out, code = ctlFollow(t, other.URL, func(out string) bool { return strings.Contains(out, "locked_out") },
		"device", "log", "panda-0001", "--follow", "--lines", "50")
	require.NoError(t, <-errc)
	require.Equal(t, 0, code, out)

	// Remove a peer.
	out, code = ctl(t, follower.URL, "operator", "raft", "remove-peer", other.Cluster.ID())
	require.Equal(t, 0, code, out)
	out, code = ctl(t, follower.URL, "--json", "operator", "raft", "list-peers")
	require.Equal(t, 0, code, out)
	require.NoError(t, json.Unmarshal([]byte(out), &peers))
	require.Len(t, peers, 2)
	out, code = ctl(t, follower.URL, "operator", "raft", "remove-peer")
	require.Equal(t, 2, code, out)
}
