package e2e

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/lifeguard"
)

// knownBugRestartReplaysActions: when a node restarts, its lifeguard
// executor performs the entry actions of the historical states it sees
// while the FSM replays the Raft log (PXE writes, relay power cycles), so
// boards that were idle in ready are power-cycled, and may then fail the
// health check of their current ready state and self-test. While true,
// the idle-board check below reports instead of failing. Set it to false
// once the executor waits for the replay before acting.
const knownBugRestartReplaysActions = false

// testKillRackOwner is the crash test: killing the node that owns a
// rack freezes that rack's boards, and only those; when the node comes
// back its boards resume from the replicated state. working is on rack
// 1, frozen on rack 2; the other boards of rack 2 must be ready and idle.
func testKillRackOwner(t *testing.T, l *lab, working, frozen string) {
	c := l.cluster
	require.Equal(t, 1, l.rackOf(t, working))
	require.Equal(t, 2, l.rackOf(t, frozen))
	idle := map[string]int{} // the other boards of rack 2 -> relay actuations
	for s := 1; s <= boardsPerRack; s++ {
		if dev := boardName(2, s); dev != frozen {
			l.waitState(t, dev, lifeguard.StateReady, selfTestTimeout)
			idle[dev] = l.actuations(t, dev)
		}
	}
	l.waitState(t, working, lifeguard.StateReady, selfTestTimeout)
	l.waitState(t, frozen, lifeguard.StateReady, selfTestTimeout)

	owner := l.ownerOf(t, frozen)
	owner.Kill()
	c.WaitLeader()

	// The frozen board's power cycle is accepted by a live node: the
	// state is replicated, but only the dead owner could act on it.
	markF := l.logMark(t, frozen)
	a0 := l.actuations(t, frozen)
	require.Equal(t, http.StatusOK, event(t, c.Nodes[0], frozen, lifeguard.EventPleasePowerCycle, nil))
	l.waitState(t, frozen, lifeguard.StatePCPowerCycling, 10*time.Second)

	markW := l.logMark(t, working)
	require.Equal(t, http.StatusOK, event(t, c.Nodes[2], working, lifeguard.EventPleaseImage, imageArgs("b2g", b2gBootConfig)))

	// Several pc_power_cycling timeouts pass with no timeout applied and
	// no relay command, while rack 1 keeps working.
	require.Never(t, func() bool {
		return l.leftState(frozen, lifeguard.StatePCPowerCycling) || l.actuations(t, frozen) != a0
	}, 2*quiet, poll, "a board of the dead node's rack moved")
	l.waitFlow(t, working, markW, flowTimeout,
		lifeguard.StatePXEPowerCycling, lifeguard.StatePXEBooting, lifeguard.StateMobileInitStarted,
		lifeguard.StateB2GDownloading, lifeguard.StateB2GExtracting, lifeguard.StateSUTVerifying,
		lifeguard.StateSUTSDCardVerifying, lifeguard.StateOperationComplete, lifeguard.StateReady)
	l.waitState(t, frozen, lifeguard.StatePCPowerCycling, time.Second)
	require.Equal(t, a0, l.actuations(t, frozen))

	// The owner comes back and picks the board up where the log left it.
	c.Restart(owner)
	c.WaitLeader()
	l.waitFlow(t, frozen, markF, flowTimeout,
		lifeguard.StatePCPowerCycling, lifeguard.StatePCRebooting, lifeguard.StatePCPinging,
		lifeguard.StateOperationComplete, lifeguard.StateReady)
	require.GreaterOrEqual(t, l.actuations(t, frozen), a0+2, "the restarted owner power-cycled the board")

	t.Run("IdleBoardsUntouched", func(t *testing.T) {
		var touched []string
		for dev, n := range idle {
			if got := l.actuations(t, dev); got != n {
				touched = append(touched, fmt.Sprintf("%s: %d relay commands, now %s", dev, got-n, l.state(dev)))
			}
		}
		if knownBugRestartReplaysActions && len(touched) > 0 {
			t.Skipf("known bug, the restarted executor acted on replayed states: %v", touched)
		}
		require.Empty(t, touched, "the restart touched boards that were idle in ready")
	})
}
