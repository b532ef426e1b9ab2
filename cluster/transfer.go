package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/hashicorp/raft"
)

const pathTransfer = "/_cluster/transfer-leader"

// TransferLeadership has the leader hand its leadership to the voter with
// node id id, or to the most up-to-date voter when id is "". It returns
// once the leader has stepped down (the new leader is elected right
// after). Asking the leader to transfer to itself changes nothing.
func (n *Node) TransferLeadership(ctx context.Context, id string) error {
	body, err := json.Marshal(map[string]string{"id": id})
	if err != nil {
		return err
	}
	return n.onLeader(ctx, pathTransfer, constBody(body), func() error { return n.transferLocal(id) }, nil)
}

func (n *Node) transferLocal(id string) error {
	if id == n.id {
		return nil
	}
	var target *raft.Server
	if id != "" {
		f := n.raft.GetConfiguration()
		if err := f.Error(); err != nil {
			return raftErr(err)
		}
		for _, s := range f.Configuration().Servers {
			if string(s.ID) == id {
				target = &s
				break
			}
		}
		switch {
		case target == nil:
			return fmt.Errorf("%w: %q", ErrUnknownNode, id)
		case target.Suffrage != raft.Voter:
			return fmt.Errorf("%w: %q is not a voter", ErrUnknownNode, id)
		}
	}
	// Raft gives the target one election timeout to win; on a busy
	// machine it may not, and leadership stays here: try again, a few
	// times, then say so (a retryable error, not a failure).
	const attempts = 3
	var err error
	for range attempts {
		if target == nil {
			err = n.raft.LeadershipTransfer().Error()
		} else {
			err = n.raft.LeadershipTransferToServer(target.ID, target.Address).Error()
		}
		if err == nil {
			n.logger.Info("leadership transferred on request", "to", id)
			return nil
		}
		if !strings.Contains(err.Error(), "leadership transfer timeout") || n.raft.State() != raft.Leader {
			return raftErr(err)
		}
		n.logger.Warn("leadership transfer timed out; trying again", "to", id)
	}
	return fmt.Errorf("%w: %d attempts: %v", ErrTransferTimeout, attempts, err)
}

// transferHandler serves pathTransfer on the leader.
func (n *Node) transferHandler(b []byte) (any, error) {
	var req struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(b, &req); err != nil {
		return nil, fmt.Errorf("%w: %v", errBadRequest, err)
	}
	return struct{}{}, n.transferLocal(req.ID)
}
