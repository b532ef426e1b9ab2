package e2e

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/lifeguard"
	"github.com/mozpool/mozpool/sim"
)

// TestInjectedFailures runs a lab whose boards always crash while
// downloading b2g, and one board without power control.
func TestInjectedFailures(t *testing.T) {
	skipShort(t)
	t.Parallel()
	l := startLab(t, labOptions{
		Failures: sim.Failures{Downloading: 1, SelfTestOK: 1},
		NoRelay:  []string{"panda-nopower"},
	})
	t.Run("B2GDownloadFails", func(t *testing.T) { t.Parallel(); testDownloadFails(t, l, "panda-11") })
	t.Run("NoRelayInfo", func(t *testing.T) { t.Parallel(); testNoRelayInfo(t, l, "panda-nopower") })
}

// testDownloadFails: a board that never finishes
// downloading is re-PXE-booted on each b2g_downloading timeout; the 4th
// timeout retires it to failed_b2g_downloading, which self-tests.
func testDownloadFails(t *testing.T, l *lab, dev string) {
	l.waitState(t, dev, lifeguard.StateReady, selfTestTimeout)
	mark := l.logMark(t, dev)
	require.Equal(t, http.StatusOK, event(t, l.nonOwner(t, dev), dev, lifeguard.EventPleaseImage, imageArgs("b2g", b2gBootConfig)))

	var want []lifeguard.State
	for range 4 {
		want = append(want, lifeguard.StatePXEPowerCycling, lifeguard.StatePXEBooting,
			lifeguard.StateMobileInitStarted, lifeguard.StateB2GDownloading)
	}
	want = append(want, lifeguard.StateFailedB2GDownloading)
	want = append(want, selfTestAfterFailurePath...)
	log := l.waitFlow(t, dev, mark, 2*flowTimeout, want...)
	require.True(t, logHas(log, "statemachine", failedLine(lifeguard.StateFailedB2GDownloading)))

	downloads := 0
	for _, s := range enteredStates(log) {
		if s == lifeguard.StateFailedB2GDownloading {
			break
		}
		if s == lifeguard.StateB2GDownloading {
			downloads++
		}
	}
	require.Equal(t, 4, downloads, "%s entered 4 times before failing: %v", lifeguard.StateB2GDownloading, enteredStates(log))
	b := l.sim.Board(dev)
	require.GreaterOrEqual(t, b.Failures, 4, "the board crashed in each download")
	require.Empty(t, l.image(t, dev), "the self-test cleared the image")
}

// testNoRelayInfo: without relay_info a power cycle fails
// at once into failed_power_cycling, which does not self-test.
func testNoRelayInfo(t *testing.T, l *lab, dev string) {
	// Its first self-test already fails that way.
	l.waitState(t, dev, lifeguard.StateFailedPowerCycling, selfTestTimeout)

	via := l.nonOwner(t, dev)
	mark := l.logMark(t, dev)
	require.Equal(t, http.StatusOK, stateChange(t, via, dev, lifeguard.StateFailedPowerCycling, lifeguard.StateTroubleshooting))
	require.Equal(t, http.StatusOK, event(t, via, dev, lifeguard.EventPleasePowerCycle, nil))
	log := l.waitFlow(t, dev, mark, flowTimeout,
		lifeguard.StateTroubleshooting, lifeguard.StatePCPowerCycling, lifeguard.StateFailedPowerCycling)
	require.True(t, logHas(log, "statemachine", "no relay_info"))
	require.True(t, logHas(log, "statemachine", failedLine(lifeguard.StateFailedPowerCycling)))
	require.Never(t, func() bool { return l.leftState(dev, lifeguard.StateFailedPowerCycling) },
		quiet, poll, "%s is left", lifeguard.StateFailedPowerCycling)
	require.NotContains(t, enteredStates(l.logAfter(t, dev, mark)), lifeguard.StateStartSelfTest, "no automatic self-test")
}
