package cluster

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"
)

// A new data dir gets the WAL unless bolt is asked for; a data dir keeps
// the store it holds, entries and stable values included; asking for the
// other one, or holding both, is an error.
func TestOpenRaftStore(t *testing.T) {
	open := func(dir, want string) (raftStore, string, error) {
		return openRaftStore(dir, want, hclog.NewNullLogger())
	}
	for _, tc := range []struct{ want, kind, file string }{
		{"", RaftLogWAL, walDir},
		{RaftLogWAL, RaftLogWAL, walDir},
		{RaftLogBolt, RaftLogBolt, boltFile},
	} {
		dir := t.TempDir()
		s, kind, err := open(dir, tc.want)
		require.NoError(t, err, tc.want)
		require.Equal(t, tc.kind, kind)
		_, err = os.Stat(filepath.Join(dir, tc.file))
		require.NoError(t, err, "the store's file or dir")
		require.NoError(t, s.StoreLogs([]*raft.Log{{Index: 1, Term: 1, Type: raft.LogCommand, Data: []byte("x")}}))
		require.NoError(t, s.SetUint64([]byte("CurrentTerm"), 7))
		require.NoError(t, s.Close())

		// Reopened without a preference: the same store, with its data.
		s, kind, err = open(dir, "")
		require.NoError(t, err)
		require.Equal(t, tc.kind, kind)
		last, err := s.LastIndex()
		require.NoError(t, err)
		require.Equal(t, uint64(1), last)
		term, err := s.GetUint64([]byte("CurrentTerm"))
		require.NoError(t, err)
		require.Equal(t, uint64(7), term)
		require.NoError(t, s.Close())

		other := RaftLogBolt
		if tc.kind == RaftLogBolt {
			other = RaftLogWAL
		}
		_, _, err = open(dir, other)
		require.ErrorContains(t, err, "keeps the store it was created with")
	}

	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, boltFile), nil, 0o600))
	require.NoError(t, os.Mkdir(filepath.Join(dir, walDir), 0o700))
	_, _, err := open(dir, "")
	require.ErrorContains(t, err, "holds both")
}
