package cluster

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/mozpool/mozpool/fsm"
)

func now() time.Time { return time.Now().UTC() }

// observe turns Raft observations into peer health and leadership changes.
// On gaining leadership it starts leaderLoop for that term; on losing it, it
// cancels the loop and waits for it, so a flap is a stop followed by a start.
func (n *Node) observe() {
	defer n.wg.Done()
	ch := make(chan raft.Observation, 64)
	obs := raft.NewObserver(ch, false, func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.LeaderObservation, raft.FailedHeartbeatObservation, raft.ResumedHeartbeatObservation:
			return true
		}
		return false
	})
	n.raft.RegisterObserver(obs)
	defer n.raft.DeregisterObserver(obs)

	var term *leaderTerm
	stopTerm := func() {
		if term != nil {
			term.cancel()
			term.wg.Wait()
			term = nil
		}
	}
	defer stopTerm()
	check := time.NewTicker(time.Second) // observations can be dropped; re-check
	defer check.Stop()
	for {
		select {
		case <-n.shutdownCh:
			return
		case o := <-ch:
			switch d := o.Data.(type) {
			case raft.FailedHeartbeatObservation:
				n.health.raftContact(string(d.PeerID), true, d.LastContact)
			case raft.ResumedHeartbeatObservation:
				n.health.raftContact(string(d.PeerID), false, time.Now())
			case raft.LeaderObservation:
				n.logger.Info("leader changed", "leader_id", d.LeaderID, "leader_addr", d.LeaderAddr)
			}
		case <-check.C:
		}
		leading := n.raft.State() == raft.Leader
		switch {
		case leading && term == nil:
			// Heartbeat failures seen in an earlier term say nothing
			// of this one (see forgetRaftFailures).
			n.health.forgetRaftFailures()
			term = n.startTerm()
		case !leading && term != nil:
			n.logger.Info("lost leadership")
			stopTerm()
			n.health.forgetRaftFailures()
		}
	}
}

// leaderTerm is one term of leadership: its loop and how to stop it.
type leaderTerm struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func (n *Node) startTerm() *leaderTerm {
	ctx, cancel := context.WithCancel(context.Background())
	t := &leaderTerm{cancel: cancel}
	t.wg.Add(1)
	// Exits when the term is cancelled (leadership lost or shutdown).
	go func() {
		defer t.wg.Done()
		n.leaderLoop(ctx)
	}()
	return t
}

// leaderLoop runs while this node leads. It waits for the FSM to apply
// everything from earlier terms (Barrier), then runs the leader tasks and,
// every RegisterInterval, promotes non-voters while the cluster has fewer
// than MaxVoters voters and records which imaging servers are down.
func (n *Node) leaderLoop(ctx context.Context) {
	n.logger.Info("gained leadership")
	if !n.waitBarrier(ctx) {
		return
	}
	var tasks sync.WaitGroup
	defer tasks.Wait()
	for _, task := range n.cfg.LeaderTasks {
		tasks.Add(1)
		// Exits when the term ends (ctx cancelled).
		go func() { defer tasks.Done(); task(ctx) }()
	}
	t := time.NewTicker(n.cfg.RegisterInterval)
	defer t.Stop()
	// lost is, per imaging server, since when this leader has seen it
	// unreachable: a new leader counts the takeover time from its own
	// first look, never less.
	lost := map[string]time.Time{}
	for {
		n.promoteNonvoters()
		n.markServerHealth(ctx)
		n.takeOverRacks(ctx, lost)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// waitBarrier waits until the FSM has applied every entry of earlier terms.
// A barrier that fails (it timed out behind a slow disk, say) is retried
// with a growing pause for as long as the term lasts: giving up would leave
// this leader without its tasks (request timers, server health) until the
// next election. It returns false when the term ended first.
func (n *Node) waitBarrier(ctx context.Context) bool {
	barrier := n.cfg.barrier
	if barrier == nil {
		barrier = func(r *raft.Raft, timeout time.Duration) error { return r.Barrier(timeout).Error() }
	}
	pause := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := barrier(n.raft, n.cfg.ApplyTimeout)
		if err == nil {
			return true
		}
		n.logger.Warn("barrier after gaining leadership failed; retrying", "error", err, "attempt", attempt, "pause", pause)
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
		pause = min(2*pause, max(n.cfg.RegisterInterval, 50*time.Millisecond))
	}
}

// markServerHealth records in the replicated state which imaging servers'
// nodes are unreachable, so that device choice skips their frozen racks.
func (n *Node) markServerHealth(ctx context.Context) {
	type change struct {
		name string
		down bool
	}
	var changes []change
	n.cfg.FSM.Read(func(s *fsm.State) {
		for _, srv := range s.Servers {
			if srv.NodeID == "" {
				continue
			}
			down := false
			if srv.NodeID != n.id {
				p, ok := n.health.get(srv.NodeID)
				// Not heard of yet (a new leader before gossip has
				// converged) is not down.
				down = ok && (p.raftFailing || p.gossip == "dead" || p.gossip == "left")
			}
			if down != srv.Down {
				changes = append(changes, change{srv.Name, down})
			}
		}
	})
	for _, c := range changes {
		b, err := fsm.Encode(fsm.CmdServerHealth, &fsm.ServerHealth{Header: fsm.Header{At: now()}, Name: c.name, Down: c.down})
		if err != nil || ctx.Err() != nil {
			return
		}
		if _, err := n.applyLocal(b); err != nil {
			n.logger.Warn("recording server health failed", "server", c.name, "error", err)
			return
		}
		n.logger.Info("imaging server health changed", "server", c.name, "down", c.down)
	}
}

// promoteNonvoters makes healthy non-voters voters while there is room, so a
// decommissioned voter is replaced by a standby server.
func (n *Node) promoteNonvoters() {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return
	}
	voters := 0
	var standby []raft.Server
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == raft.Voter {
			voters++
		} else {
			standby = append(standby, s)
		}
	}
	for _, s := range standby {
		if voters >= n.cfg.MaxVoters {
			return
		}
		if p, ok := n.health.get(string(s.ID)); ok && (p.raftFailing || p.gossip != "alive") {
			continue
		}
		if err := n.raft.AddVoter(s.ID, s.Address, 0, 0).Error(); err != nil {
			n.logger.Warn("promote non-voter failed", "id", s.ID, "error", err)
			return
		}
		n.logger.Info("promoted non-voter", "id", s.ID)
		voters++
	}
}

// register keeps this node's entry in the replicated server table current
// (name, rack, addresses), so every node can map the leader's id to its HTTP
// address and every imaging server's devices to their node. It checks often
// until the entry is right, then every RegisterInterval.
func (n *Node) register() {
	defer n.wg.Done()
	for {
		wait := n.cfg.RegisterInterval
		if !n.registered() {
			if n.Leader() != nil {
				ctx, cancel := context.WithTimeout(context.Background(), n.cfg.ApplyTimeout)
				res, err := n.Apply(ctx, fsm.CmdServerUpsert, &fsm.ServerUpsert{
					Name: n.self.Name, NodeID: n.id, Rack: n.self.Rack,
					RaftAddr: n.self.RaftAddr, HTTPAddr: n.self.HTTPAddr, GossipAddr: n.self.GossipAddr,
					TFTPAddr: n.self.TFTPAddr, SyslogAddr: n.self.SyslogAddr,
				})
				cancel()
				if err == nil {
					err = res.Error()
				}
				if err != nil {
					n.logger.Debug("registering in the server table failed; will retry", "error", err)
				}
			}
			wait = 200 * time.Millisecond
		}
		select {
		case <-n.shutdownCh:
			return
		case <-time.After(wait):
		}
	}
}

func (n *Node) registered() bool {
	ok := false
	n.cfg.FSM.Read(func(s *fsm.State) {
		srv, found := s.Servers[n.self.Name]
		ok = found && srv.NodeID == n.id && srv.RaftAddr == n.self.RaftAddr &&
			srv.HTTPAddr == n.self.HTTPAddr && srv.GossipAddr == n.self.GossipAddr && srv.TFTPAddr == n.self.TFTPAddr &&
			srv.SyslogAddr == n.self.SyslogAddr &&
			(n.self.Rack == "" || srv.Rack == n.self.Rack)
	})
	return ok
}

// ContactWindow is how long a follower that has not heard from the leader
// still acts on its boards (InContact).
func (n *Node) ContactWindow() time.Duration { return 2 * n.cfg.HeartbeatTimeout }

// InContact reports whether this node is in contact with the cluster: it
// leads (a leader cut off from a quorum steps down within its lease), or
// it has heard from the leader within ContactWindow. A node cut off longer
// may have lost its racks to a standby: it acts on no board until it is
// back in contact (and then sees who owns them).
func (n *Node) InContact() bool {
	switch n.raft.State() {
	case raft.Leader:
		return true
	case raft.Follower:
		lc := n.raft.LastContact()
		return !lc.IsZero() && time.Since(lc) <= n.ContactWindow()
	}
	return false
}

// takeoverAfter is the takeover time under the time scale s.
func (n *Node) takeoverAfter(scale float64) time.Duration {
	d := n.cfg.TakeoverAfter
	if scale > 0 && scale != 1 {
		d = time.Duration(float64(d) * scale)
	}
	return max(d, MinTakeoverHeartbeats*n.cfg.HeartbeatTimeout)
}

// takeOverRacks gives every rack whose owner has been unreachable for the
// takeover time to its first live standby (in the rack's order). The
// takeover names the generation this leader saw: if the rack changed
// owner meanwhile the FSM refuses it. lost is kept across calls of one
// term.
func (n *Node) takeOverRacks(ctx context.Context, lost map[string]time.Time) {
	if n.cfg.TakeoverAfter < 0 {
		return
	}
	unreachable := func(srv *fsm.ImagingServer) bool {
		if srv.NodeID == "" || srv.NodeID == n.id {
			// Never bound (it never acted: an operator moves its rack),
			// or this node.
			return false
		}
		p, ok := n.health.get(srv.NodeID)
		return ok && p.raftFailing && p.gossip != "alive"
	}
	live := func(srv *fsm.ImagingServer) bool {
		if srv.NodeID == "" || srv.Down {
			return false
		}
		if srv.NodeID == n.id {
			return true
		}
		p, ok := n.health.get(srv.NodeID)
		return ok && !p.raftFailing && p.gossip == "alive"
	}
	var moves []fsm.RackTakeover
	at := now()
	n.cfg.FSM.Read(func(s *fsm.State) {
		after := n.takeoverAfter(s.TimeScale)
		for name, srv := range s.Servers {
			if !unreachable(srv) {
				delete(lost, name)
			} else if _, ok := lost[name]; !ok {
				lost[name] = at
			}
		}
		for _, r := range s.Racks {
			since, ok := lost[r.Owner]
			if r.Owner == "" || !ok || at.Sub(since) < after {
				continue
			}
			for _, name := range r.Servers {
				if srv, ok := s.Servers[name]; ok && name != r.Owner && live(srv) {
					moves = append(moves, fsm.RackTakeover{Header: fsm.Header{At: at}, Rack: r.Name, Server: name, Generation: r.Generation})
					break
				}
			}
		}
	})
	for _, m := range moves {
		b, err := fsm.Encode(fsm.CmdRackTakeover, &m)
		if err != nil || ctx.Err() != nil {
			return
		}
		res, err := n.applyLocal(b)
		if err == nil {
			err = res.Error()
		}
		if err != nil {
			n.logger.Warn("rack takeover failed", "rack", m.Rack, "server", m.Server, "error", err)
			continue
		}
		n.logger.Info("rack taken over by a standby: its owner is unreachable", "rack", m.Rack, "server", m.Server, "generation", m.Generation+1)
	}
}
