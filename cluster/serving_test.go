package cluster

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/fsm"
)

// A node serves once it has caught up after its start, and stays serving;
// WaitApplied waits for an index the node reaches and gives up on one it
// does not.
func TestNode_ServingAndWaitApplied(t *testing.T) {
	tn := startNode(t, "srv1", "", "", true)
	waitLeader(t, tn)
	require.Eventually(t, tn.n.Serving, 10*time.Second, 10*time.Millisecond)

	res, err := tn.n.Apply(context.Background(), fsm.CmdImageUpsert, imageCmd("b2g"))
	require.NoError(t, err)
	require.NoError(t, res.Error())
	idx := tn.n.AppliedIndex()
	require.NoError(t, tn.n.WaitApplied(context.Background(), idx))

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, tn.n.WaitApplied(ctx, idx+1000), context.DeadlineExceeded)

	tn.stop()
	require.ErrorIs(t, tn.n.WaitApplied(context.Background(), idx+1000), ErrShutdown)
}
