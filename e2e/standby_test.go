package e2e

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/daemon"
	"github.com/mozpool/mozpool/daemon/daemontest"
	"github.com/mozpool/mozpool/fsm"
	"github.com/mozpool/mozpool/lifeguard"
	"github.com/mozpool/mozpool/requests"
	"github.com/mozpool/mozpool/sim"
)

// relaySource is the address node i (1-based) connects to relay boards
// from, so that the simulator's relay log tells the servers apart.
func relaySource(i int) string { return fmt.Sprintf("127.0.0.%d", 100+i) }

// TestStandbyTakeover kills the owner of a rack whose boards are imaging
// for requests. Rack 2 names node 2, then node 3 as its standby. Node 3
// takes the rack over, continues every board from its state, and the
// requests reach ready; node 2 comes back and does nothing to the boards.
// The relay boards' logs show that no board was power-cycled by both
// servers: every command node 2 sent precedes every command node 3 sent,
// and node 2 opened no connection after it was killed (nor after it came
// back).
//
// Node 2 dies as a follower (the leader, alive, decides the takeover) or
// as the Raft leader (the survivors first elect a new leader, which counts
// the takeover time from its own first sight of the loss and decides).
func TestStandbyTakeover(t *testing.T) {
	skipShort(t)
	t.Parallel()
	for _, tc := range []struct {
		name       string
		ownerLeads bool
	}{
		{"OwnerFollows", false},
		{"OwnerLeads", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			testStandbyTakeover(t, tc.ownerLeads)
		})
	}
}

// makeLeader makes n the Raft leader, or (lead false) a follower, by
// transferring leadership, and waits until every live node knows the
// leader.
func makeLeader(t *testing.T, c *daemontest.Cluster, n *daemontest.Node, lead bool) {
	t.Helper()
	require.Eventually(t, func() bool {
		var leader *daemontest.Node
		for _, m := range c.Live() {
			if m.Cluster.IsLeader() {
				leader = m
			}
		}
		if leader == nil {
			return false
		}
		if (leader == n) == lead {
			return true
		}
		to := n.Cluster.ID() // to n, or away from n to any other voter
		if !lead {
			to = ""
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := leader.Cluster.TransferLeadership(ctx, to); err != nil {
			t.Logf("transferring leadership from %s: %v (trying again)", leader.Name, err)
		}
		return false
	}, flowTimeout, poll, "%s never became the leader (%v)", n.Name, lead)
	c.WaitLeader()
}

func testStandbyTakeover(t *testing.T, ownerLeads bool) {
	l := startLab(t, labOptions{
		Racks: []fsm.InventoryRack{{Name: "rack2", Servers: []string{daemontest.NodeName(2), daemontest.NodeName(3)}}},
		Configure: func(cfg *daemon.Config) {
			var i int
			fmt.Sscanf(strings.TrimPrefix(cfg.Name, "mobile-imaging-"), "%d", &i)
			cfg.RelaySource = relaySource(i)
			cfg.Rack = "" // the inventory's racks stand
		},
	})
	c := l.cluster
	owner, standby := c.Nodes[1], c.Nodes[2]
	ownerIP, standbyIP := relaySource(2), relaySource(3)
	rack2 := []string{boardName(2, 1), boardName(2, 2), boardName(2, 3), boardName(2, 4)}

	rackOn := func(n *daemontest.Node) (r fsm.Rack) {
		n.FSM.Read(func(s *fsm.State) {
			if rk, ok := s.Racks["rack2"]; ok {
				r = *rk
			}
		})
		return r
	}
	// The owner leads, or follows, while its boards image and when it
	// dies.
	makeLeader(t, c, owner, ownerLeads)
	r0 := rackOn(c.Nodes[0])
	require.Equal(t, owner.Name, r0.Owner)
	require.Equal(t, []string{owner.Name, standby.Name}, r0.Servers)

	for _, dev := range rack2 {
		l.waitState(t, dev, lifeguard.StateReady, selfTestTimeout)
	}
	// Every board of rack 2 is imaging for a request when its owner dies.
	var ids []int64
	for _, dev := range rack2 {
		ids = append(ids, l.createRequest(t, c.Nodes[0], dev, requestBody("b2g", "", 3600)).ID)
	}
	imaging := map[lifeguard.State]bool{lifeguard.StatePXEBooting: true, lifeguard.StateMobileInitStarted: true,
		lifeguard.StateB2GDownloading: true, lifeguard.StateB2GExtracting: true}
	require.Eventually(t, func() bool {
		return imaging[stateOn(c.Nodes[0], rack2[0])]
	}, flowTimeout, poll, "%s never started imaging", rack2[0])
	makeLeader(t, c, owner, ownerLeads)
	require.Equal(t, ownerLeads, owner.Cluster.IsLeader(), "%s leads when it dies", owner.Name)
	owner.Kill()
	// Kill returns once everything the node ran has stopped, as a crash
	// would have stopped it here.
	killed := time.Now()
	leader := c.WaitLeader()
	require.NotEqual(t, owner, leader)

	// The standby takes the rack over and the requests reach ready.
	require.Eventually(t, func() bool { return rackOn(c.Nodes[0]).Owner == standby.Name }, flowTimeout, poll,
		"rack2 was not taken over: %+v", lazy(func() string { return fmt.Sprintf("%+v", rackOn(c.Nodes[0])) }))
	taken := rackOn(c.Nodes[0])
	require.Equal(t, r0.Generation+1, taken.Generation)
	require.Equal(t, "takeover", taken.Reason)
	for _, dev := range rack2 {
		var server string
		c.Nodes[0].FSM.Read(func(s *fsm.State) { server = s.Devices[dev].ImagingServer })
		require.Equal(t, standby.Name, server, "%s follows its rack's owner", dev)
	}
	for _, id := range ids {
		l.waitRequestState(t, id, requests.StateReady, 2*flowTimeout)
	}

	// The former owner comes back, catches up, and does nothing to the
	// boards it lost.
	actuated := map[string]int{}
	for _, dev := range rack2 {
		actuated[dev] = l.actuations(t, dev)
	}
	owner = c.Restart(owner)
	c.WaitConverged()
	require.Equal(t, standby.Name, rackOn(owner).Owner, "the returning node sees the rack's new owner")
	require.Never(t, func() bool {
		for _, dev := range rack2 {
			if l.actuations(t, dev) != actuated[dev] {
				return true
			}
		}
		return false
	}, quiet, poll, "a board of rack 2 was power-cycled after its requests were ready")
	for _, id := range ids {
		l.waitRequestState(t, id, requests.StateReady, time.Second)
	}

	// The relay log: node 2's commands all precede node 3's, and none
	// came after node 2 was killed; node 3 did power-cycle the boards.
	for _, dev := range rack2 {
		var last2, first3 time.Time
		before := map[int]bool{} // connections with a command before the kill
		for _, op := range l.relayOps(t, dev) {
			host, _, err := net.SplitHostPort(op.From)
			require.NoError(t, err)
			switch host {
			case ownerIP:
				// A killed in-process node may finish (restore power on)
				// the connection it had open, as a board would see a
				// crashed server's socket close; it opens none after.
				if op.At.Before(killed) {
					before[op.Conn] = true
				}
				require.True(t, before[op.Conn], "%s: %s from the former owner on a connection opened after it was killed (%s)", dev, op.Command, op.At)
				require.True(t, op.At.Before(taken.Moved), "%s: %s from the former owner after the takeover (%s)", dev, op.Command, op.At)
				last2 = op.At
			case standbyIP:
				if first3.IsZero() {
					first3 = op.At
				}
			default:
				t.Fatalf("%s: %s from %s, neither rack 2 server", dev, op.Command, op.From)
			}
		}
		require.False(t, first3.IsZero(), "%s: the standby power-cycled it", dev)
		require.True(t, last2.Before(first3), "%s: the two servers' power cycles overlap", dev)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	racks, err := owner.Client().Racks(ctx)
	require.NoError(t, err)
	for _, r := range racks {
		if r.Name == "rack2" {
			require.Equal(t, standby.Name, r.Owner)
			require.Equal(t, 4, r.Devices)
		}
	}
}

// relayOps returns dev's relay's entries of its relay board's operation
// log, oldest first.
func (l *lab) relayOps(t *testing.T, dev string) []sim.RelayOp {
	t.Helper()
	b := l.sim.Board(dev)
	rs := l.sim.Relay(b.Relay.Host)
	bank, rel := fmt.Sprintf("bank%d", b.Relay.Bank), fmt.Sprintf("relay%d", b.Relay.Relay)
	var out []sim.RelayOp
	for _, op := range rs.Log {
		f := strings.Fields(op.Command)
		if len(f) >= 3 && f[1] == bank && f[2] == rel {
			out = append(out, op)
		}
	}
	return out
}
