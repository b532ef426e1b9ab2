package e2e

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/api"
	"github.com/mozpool/mozpool/lifeguard"
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
var selfTestPath = []lifeguard.State{
	lifeguard.StateStartSelfTest, lifeguard.StatePXEPowerCycling, lifeguard.StatePXEBooting,
	lifeguard.StateMobileInitStarted, lifeguard.StateSelfTestRunning, lifeguard.StateReady,
}

// selfTestAfterFailurePath is a self-test that follows a failure: the
// board is on probation until its clean health checks.
var selfTestAfterFailurePath = []lifeguard.State{
	lifeguard.StateStartSelfTest, lifeguard.StatePXEPowerCycling, lifeguard.StatePXEBooting,
	lifeguard.StateMobileInitStarted, lifeguard.StateSelfTestRunning, lifeguard.StateProbation,
}

// posted reports whether board posted ev at or after since.
func posted(b sim.BoardState, ev lifeguard.Event, since time.Time) bool {
	for _, p := range b.Events {
		if lifeguard.Event(p.Event) == ev && !p.At.Before(since) {
			return true
		}
	}
	return false
}

// testInitialSelfTest: boards new to the inventory self-test by network
// boot and all become ready.
func testInitialSelfTest(t *testing.T, l *lab) {
	for _, dev := range l.boards() {
		l.waitState(t, dev, lifeguard.StateReady, selfTestTimeout)
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
		require.True(t, posted(b, lifeguard.EventSelfTestRunning, time.Time{}), "%s posted %s", dev, lifeguard.EventSelfTestRunning)
		require.True(t, posted(b, lifeguard.EventSelfTestOK, time.Time{}), "%s posted %s", dev, lifeguard.EventSelfTestOK)
		require.GreaterOrEqual(t, l.actuations(t, dev), 2, "%s was power-cycled through its relay", dev)
		require.Empty(t, l.image(t, dev), "%s: a self-test clears the current image", dev)
	}
}

// testB2GImage: please_image b2g sent to a node that does not own the
// board runs the image flow (docs/design.md#the-device-machine) on the owner.
func testB2GImage(t *testing.T, l *lab, dev string) {
	mark := l.logMark(t, dev)
	start := time.Now()
	require.Equal(t, http.StatusOK, event(t, l.nonOwner(t, dev), dev, lifeguard.EventPleaseImage, imageArgs("b2g", b2gBootConfig)))
	log := l.waitFlow(t, dev, mark, flowTimeout,
		lifeguard.StateStartPXEBoot, lifeguard.StatePXEPowerCycling, lifeguard.StatePXEBooting,
		lifeguard.StateMobileInitStarted, lifeguard.StateB2GDownloading, lifeguard.StateB2GExtracting,
		lifeguard.StateSUTVerifying, lifeguard.StateSUTSDCardVerifying, lifeguard.StateOperationComplete,
		lifeguard.StateReady)
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
	for _, ev := range []lifeguard.Event{
		lifeguard.EventMobileInitStarted, lifeguard.EventB2GDownloading, lifeguard.EventB2GExtracting, lifeguard.EventB2GRebooting,
	} {
		require.True(t, posted(b, ev, start), "%s posted %s", dev, ev)
	}
}

// testAndroidImage: the android flow, which Mozpool's own fake board
// never finished (its android second stage hung after the first event).
func testAndroidImage(t *testing.T, l *lab, dev string) {
	mark := l.logMark(t, dev)
	require.Equal(t, http.StatusOK, event(t, l.nonOwner(t, dev), dev, lifeguard.EventPleaseImage, imageArgs("android", "")))
	l.waitFlow(t, dev, mark, flowTimeout,
		lifeguard.StateStartPXEBoot, lifeguard.StatePXEPowerCycling, lifeguard.StatePXEBooting,
		lifeguard.StateMobileInitStarted, lifeguard.StateAndroidDownloading, lifeguard.StateAndroidExtracting,
		lifeguard.StateSUTVerifying, lifeguard.StateSUTSDCardVerifying, lifeguard.StateOperationComplete,
		lifeguard.StateReady)
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
	require.Equal(t, http.StatusOK, event(t, l.nonOwner(t, dev), dev, lifeguard.EventPleasePowerCycle, nil))
	l.waitFlow(t, dev, mark, flowTimeout,
		lifeguard.StatePCPowerCycling, lifeguard.StatePCRebooting, lifeguard.StatePCPinging,
		lifeguard.StateOperationComplete, lifeguard.StateReady)
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
	require.Equal(t, http.StatusOK, event(t, via, dev, lifeguard.EventPleaseStartMaintenance, nil))
	l.waitFlow(t, dev, mark, flowTimeout,
		lifeguard.StateStartMaintenance, lifeguard.StatePXEPowerCycling, lifeguard.StatePXEBooting,
		lifeguard.StateMobileInitStarted, lifeguard.StateMaintenanceMode)
	require.Equal(t, sim.PhaseMaintenance, l.sim.Board(dev).Phase)

	mark = l.logMark(t, dev)
	a0 := l.actuations(t, dev)
	require.Equal(t, http.StatusOK, event(t, via, dev, lifeguard.EventPleaseImage, imageArgs("b2g", b2gBootConfig)))
	require.Equal(t, http.StatusOK, event(t, via, dev, lifeguard.EventPleasePowerCycle, nil))
	require.Equal(t, lifeguard.StateMaintenanceMode, l.state(dev))
	require.Eventually(t, func() bool {
		log := l.logSince(dev, mark)
		return logHas(log, "statemachine", ignoredLine(lifeguard.EventPleaseImage, lifeguard.StateMaintenanceMode)) &&
			logHas(log, "statemachine", ignoredLine(lifeguard.EventPleasePowerCycle, lifeguard.StateMaintenanceMode))
	}, 5*time.Second, poll, "the ignored events are logged")
	require.Empty(t, enteredStates(l.logAfter(t, dev, mark)), "the ignored events changed nothing")
	require.Equal(t, a0, l.actuations(t, dev), "the ignored events did not touch the relay")

	require.Equal(t, http.StatusOK, event(t, via, dev, lifeguard.EventPleaseSelfTest, nil))
	l.waitFlow(t, dev, mark, selfTestTimeout, selfTestPath...)
}
