package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/hashicorp/raft"

	"github.com/mozpool/mozpool/fsm"
)

// ErrNoSnapshot is returned by Backup when no snapshot can be made or found.
var ErrNoSnapshot = errors.New("no snapshot available")

// Backup takes a snapshot of this node's state (or, when nothing was
// applied since the last one, opens that) and returns its metadata and
// contents. The caller closes the reader. Any node can be backed up: each
// holds the whole replicated state up to its applied index.
func (n *Node) Backup() (*raft.SnapshotMeta, io.ReadCloser, error) {
	f := n.raft.Snapshot()
	if err := f.Error(); err == nil {
		return f.Open()
	} else if !errors.Is(err, raft.ErrNothingNewToSnapshot) {
		return nil, nil, fmt.Errorf("snapshot: %w", err)
	}
	metas, err := n.snaps.List()
	if err != nil {
		return nil, nil, fmt.Errorf("list snapshots: %w", err)
	}
	if len(metas) == 0 {
		return nil, nil, ErrNoSnapshot
	}
	return n.snaps.Open(metas[0].ID)
}

// Restore replaces the whole cluster's state with a backup: the leader
// installs it as a snapshot and every follower follows. It is for disaster
// recovery (a state lost by operator error); everything written after the
// backup is gone. Called on a follower, it is forwarded to the leader.
func (n *Node) Restore(ctx context.Context, data []byte) error {
	if len(data) == 0 {
		return fmt.Errorf("%w: empty", ErrBadBackup)
	}
	return n.onLeader(ctx, pathRestore, constBody(data), func() error { return n.restoreLocal(data) }, nil)
}

func (n *Node) restoreLocal(data []byte) error {
	if err := fsm.ValidateSnapshot(bytes.NewReader(data)); err != nil {
		return fmt.Errorf("%w: %w: not a backup of this cluster's state: %v", errBadRequest, ErrBadBackup, err)
	}
	// raft installs the backup at an index past everything applied here;
	// the index the backup was taken at means nothing in this log.
	data, err := fsm.WithoutIndex(data)
	if err != nil {
		return fmt.Errorf("%w: %w: %v", errBadRequest, ErrBadBackup, err)
	}
	meta := &raft.SnapshotMeta{Version: raft.SnapshotVersionMax, Size: int64(len(data))}
	if err := n.raft.Restore(meta, bytes.NewReader(data), time.Minute); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
			return fmt.Errorf("%w: %v", errRetry, err)
		}
		return fmt.Errorf("restore: %w", err)
	}
	n.logger.Warn("cluster state restored from a backup", "bytes", len(data))
	return nil
}
