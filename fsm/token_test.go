package fsm_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/fsm"
)

func TestApply_Tokens(t *testing.T) {
	f := testFSM(t)
	h := fsm.Header{At: t0, Actor: "root"}
	hash := fsm.HashToken("s3cret")

	var tok fsm.Token
	res := applyOK(t, f, 1, fsm.CmdTokenCreate, fsm.TokenCreate{Header: h, Name: "alice", Role: fsm.RoleUser, Hash: hash})
	require.NoError(t, res.Decode(&tok))
	require.Equal(t, fsm.Token{Name: "alice", Role: fsm.RoleUser, Created: t0}, tok, "the result carries no hash")
	f.Read(func(s *fsm.State) {
		require.Equal(t, "alice", s.TokenByHash(hash).Name)
		require.Nil(t, s.TokenByHash(fsm.HashToken("other")))
		require.Equal(t, fsm.PolicyOpen, s.EffectivePolicy())
	})

	bad := []struct {
		name string
		cmd  fsm.TokenCreate
		err  error
	}{
		{"duplicate name", fsm.TokenCreate{Header: h, Name: "alice", Role: fsm.RoleUser, Hash: fsm.HashToken("x")}, fsm.ErrExists},
		{"duplicate secret", fsm.TokenCreate{Header: h, Name: "bob", Role: fsm.RoleUser, Hash: hash}, fsm.ErrExists},
		{"no name", fsm.TokenCreate{Header: h, Role: fsm.RoleUser, Hash: fsm.HashToken("y")}, fsm.ErrInvalid},
		{"name with @", fsm.TokenCreate{Header: h, Name: "anonymous@1.2.3.4", Role: fsm.RoleUser, Hash: fsm.HashToken("y")}, fsm.ErrInvalid},
		{"long name", fsm.TokenCreate{Header: h, Name: strings.Repeat("a", 65), Role: fsm.RoleUser, Hash: fsm.HashToken("y")}, fsm.ErrInvalid},
		{"bad role", fsm.TokenCreate{Header: h, Name: "bob", Role: "root", Hash: fsm.HashToken("y")}, fsm.ErrInvalid},
		{"bad hash", fsm.TokenCreate{Header: h, Name: "bob", Role: fsm.RoleUser, Hash: "s3cret"}, fsm.ErrInvalid},
	}
	for i, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			require.ErrorIs(t, apply(t, f, uint64(2+i), fsm.CmdTokenCreate, tc.cmd).Error(), tc.err)
		})
	}
	next := uint64(2 + len(bad))

	applyOK(t, f, next, fsm.CmdSetPolicy, fsm.SetPolicy{Header: h, Policy: fsm.PolicyStrict})
	require.ErrorIs(t, apply(t, f, next+1, fsm.CmdSetPolicy, fsm.SetPolicy{Header: h, Policy: "closed"}).Error(), fsm.ErrInvalid)

	// Tokens and the policy survive a snapshot.
	g := restore(t, snapshotBytes(t, f))
	g.Read(func(s *fsm.State) {
		require.Equal(t, fsm.PolicyStrict, s.EffectivePolicy())
		require.Equal(t, "alice", s.TokenByHash(hash).Name)
	})

	applyOK(t, f, next+2, fsm.CmdTokenRevoke, fsm.TokenRevoke{Header: h, Name: "alice"})
	f.Read(func(s *fsm.State) { require.Nil(t, s.TokenByHash(hash)) })
	require.ErrorIs(t, apply(t, f, next+3, fsm.CmdTokenRevoke, fsm.TokenRevoke{Header: h, Name: "alice"}).Error(), fsm.ErrUnknownToken)
}

// TestApply_ActorInLogs: every log line a write files names its actor.
func TestApply_ActorInLogs(t *testing.T) {
	f, rec := testFSMNotify(t)
	applyOK(t, f, 1, fsm.CmdInventorySync, fsm.InventorySync{Header: fsm.Header{At: t0}, Inventory: sampleInventory(), ShipIt: true})
	var dev string
	f.Read(func(s *fsm.State) {
		for name := range s.Devices {
			dev = name
			break
		}
	})
	rec.notes = nil
	applyOK(t, f, 2, fsm.CmdDeviceSetComments, fsm.DeviceSetComments{Header: fsm.Header{At: t0, Actor: "anonymous@10.1.2.3"}, Device: dev, Comments: "hi"})
	logs := rec.logs()
	require.NotEmpty(t, logs)
	for _, l := range logs {
		require.True(t, strings.HasSuffix(l.Message, " (by anonymous@10.1.2.3)"), l.Message)
	}
}
