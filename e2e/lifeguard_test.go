package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/api"
	"github.com/mozpool/mozpool/lifeguard"
)

// testLockedOut: a forced change to locked_out is a
// compare-and-set; a locked_out board ignores please_* and its relay is
// left alone; forcing it back to ready runs a health check.
func testLockedOut(t *testing.T, l *lab, dev string) {
	via := l.nonOwner(t, dev)
	require.Equal(t, http.StatusOK, stateChange(t, via, dev, lifeguard.StateReady, lifeguard.StateLockedOut))
	require.Equal(t, http.StatusConflict, stateChange(t, via, dev, lifeguard.StateReady, lifeguard.StateLockedOut), "the board is no longer ready")
	l.waitState(t, dev, lifeguard.StateLockedOut, 10*time.Second) // every node has applied it

	mark := l.logMark(t, dev)
	a0 := l.actuations(t, dev)
	require.Equal(t, http.StatusOK, event(t, via, dev, lifeguard.EventPleaseImage, imageArgs("b2g", b2gBootConfig)))
	require.Equal(t, http.StatusOK, event(t, l.ownerOf(t, dev), dev, lifeguard.EventPleaseSelfTest, nil))
	require.Equal(t, http.StatusOK, event(t, via, dev, lifeguard.EventPleasePowerCycle, nil))
	require.Never(t, func() bool { return l.leftState(dev, lifeguard.StateLockedOut) || l.actuations(t, dev) != a0 },
		quiet, poll, "a %s board moved or its relay was used", lifeguard.StateLockedOut)
	log := l.logAfter(t, dev, mark)
	for _, ev := range []lifeguard.Event{lifeguard.EventPleaseImage, lifeguard.EventPleaseSelfTest, lifeguard.EventPleasePowerCycle} {
		require.True(t, logHas(log, "statemachine", ignoredLine(ev, lifeguard.StateLockedOut)), "%s ignored", ev)
	}
	require.Empty(t, enteredStates(log))

	mark = l.logMark(t, dev)
	require.Equal(t, http.StatusOK, stateChange(t, via, dev, lifeguard.StateLockedOut, lifeguard.StateReady))
	l.waitState(t, dev, lifeguard.StateReady, 10*time.Second)
	require.Eventually(t, func() bool {
		log := l.logSince(dev, mark)
		return logHas(log, "bmm", "ping ") || logHas(log, "sut", "SUT agent verification")
	}, 10*time.Second, poll, "a health check follows the change to ready")
	require.Never(t, func() bool { return l.leftState(dev, lifeguard.StateReady) }, quiet, poll, "the health check passes")
}

// pingFailed reports whether log shows a ping that found no board.
func pingFailed(log []api.LogEntry) bool {
	for _, e := range log {
		if e.Source == "bmm" && strings.HasPrefix(e.Message, "ping ") &&
			(strings.Contains(e.Message, "no answer") || strings.Contains(e.Message, "failed")) {
			return true
		}
	}
	return false
}

// testStopsAnswering: a ready board that no longer answers
// its health check goes to self-test, which power-cycles it back to life.
func testStopsAnswering(t *testing.T, l *lab, dev string) {
	via := l.nonOwner(t, dev)
	// Behind lifeguard's back: the BMM route, proxied to the owner.
	status, body := do(t, http.MethodGet, via.URL+"/api/device/"+dev+"/power-off/", nil)
	require.Equal(t, http.StatusOK, status, "%s", body)
	require.Eventually(t, func() bool { return !l.sim.Board(dev).Powered }, 10*time.Second, poll, "the board lost power")
	require.Equal(t, lifeguard.StateReady, l.state(dev), "lifeguard has not noticed yet")

	// Instead of waiting for the ready timeout, force the health check.
	mark := l.logMark(t, dev)
	require.Equal(t, http.StatusOK, stateChange(t, via, dev, lifeguard.StateReady, lifeguard.StateReady))
	l.waitFlow(t, dev, mark, selfTestTimeout, selfTestAfterFailurePath...)
	require.Eventually(t, func() bool { return pingFailed(l.logSince(dev, mark)) },
		10*time.Second, poll, "the health check's failed ping is logged")
	require.True(t, l.sim.Board(dev).Powered, "the self-test's power cycle turned the board back on")
}
