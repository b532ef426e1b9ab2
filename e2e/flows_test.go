package e2e

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/api"
	"github.com/mozpool/mozpool/sim"
)

// Limits for whole flows, generous multiples of their scaled length: a
// b2g imaging is ≈ 5 s at this scale, a self-test ≈ 2 s.
const (
	flowTimeout     = 60 * time.Second
	selfTestTimeout = 60 * time.Second
)

// b2gBootConfig is the boot config the b2g second stage reads.
const b2gBootConfig = `{"b2gbase":"http://x"}`

// selfTestPath is what a self-test with a self-test PXE config goes
// through (docs/design.md#the-device-machine).
var selfTestPath = []string{"start_self_test", "pxe_power_cycling", "pxe_booting", "mobile_init_started", "self_test_running", "ready"}

// posted reports whether board posted ev at or after since.
func posted(b sim.BoardState, ev string, since time.Time) bool {
	for _, p := range b.Events {
		if p.Event == ev && !p.At.Before(since) {
			return true
		}
	}
	return false
}

// testInitialSelfTest: boards new to the inventory self-test by network
// boot and all become ready.
func testInitialSelfTest(t *testing.T, l *lab) {
	for _, dev := range l.boards() {
		l.waitState(t, dev, "ready", selfTestTimeout)
	}
	for _, dev := range l.boards() {
		// The log store files lines a moment after the state changes.
		var log []api.LogEntry
		require.Eventually(t, func() bool {
			log = l.logSince(dev, 0)
			return inOrder(enteredStates(log), selfTestPath...)
		}, 10*time.Second, poll, "%s: want the states %v in this order; %s", dev, selfTestPath,
			lazy(func() string { return fmt.Sprint("entered ", enteredStates(log)) }))
		require.True(t, logHas(log, "inventory", "registered from inventory"), "%s: registration logged", dev)

		// The hardware really did it: the board fetched its PXE file over
		// TFTP and ran the self-test second stage.
		b := l.sim.Board(dev)
		require.GreaterOrEqual(t, b.TFTPFetches, 1, "%s fetched a PXE file", dev)
		require.True(t, posted(b, "self_test_running", time.Time{}), "%s posted self_test_running", dev)
		require.True(t, posted(b, "self_test_ok", time.Time{}), "%s posted self_test_ok", dev)
		require.GreaterOrEqual(t, l.actuations(t, dev), 2, "%s was power-cycled through its relay", dev)
		require.Empty(t, l.image(t, dev), "%s: a self-test clears the current image", dev)
	}
}

// testB2GImage: please_image b2g sent to a node that does not own the
// board runs the image flow (docs/design.md#the-device-machine) on the owner.
func testB2GImage(t *testing.T, l *lab, dev string) {
	mark := l.logMark(t, dev)
	start := time.Now()
	require.Equal(t, http.StatusOK, event(t, l.nonOwner(t, dev), dev, "please_image", imageArgs("b2g", b2gBootConfig)))
	log := l.waitFlow(t, dev, mark, flowTimeout,
		"start_pxe_boot", "pxe_power_cycling", "pxe_booting", "mobile_init_started",
		"b2g_downloading", "b2g_extracting", "sut_verifying", "sut_sdcard_verifying",
		"operation_complete", "ready")
	require.True(t, logHas(log, "statemachine", "imaging with b2g"))
	l.waitLogLine(t, dev, mark, "bmm", "writing pxe config "+pxeB2G+" succeeded") // by the owner
	l.waitLogLine(t, dev, mark, "sut", "SUT agent verification succeeded", "SD card check succeeded")

	require.Eventually(t, func() bool {
		d := l.details(dev)
		return ptrString(d.Image) == "b2g" && ptrString(d.BootConfig) == b2gBootConfig
	}, 5*time.Second, poll, "details show image b2g with the boot config")

	b := l.sim.Board(dev)
	require.Equal(t, "b2g", b.SDImage)
	require.Equal(t, "running_b2g", b.Phase)
	for _, ev := range []string{"mobile_init_started", "b2g_downloading", "b2g_extracting", "b2g_rebooting"} {
		require.True(t, posted(b, ev, start), "%s posted %s", dev, ev)
	}
}

// testAndroidImage: the android flow, which Mozpool's own fake board
// never finished (its android second stage hung after the first event).
func testAndroidImage(t *testing.T, l *lab, dev string) {
	mark := l.logMark(t, dev)
	require.Equal(t, http.StatusOK, event(t, l.nonOwner(t, dev), dev, "please_image", imageArgs("android", "")))
	l.waitFlow(t, dev, mark, flowTimeout,
		"start_pxe_boot", "pxe_power_cycling", "pxe_booting", "mobile_init_started",
		"android_downloading", "android_extracting", "sut_verifying", "sut_sdcard_verifying",
		"operation_complete", "ready")
	l.waitLogLine(t, dev, mark, "bmm", "writing pxe config "+pxeAndroid+" succeeded")
	require.Eventually(t, func() bool { return ptrString(l.details(dev).Image) == "android" },
		5*time.Second, poll, "details show image android")
	b := l.sim.Board(dev)
	require.Equal(t, "android", b.SDImage)
	require.Equal(t, "running_android", b.Phase)
}

// testReboot: please_power_cycle is a plain reboot and ping.
func testReboot(t *testing.T, l *lab, dev string) {
	mark := l.logMark(t, dev)
	a0 := l.actuations(t, dev)
	fetches := l.sim.Board(dev).TFTPFetches
	require.Equal(t, http.StatusOK, event(t, l.nonOwner(t, dev), dev, "please_power_cycle", nil))
	l.waitFlow(t, dev, mark, flowTimeout,
		"pc_power_cycling", "pc_rebooting", "pc_pinging", "operation_complete", "ready")
	l.waitLogLine(t, dev, mark, "bmm", "clearing pxe config succeeded", "power-cycling via", "power cycle succeeded", ": ok")
	require.GreaterOrEqual(t, l.actuations(t, dev), a0+2, "the relay turned the board off and on")
	b := l.sim.Board(dev)
	require.Equal(t, fetches, b.TFTPFetches, "no PXE file: the board booted its SD card")
	require.True(t, b.Powered)
}

// testMaintenance: maintenance mode ignores please_image and
// please_power_cycle and leaves through please_self_test.
func testMaintenance(t *testing.T, l *lab, dev string) {
	via := l.nonOwner(t, dev)
	mark := l.logMark(t, dev)
	require.Equal(t, http.StatusOK, event(t, via, dev, "please_start_maintenance", nil))
	l.waitFlow(t, dev, mark, flowTimeout,
		"start_maintenance", "pxe_power_cycling", "pxe_booting", "mobile_init_started", "maintenance_mode")
	require.Equal(t, sim.PhaseMaintenance, l.sim.Board(dev).Phase)

	mark = l.logMark(t, dev)
	a0 := l.actuations(t, dev)
	require.Equal(t, http.StatusOK, event(t, via, dev, "please_image", imageArgs("b2g", b2gBootConfig)))
	require.Equal(t, http.StatusOK, event(t, via, dev, "please_power_cycle", nil))
	require.Equal(t, "maintenance_mode", l.state(dev))
	require.Eventually(t, func() bool {
		log := l.logSince(dev, mark)
		return logHas(log, "statemachine", "ignored event please_image in state maintenance_mode") &&
			logHas(log, "statemachine", "ignored event please_power_cycle in state maintenance_mode")
	}, 5*time.Second, poll, "the ignored events are logged")
	require.Empty(t, enteredStates(l.logAfter(t, dev, mark)), "the ignored events changed nothing")
	require.Equal(t, a0, l.actuations(t, dev), "the ignored events did not touch the relay")

	require.Equal(t, http.StatusOK, event(t, via, dev, "please_self_test", nil))
	l.waitFlow(t, dev, mark, selfTestTimeout, selfTestPath...)
}
