package cluster

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"
)

// maxApplyLag is how far the applied index may trail the commit index for
// the node to count as caught up.
const maxApplyLag = 16

// Status reports this node's view of the cluster: its Raft state and
// indexes, the leader, every server of the Raft configuration with its
// health, and the failure tolerance.
func (n *Node) Status() Status {
	stats := n.raft.Stats()
	st := Status{
		Node:         n.self,
		State:        n.raft.State().String(),
		Leader:       n.Leader(),
		AppliedIndex: n.AppliedIndex(),
		Time:         now(),
	}
	st.Term, _ = strconv.ParseUint(stats["term"], 10, 64)
	st.CommitIndex, _ = strconv.ParseUint(stats["commit_index"], 10, 64)
	st.LastLogIndex, _ = strconv.ParseUint(stats["last_log_index"], 10, 64)

	suspect := map[string]bool{}
	if n.ml != nil {
		for _, m := range n.ml.Members() {
			if m.State == memberlist.StateSuspect {
				suspect[m.Name] = true
			}
		}
	}
	leading := n.raft.State() == raft.Leader
	voters, unhealthyVoters := 0, 0
	if f := n.raft.GetConfiguration(); f.Error() == nil {
		for _, s := range f.Configuration().Servers {
			id := string(s.ID)
			ident := n.identityOf(id)
			ss := ServerStatus{
				ID: id, Name: ident.Name, Rack: ident.Rack,
				Suffrage: suffrageName(s.Suffrage), RaftAddr: string(s.Address), HTTPAddr: ident.HTTPAddr, TFTPAddr: ident.TFTPAddr,
				SyslogAddr: ident.SyslogAddr,
				Leader:     st.Leader != nil && st.Leader.ID == id,
			}
			if id == n.id {
				ss.Healthy, ss.Gossip = true, "alive"
			} else if p, ok := n.health.get(id); ok {
				ss.Gossip = p.gossip
				if suspect[id] {
					ss.Gossip = "suspect"
				}
				ss.Healthy = ss.Gossip == "alive" && !(leading && p.raftFailing)
				if !p.lastContact.IsZero() {
					ms := time.Since(p.lastContact).Milliseconds()
					if ss.Healthy {
						ms = 0 // gossip probes it every second; it is current
					}
					ss.LastContactMS = &ms
				}
			} else {
				ss.Gossip = "unknown"
			}
			if s.Suffrage == raft.Voter {
				voters++
				if !ss.Healthy {
					unhealthyVoters++
				}
			}
			st.Servers = append(st.Servers, ss)
		}
	}
	st.FailureTolerance = max(0, (voters-1)/2-unhealthyVoters)
	return st
}

// CaughtUp reports whether this node knows a leader and has applied every
// entry it knows to be committed.
func (n *Node) CaughtUp() bool {
	if n.Leader() == nil {
		return false
	}
	commit := n.raft.CommitIndex()
	return commit > 0 && n.AppliedIndex() >= commit
}

// maxIndexScan bounds how many log entries AppliedIndex reads.
const maxIndexScan = 64

// AppliedIndex is the index of the last log entry this node's state
// reflects. The FSM counts the commands it applied and the snapshot it
// restored; entries that never reach it (the no-op a new leader appends,
// configuration changes, barriers) are applied too once raft has handed out
// everything up to them and no command before them is still on its way to
// the FSM. Without that, a node whose last entries are such entries (every
// node of a cluster restarted from snapshots, as soon as a leader is
// elected) would believe it is behind until the next command.
func (n *Node) AppliedIndex() uint64 {
	applied := n.cfg.FSM.AppliedIndex()
	handed := n.raft.AppliedIndex() // handed to the FSM, maybe not yet applied
	if applied >= handed {
		return applied
	}
	// Everything up to the latest snapshot is in the state: raft hands
	// out nothing past a snapshot before the FSM has taken or restored it.
	if snap, _ := strconv.ParseUint(n.raft.Stats()["last_snapshot_index"], 10, 64); snap > applied && snap <= handed {
		applied = snap
	}
	if handed-applied > maxIndexScan {
		return applied // a backlog: the FSM is still busy
	}
	for i := applied + 1; i <= handed; i++ {
		var l raft.Log
		if err := n.logs.GetLog(i, &l); err != nil || l.Type == raft.LogCommand {
			return i - 1 // a command the FSM has not applied yet
		}
	}
	return handed
}

// Health returns nil when this node knows a leader and has applied the log
// up to (nearly) the commit index; otherwise it says why not.
func (n *Node) Health() error {
	select {
	case <-n.shutdownCh:
		return ErrShutdown
	default:
	}
	if n.Leader() == nil {
		return ErrNoLeader
	}
	commit, applied := n.raft.CommitIndex(), n.AppliedIndex()
	if commit > applied+maxApplyLag {
		return fmt.Errorf("catching up: applied %d of %d", applied, commit)
	}
	if n.raft.State() == raft.Follower {
		if lc := n.raft.LastContact(); !lc.IsZero() && time.Since(lc) > 5*n.cfg.HeartbeatTimeout {
			return errors.New("no contact with the leader for " + time.Since(lc).Round(time.Millisecond).String())
		}
	}
	return nil
}

// Serving reports whether this node has been caught up (see CaughtUp) at
// least once since it started. It latches: once true it stays true for the
// life of the Node, so a later brief lag (a burst of writes, a leader
// election) does not turn reads away. Until then the node's state may be
// older than what it served before a restart, and the API answers reads
// with 503 (see docs/design.md#reads-never-go-back-in-time).
//
// A follower's own commit index is no measure of that: Raft raises it only
// as far as the entries the leader has sent so far, so a node restarted
// behind the leader would be caught up with its own log after the first
// batch of entries. A follower therefore asks the leader its commit index
// once (watchServing) and serves only once it has applied that too.
func (n *Node) Serving() bool {
	if n.serving.Load() {
		return true
	}
	target := n.joinIndex.Load()
	if target == 0 && !n.IsLeader() {
		return false
	}
	if n.CaughtUp() && n.AppliedIndex() >= target {
		if n.serving.CompareAndSwap(false, true) {
			n.logger.Info("caught up with the cluster: serving reads", "applied_index", n.AppliedIndex())
		}
		return true
	}
	return false
}

// servingPoll is how often watchServing checks whether the node has caught
// up.
const servingPoll = 20 * time.Millisecond

// watchServing latches Serving as soon as the node has caught up, whether
// or not anyone asks, then returns.
func (n *Node) watchServing() {
	defer n.wg.Done()
	t := time.NewTicker(servingPoll)
	defer t.Stop()
	for !n.Serving() {
		if n.joinIndex.Load() == 0 {
			n.askJoinIndex()
		}
		select {
		case <-n.shutdownCh:
			return
		case <-t.C:
		}
	}
}

// WaitApplied blocks until this node's applied index (AppliedIndex, which
// counts the entries that never reach the FSM too) is at least index, or
// ctx ends, or the node shuts down.
func (n *Node) WaitApplied(ctx context.Context, index uint64) error {
	wait := time.Millisecond
	for {
		changed := n.cfg.FSM.Changed() // before the check, so no apply is missed
		if n.cfg.FSM.AppliedIndex() >= index || n.AppliedIndex() >= index {
			return nil
		}
		// An entry that never reaches the FSM (a barrier, a configuration
		// change) wakes nobody: look again after a growing pause too.
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-n.shutdownCh:
			t.Stop()
			return ErrShutdown
		case <-changed:
		case <-t.C:
			wait = min(2*wait, 20*time.Millisecond)
		}
		t.Stop()
	}
}

// askJoinIndex asks the leader, if another node leads, for its commit
// index and keeps it in joinIndex. A leader that cannot be asked (a
// version without the call, a token mismatch) leaves the node to its own
// commit index, as before; one that does not answer now is asked again
// at the next poll.
func (n *Node) askJoinIndex() {
	l := n.Leader()
	if l == nil || l.HTTPAddr == "" || l.ID == n.id {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.HeartbeatTimeout)
	defer cancel()
	var out leaderIndex
	err := n.forward(ctx, l, pathIndex, nil, &out)
	switch {
	case err == nil:
		n.joinIndex.Store(max(out.CommitIndex, 1))
		n.logger.Info("catching up with the leader", "leader_commit_index", out.CommitIndex, "applied_index", n.AppliedIndex())
	case errors.Is(err, errRetry) || ctx.Err() != nil:
	default:
		n.logger.Warn("could not ask the leader its commit index: serving once caught up with the local one", "error", err)
		n.joinIndex.Store(1)
	}
}
