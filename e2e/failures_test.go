package e2e

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

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
	l.waitState(t, dev, "ready", selfTestTimeout)
	mark := l.logMark(t, dev)
	require.Equal(t, http.StatusOK, event(t, l.nonOwner(t, dev), dev, "please_image", imageArgs("b2g", b2gBootConfig)))

	var want []string
	for range 4 {
		want = append(want, "pxe_power_cycling", "pxe_booting", "mobile_init_started", "b2g_downloading")
	}
	want = append(want, "failed_b2g_downloading")
	want = append(want, selfTestPath...)
	log := l.waitFlow(t, dev, mark, 2*flowTimeout, want...)
	require.True(t, logHas(log, "statemachine", "device has failed: failed_b2g_downloading"))

	downloads := 0
	for _, s := range enteredStates(log) {
		if s == "failed_b2g_downloading" {
			break
		}
		if s == "b2g_downloading" {
			downloads++
		}
	}
	require.Equal(t, 4, downloads, "b2g_downloading entered 4 times before failing: %v", enteredStates(log))
	b := l.sim.Board(dev)
	require.GreaterOrEqual(t, b.Failures, 4, "the board crashed in each download")
	require.Empty(t, l.image(t, dev), "the self-test cleared the image")
}

// testNoRelayInfo: without relay_info a power cycle fails
// at once into failed_power_cycling, which does not self-test.
func testNoRelayInfo(t *testing.T, l *lab, dev string) {
	// Its first self-test already fails that way.
	l.waitState(t, dev, "failed_power_cycling", selfTestTimeout)

	via := l.nonOwner(t, dev)
	mark := l.logMark(t, dev)
	require.Equal(t, http.StatusOK, stateChange(t, via, dev, "failed_power_cycling", "troubleshooting"))
	require.Equal(t, http.StatusOK, event(t, via, dev, "please_power_cycle", nil))
	log := l.waitFlow(t, dev, mark, flowTimeout, "troubleshooting", "pc_power_cycling", "failed_power_cycling")
	require.True(t, logHas(log, "statemachine", "no relay_info"))
	require.True(t, logHas(log, "statemachine", "device has failed: failed_power_cycling"))
	require.Never(t, func() bool { return l.leftState(dev, "failed_power_cycling") }, quiet, poll, "failed_power_cycling is left")
	require.NotContains(t, enteredStates(l.logAfter(t, dev, mark)), "start_self_test", "no automatic self-test")
}
