package cluster

import (
	"context"
	"fmt"
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

// A follower restarted behind the leader serves only once it has applied
// what the leader had committed when it came back, not as soon as it has
// applied the first batch the leader sends it (its own commit index rises
// only as far as the entries it has received).
func TestNode_RestartedFollowerServesOnlyOnceCaughtUpWithTheLeader(t *testing.T) {
	skipShort(t)
	nodes := startCluster(t, 3)
	leader := waitLeader(t, nodes...)
	back := followers(nodes, leader)[0]
	back.stop()
	ctx := context.Background()
	for i := range 1500 {
		res, err := leader.n.Apply(ctx, fsm.CmdImageUpsert, imageCmd(fmt.Sprintf("img-%d", i)))
		require.NoError(t, err)
		require.NoError(t, res.Error())
	}
	target := leader.n.AppliedIndex()

	back = back.restart()
	require.Eventually(t, back.n.Serving, 30*time.Second, time.Millisecond)
	require.GreaterOrEqual(t, back.n.AppliedIndex(), target, "serving before it had applied what was committed at its restart")
	require.True(t, hasImage(back.fsm, "img-1499"))
}
