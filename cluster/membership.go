package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/hashicorp/raft"

	"github.com/mozpool/mozpool/fsm"
)

// Join adds a node to the cluster, or updates it. It is idempotent: the same
// id at the same address is left as it is ("unchanged"); an entry with the
// same id or the same address but not both is stale (a rebuilt host, a new
// address) and is removed first ("replaced"). The node joins as a voter while
// the cluster has fewer than MaxVoters voters, else as a non-voter. The
// replicated server table learns the node's addresses in the same call.
// Called on a follower, the join is forwarded to the leader.
func (n *Node) Join(ctx context.Context, id Identity) (JoinResult, error) {
	if id.ID == "" || id.RaftAddr == "" || id.HTTPAddr == "" || id.Name == "" {
		return JoinResult{}, fmt.Errorf("%w (and an imaging server name)", ErrBadJoin)
	}
	body, err := json.Marshal(id)
	if err != nil {
		return JoinResult{}, err
	}
	var res JoinResult
	err = n.onLeader(ctx, pathJoin, constBody(body), func() error {
		r, err := n.joinLocal(id)
		res = r
		return err
	}, &res)
	return res, err
}

func (n *Node) joinLocal(id Identity) (JoinResult, error) {
	if id.ID == "" || id.RaftAddr == "" || id.HTTPAddr == "" || id.Name == "" {
		return JoinResult{}, fmt.Errorf("%w (and an imaging server name)", ErrBadJoin)
	}
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return JoinResult{}, raftErr(err)
	}
	res := JoinResult{Action: "added"}
	voters := 0
	for _, s := range f.Configuration().Servers {
		sameID, sameAddr := string(s.ID) == id.ID, string(s.Address) == id.RaftAddr
		switch {
		case sameID && sameAddr:
			res = JoinResult{Action: "unchanged", Suffrage: suffrageName(s.Suffrage)}
		case sameID || sameAddr:
			if string(s.ID) == n.id {
				return JoinResult{}, fmt.Errorf("%w: id or raft address %s/%s belongs to the leader", ErrBadJoin, id.ID, id.RaftAddr)
			}
			n.logger.Info("removing stale server before join", "old_id", s.ID, "old_addr", s.Address, "id", id.ID, "addr", id.RaftAddr)
			if err := n.raft.RemoveServer(s.ID, 0, 0).Error(); err != nil {
				return JoinResult{}, raftErr(err)
			}
			res.Action = "replaced"
			continue
		}
		if s.Suffrage == raft.Voter && !(sameID && sameAddr) {
			voters++
		}
	}
	if res.Action != "unchanged" {
		var err error
		if voters < n.cfg.MaxVoters {
			res.Suffrage = SuffrageVoter
			err = n.raft.AddVoter(raft.ServerID(id.ID), raft.ServerAddress(id.RaftAddr), 0, 0).Error()
		} else {
			res.Suffrage = SuffrageNonvoter
			err = n.raft.AddNonvoter(raft.ServerID(id.ID), raft.ServerAddress(id.RaftAddr), 0, 0).Error()
		}
		if err != nil {
			return JoinResult{}, raftErr(err)
		}
		n.logger.Info("server joined", "id", id.ID, "name", id.Name, "addr", id.RaftAddr, "suffrage", res.Suffrage, "action", res.Action)
	}
	if err := n.upsertServer(id); err != nil {
		return JoinResult{}, err
	}
	if id.GossipAddr != "" {
		if _, err := n.ml.Join([]string{id.GossipAddr}); err != nil {
			n.logger.Debug("gossip join of new server failed; will retry", "addr", id.GossipAddr, "error", err)
		}
	}
	return res, nil
}

// upsertServer records a node's identity in the replicated server table.
func (n *Node) upsertServer(id Identity) error {
	b, err := fsm.Encode(fsm.CmdServerUpsert, &fsm.ServerUpsert{
		Header: fsm.Header{At: now()},
		Name:   id.Name, NodeID: id.ID, Rack: id.Rack,
		RaftAddr: id.RaftAddr, HTTPAddr: id.HTTPAddr, GossipAddr: id.GossipAddr, TFTPAddr: id.TFTPAddr,
		SyslogAddr: id.SyslogAddr,
	})
	if err != nil {
		return err
	}
	res, err := n.applyLocal(b)
	if err != nil {
		return err
	}
	return res.Error()
}

// Remove takes a node out of the Raft configuration for good (a decommission,
// not a restart) and unbinds it from its imaging server. Removing the leader
// transfers leadership first. A removed node shuts its Raft down; to come back
// it needs a wiped data dir.
func (n *Node) Remove(ctx context.Context, id string) error {
	if id == "" {
		return fmt.Errorf("%w: node id is required", ErrUnknownNode)
	}
	body, err := json.Marshal(map[string]string{"id": id})
	if err != nil {
		return err
	}
	return n.onLeader(ctx, pathRemove, constBody(body), func() error { return n.removeLocal(id) }, nil)
}

func (n *Node) removeLocal(id string) error {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return raftErr(err)
	}
	found := false
	for _, s := range f.Configuration().Servers {
		if string(s.ID) == id {
			found = true
		}
	}
	if !found {
		return fmt.Errorf("%w: %q", ErrUnknownNode, id)
	}
	if id == n.id {
		// The leader cannot remove itself cleanly: hand over and let the
		// caller's hold loop find the new leader.
		if err := n.raft.LeadershipTransfer().Error(); err != nil {
			return raftErr(err)
		}
		return fmt.Errorf("%w: leadership transferred before removing self", errRetry)
	}
	if err := n.raft.RemoveServer(raft.ServerID(id), 0, 0).Error(); err != nil {
		return raftErr(err)
	}
	n.logger.Info("server removed", "id", id)
	b, err := fsm.Encode(fsm.CmdServerRemove, &fsm.ServerRemove{Header: fsm.Header{At: now()}, NodeID: id})
	if err != nil {
		return err
	}
	res, err := n.applyLocal(b)
	if err != nil {
		return err
	}
	if err := res.Error(); err != nil && !errors.Is(err, fsm.ErrUnknownServer) {
		return err
	}
	return nil
}

// raftErr marks raft's leadership errors as retryable.
func raftErr(err error) error {
	if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) ||
		errors.Is(err, raft.ErrLeadershipTransferInProgress) {
		return fmt.Errorf("%w: %v", errRetry, err)
	}
	if errors.Is(err, raft.ErrRaftShutdown) {
		return ErrShutdown
	}
	return err
}

func suffrageName(s raft.ServerSuffrage) string {
	if s == raft.Voter {
		return SuffrageVoter
	}
	return SuffrageNonvoter
}
