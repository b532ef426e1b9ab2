package cluster

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	wal "github.com/hashicorp/raft-wal"
)

// Raft log stores (Config.RaftLog). A data dir keeps the store it was
// created with.
const (
	// RaftLogWAL is hashicorp/raft-wal: segment files appended with one
	// fdatasync per batch, in DATA/raft-wal/. The default for a new data
	// dir.
	RaftLogWAL = "wal"
	// RaftLogBolt is hashicorp/raft-boltdb: one bolt file, DATA/raft.db,
	// whose every commit costs two fdatasyncs (the pages, then the meta
	// page). Data dirs created before the WAL keep it.
	RaftLogBolt = "bolt"
)

const (
	boltFile = "raft.db"
	walDir   = "raft-wal"
	// walSegmentSize is the size of a WAL segment file (preallocated).
	// raft-wal's default, 64 MiB, holds some 200,000 of this cluster's
	// entries while snapshots compact the log every few thousand; 8 MiB
	// still holds tens of thousands and keeps a node's (and a test run's
	// many nodes') preallocated disk small.
	walSegmentSize = 8 << 20
)

// raftStore is the Raft log and stable store of a node.
type raftStore interface {
	raft.LogStore
	raft.StableStore
	io.Closer
}

// openRaftStore opens the data dir's Raft store: the one it already holds,
// or for a new data dir the one want names ("" is RaftLogWAL). Asking for
// another store than the one a data dir holds is an error: the log would
// seem empty and the node would have forgotten its term, its vote and the
// entries it acknowledged.
func openRaftStore(dir, want string, logger hclog.Logger) (raftStore, string, error) {
	has := func(name string) bool {
		_, err := os.Stat(filepath.Join(dir, name))
		return err == nil
	}
	kind := want
	switch {
	case has(boltFile) && has(walDir):
		return nil, "", fmt.Errorf("data dir %s holds both %s and %s/: remove the one the node does not use", dir, boltFile, walDir)
	case has(boltFile):
		kind = RaftLogBolt
	case has(walDir):
		kind = RaftLogWAL
	case kind == "":
		kind = RaftLogWAL
	}
	if want != "" && want != kind {
		return nil, "", fmt.Errorf("data dir %s holds a %s Raft log, not %s: a data dir keeps the store it was created with", dir, kind, want)
	}
	switch kind {
	case RaftLogBolt:
		s, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, boltFile)})
		if err != nil {
			return nil, "", fmt.Errorf("open %s: %w", boltFile, err)
		}
		return s, kind, nil
	case RaftLogWAL:
		d := filepath.Join(dir, walDir)
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, "", err
		}
		w, err := wal.Open(d, wal.WithLogger(logger.Named("wal")), wal.WithSegmentSize(walSegmentSize))
		if err != nil {
			return nil, "", fmt.Errorf("open %s: %w", walDir, err)
		}
		return w, kind, nil
	}
	return nil, "", errors.New("raft log store must be " + RaftLogWAL + " or " + RaftLogBolt + ", not " + want)
}
