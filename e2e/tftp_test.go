package e2e

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/api"
	"github.com/mozpool/mozpool/daemon/daemontest"
	"github.com/mozpool/mozpool/fsm"
	"github.com/mozpool/mozpool/lifeguard"
	"github.com/mozpool/mozpool/sim"
)

// TestTFTPFault: rack 1's imaging server's TFTP does not answer its boards
// for ten simulated minutes from the start, so their first self-tests
// cannot fetch the PXE file. The boards say so in their syslog; from the
// third, the server's PXE/TFTP is suspect (cluster status), the boards
// wait in pxe_wait uncounted, none is retired, and once TFTP answers again
// every one of them self-tests and reaches ready. The other racks are
// untouched.
func TestTFTPFault(t *testing.T) {
	skipShort(t)
	t.Parallel()
	server := daemontest.NodeName(1)
	l := startLab(t, labOptions{TFTPFault: &sim.TFTPFault{Server: server, For: 10 * time.Minute}})
	rack1 := []string{}
	for s := 1; s <= l.perRack; s++ {
		rack1 = append(rack1, boardName(1, s))
	}

	require.Eventually(t, func() bool {
		st, err := l.logNode().Client().ClusterStatus(t.Context())
		return err == nil && slices.ContainsFunc(st.SuspectTFTPServers, func(s api.SuspectTFTPServer) bool { return s.Server == server })
	}, selfTestTimeout, poll, "%s's PXE/TFTP never became suspect", server)
	l.waitState(t, boardName(2, 1), lifeguard.StateReady, selfTestTimeout)

	for _, dev := range rack1 {
		l.waitState(t, dev, lifeguard.StateReady, selfTestTimeout)
	}
	st, err := l.logNode().Client().ClusterStatus(t.Context())
	require.NoError(t, err)
	require.Empty(t, st.SuspectTFTPServers, "TFTP serves again")

	// No board was retired, and fewer than SharedFaultBoards have the
	// fetch failure in their history.
	n := l.logNode()
	withFetchFailure := 0
	n.FSM.Read(func(s *fsm.State) {
		for _, dev := range rack1 {
			d := s.Devices[dev]
			for _, o := range d.History {
				if o.Fail == "pxe_fetch" {
					withFetchFailure++
					break
				}
			}
		}
	})
	require.Less(t, withFetchFailure, fsm.SharedFaultBoards)
	for _, dev := range rack1 {
		log, err := n.Client().DeviceLog(t.Context(), dev, 0)
		require.NoError(t, err)
		for _, e := range log {
			require.False(t, strings.HasPrefix(e.Message, "device has failed"), "%s: %s", dev, e.Message)
		}
	}
}
