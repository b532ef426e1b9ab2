package lifeguard

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/fsm"
)

var (
	// selfTestPass runs a self-test from pxe_power_cycling to its
	// success; where it ends is the test's to check.
	selfTestPass = []flowStep{eventStep(EventPowerCycleOK, StatePXEBooting), eventStep(EventMobileInitStarted, StateMobileInitStarted),
		eventStep(EventSelfTestRunning, StateSelfTestRunning)}
	// imageFlakily images with b2g, the first net boot failing in u-boot.
	imageFlakily = concatSteps([]flowStep{pleaseB2G}, toPXEBooting, pxeAgain(toSDCardVerifying))
)

// lastOutcome is the newest entry of dev's history.
func lastOutcome(r *rig, dev string) fsm.Outcome {
	h := r.device(dev).History
	require.NotEmpty(r.t, h)
	return h[len(h)-1]
}

// A board whose net boot hangs now and then, recovering each time, is
// quarantined to failed_flapping at the end of the operation that shows
// the second episode, instead of being handed out.
func TestHealth_FlakyBoardQuarantined(t *testing.T) {
	r := newRig(t)
	r.toReady(pandaA)
	for i := 0; i < flapBootEpisodes-1; i++ {
		r.run(pandaA, imageFlakily...)
		r.run(pandaA, eventStep(EventSUTSDCardOK, StateReady))
		require.Equal(t, fsm.Outcome{At: r.at, Op: opImaging}, lastOutcome(r, pandaA))
	}
	r.run(pandaA, imageFlakily...)
	mark := r.mark()
	r.run(pandaA, eventStep(EventSUTSDCardOK, StateFailedFlapping))
	require.Equal(t, []State{StateOperationComplete, StateFailedFlapping}, r.entered(pandaA, mark))
	d := r.device(pandaA)
	// Per round: boot failed, boot ok, imaging ok.
	require.Len(t, d.History, 3*flapBootEpisodes)
	require.Equal(t, opBoot, d.History[0].Op)
	require.Equal(t, string(StatePXEBooting), d.History[0].Fail)
	require.Equal(t, 67, fsm.HealthScore(d.History))
	require.True(t, StateFailedFlapping.Failed())
	res, err := r.tryEvent(pandaA, EventPleaseImage, pleaseImageArgs("b2g", b2gBootConfig))
	require.NoError(t, err)
	require.True(t, res.Ignored, "a quarantined board is not imaged")
}

// Any other kind of failure quarantines on its third episode.
func TestHealth_FlakyDownloadQuarantined(t *testing.T) {
	r := newRig(t)
	r.toReady(pandaA)
	downloadFailsOnce := concatSteps([]flowStep{pleaseB2G}, toB2GDownloading, []flowStep{timeoutStep(StatePXEPowerCycling)}, toSDCardVerifying)
	for i := 0; i < flapEpisodes-1; i++ {
		r.run(pandaA, downloadFailsOnce...)
		r.run(pandaA, eventStep(EventSUTSDCardOK, StateReady))
	}
	r.run(pandaA, downloadFailsOnce...)
	r.run(pandaA, eventStep(EventSUTSDCardOK, StateFailedFlapping))
}

// A long outage (a relay board whose relays do not switch: the board never
// boots) is one episode, however many retries it takes: the board is not
// quarantined once it recovers.
func TestHealth_LongOutageIsOneEpisode(t *testing.T) {
	r := newRig(t)
	r.toReady(pandaA)
	r.run(pandaA, pleaseB2G)
	r.run(pandaA, toPXEBooting...)
	for i := 0; i < 2*flapEpisodes; i++ {
		r.run(pandaA, pxeAgain(toPXEBooting)...)
	}
	r.run(pandaA, pxeAgain(toSDCardVerifying)...)
	r.run(pandaA, eventStep(EventSUTSDCardOK, StateReady))
	require.Less(t, fsm.HealthScore(r.device(pandaA).History), 50)
}

// A board that fails its health check, passes a self-test, and fails again
// (a board that boots but never answers) is retired to
// failed_health_checks on the third failed check; the self-tests between
// lead to probation, not ready.
func TestHealth_BrokenBoardRetired(t *testing.T) {
	r := newRig(t)
	r.toReady(pandaA)
	failCheck := eventStep(EventFailed, StatePXEPowerCycling)
	for i := 0; i < flapHealthEpisodes-1; i++ {
		r.run(pandaA, failCheck)
		require.Equal(t, fsm.Outcome{At: r.at, Op: opHealthCheck, Fail: failHealthCheck}, lastOutcome(r, pandaA))
		r.run(pandaA, selfTestPass...)
		r.run(pandaA, eventStep(EventSelfTestOK, StateProbation))
		require.False(t, StateProbation.Available(), "a board on probation is not handed out")
	}
	r.run(pandaA, eventStep(EventFailed, StateFailedHealthChecks))
	require.Equal(t, StateFailedHealthChecks, r.state(pandaA))
}

// A board that recovered by a self-test is handed out only after
// probationChecks clean health checks; a failure meanwhile sends it back
// to a self-test.
func TestHealth_Probation(t *testing.T) {
	r := newRig(t)
	r.toReady(pandaA)
	r.run(pandaA, eventStep(EventFailed, StatePXEPowerCycling))
	r.run(pandaA, selfTestPass...)
	r.run(pandaA, eventStep(EventSelfTestOK, StateProbation))
	for i := 1; i < probationChecks; i++ {
		r.run(pandaA, timeoutStep(StateProbation))
	}
	r.run(pandaA, timeoutStep(StateReady))
	require.Equal(t, fsm.Outcome{At: r.at, Op: opHealthCheck}, lastOutcome(r, pandaA))

	// A self-test without a failure before it leads straight to ready.
	r.run(pandaA, eventStep(EventPleaseSelfTest, StatePXEPowerCycling))
	r.run(pandaA, selfTestPass...)
	r.run(pandaA, eventStep(EventSelfTestOK, StateReady))

	// A failed check in probation is a failed check: here the third
	// episode, which retires the board.
	r.run(pandaA, eventStep(EventFailed, StatePXEPowerCycling))
	r.run(pandaA, selfTestPass...)
	r.run(pandaA, eventStep(EventSelfTestOK, StateProbation))
	r.run(pandaA, eventStep(EventFailed, StateFailedHealthChecks))
}

// An operator's self-test of a quarantined board resets its history: the
// rules look only at what follows, and the score is 100 again.
func TestHealth_OperatorReset(t *testing.T) {
	r := newRig(t)
	r.toReady(pandaA)
	for i := 0; i < flapBootEpisodes-1; i++ {
		r.run(pandaA, imageFlakily...)
		r.run(pandaA, eventStep(EventSUTSDCardOK, StateReady))
	}
	r.run(pandaA, imageFlakily...)
	r.run(pandaA, eventStep(EventSUTSDCardOK, StateFailedFlapping))
	r.run(pandaA, eventStep(EventPleaseSelfTest, StatePXEPowerCycling))
	require.Equal(t, fsm.OpReset, lastOutcome(r, pandaA).Op)
	require.Equal(t, 100, fsm.HealthScore(r.device(pandaA).History))
	r.run(pandaA, selfTestPass...)
	r.run(pandaA, eventStep(EventSelfTestOK, StateReady))
	r.run(pandaA, imageFlakily...)
	r.run(pandaA, eventStep(EventSUTSDCardOK, StateReady))
}

// The history survives a snapshot and restore, and stays at HistoryLen.
func TestHealth_HistoryBoundedAndSnapshotted(t *testing.T) {
	r := newRig(t)
	r.toReady(pandaA)
	for i := 0; i < fsm.HistoryLen+5; i++ {
		r.run(pandaA, timeoutStep(StateReady))
	}
	h := r.device(pandaA).History
	require.Len(t, h, fsm.HistoryLen)
	c := r.clone(t)
	require.Equal(t, h, c.device(pandaA).History)
}

// relayHealth returns the FSM's record of the rig's relay board (nil when
// it has none).
func relayHealth(r *rig) *fsm.RelayHealth {
	var out *fsm.RelayHealth
	r.f.Read(func(s *fsm.State) {
		if rh, ok := s.RelayHealth["relay-1.lab"]; ok {
			c := *rh
			out = &c
		}
	})
	return out
}

// Three boards behind one relay board that do not boot after a power
// cycle make the relay board suspect: the third and every later such
// failure there is not counted (the boards wait in relay_wait), and when a
// board behind it boots again the relay board is cleared and the waiting
// boards are retried at once.
func TestHealth_SharedRelayFault(t *testing.T) {
	r := newRig(t)
	boards := []string{pandaA, pandaB, "panda-0003"}
	for _, b := range boards {
		r.toReady(b)
		r.run(b, pleaseB2G)
		r.run(b, toPXEBooting...)
	}
	r.run(pandaA, timeoutStep(StatePXEPowerCycling))
	r.run(pandaB, timeoutStep(StatePXEPowerCycling))
	require.False(t, relayHealth(r).Suspect, "two boards are not yet a pattern")
	mark := r.mark()
	r.run("panda-0003", timeoutStep(StateRelayWait))
	rh := relayHealth(r)
	require.True(t, rh.Suspect)
	require.Equal(t, string(StatePXEBooting), rh.Kind)
	require.Len(t, rh.Recent, 3)
	require.Empty(t, r.device("panda-0003").Counters[counterPXEBooting], "not counted against the board")
	require.Len(t, r.device("panda-0003").History, 0, "not in the board's history")
	var logged int
	for _, n := range r.notes[mark:] {
		for _, l := range n.Logs {
			if l.Source == "statemachine" && l.Name == "panda-0003" {
				logged++
			}
		}
	}
	require.NotZero(t, logged)
	require.Equal(t, rh, relayHealth(r.clone(t)), "kept in snapshots")

	// Later failures there wait too.
	r.run(pandaA, toPXEBooting...)
	r.run(pandaA, timeoutStep(StateRelayWait))
	require.Equal(t, 1, r.device(pandaA).Counters[counterPXEBooting])

	// relay_wait retries by itself.
	r.run("panda-0003", timeoutStep(StatePXEPowerCycling))

	// A board that boots proves the relay board works: pandaA is retried.
	r.run(pandaB, toMobileInit...)
	require.Nil(t, relayHealth(r), "cleared")
	require.Equal(t, StatePXEPowerCycling, r.state(pandaA))
	r.run(pandaA, toSDCardVerifying...)
	r.run(pandaA, eventStep(EventSUTSDCardOK, StateReady))
}

// Failures spread beyond the window do not make a relay board suspect.
func TestHealth_SharedFaultWindow(t *testing.T) {
	r := newRig(t)
	for _, b := range []string{pandaA, pandaB, "panda-0003"} {
		r.toReady(b)
		r.run(b, pleaseB2G)
		r.run(b, toPXEBooting...)
		r.at = r.at.Add(fsm.SharedFaultWindow / 2) // 3 failures over a window and a half
		r.run(b, timeoutStep(StatePXEPowerCycling))
	}
	require.False(t, relayHealth(r).Suspect)
}

func TestRelayBoardOf(t *testing.T) {
	require.Equal(t, "relay-1.lab:2101", fsm.RelayBoardOf("relay-1.lab:2101:bank1:relay2"))
	require.Equal(t, "relay-1.lab", fsm.RelayBoardOf("relay-1.lab:bank1:relay2"))
	require.Empty(t, fsm.RelayBoardOf(""))
	require.Empty(t, fsm.RelayBoardOf("relay-1.lab"))
}

// The verdict from histories alone: what counts as the same kind, and
// how many episodes each kind takes.
func TestHealth_QuarantineRule(t *testing.T) {
	fail := func(op string, s State) fsm.Outcome { return fsm.Outcome{Op: op, Fail: string(s)} }
	ok := func(op string) fsm.Outcome { return fsm.Outcome{Op: op} }
	tests := []struct {
		name string
		h    []fsm.Outcome
		want State
	}{
		{"empty", nil, ""},
		{"not answering, three ways", []fsm.Outcome{
			fail(opHealthCheck, failHealthCheck), ok(opSelfTest),
			fail(opImaging, StateFailedSUTVerifying), ok(opSelfTest),
			fail(opPing, StatePCPinging), ok(opPing)}, StateFailedHealthChecks},
		{"two hung net boots", []fsm.Outcome{
			fail(opBoot, StatePXEBooting), ok(opBoot), ok(opImaging), fail(opBoot, StatePXEBooting), ok(opBoot)}, StateFailedFlapping},
		{"two slow mobile inits are not enough", []fsm.Outcome{
			fail(opBoot, StateMobileInitStarted), ok(opBoot), fail(opBoot, StateMobileInitStarted), ok(opBoot)}, ""},
		{"three download episodes are not enough", []fsm.Outcome{
			fail(opImaging, StateB2GDownloading), ok(opImaging), fail(opImaging, StateB2GDownloading), ok(opImaging),
			fail(opImaging, StateB2GDownloading), ok(opImaging)}, ""},
		{"retries of one download are one episode", []fsm.Outcome{
			fail(opImaging, StateB2GDownloading), ok(opBoot), fail(opImaging, StateB2GDownloading), ok(opBoot),
			fail(opImaging, StateB2GDownloading), ok(opBoot), fail(opImaging, StateB2GDownloading), ok(opImaging)}, ""},
		{"only what follows a reset", []fsm.Outcome{
			fail(opBoot, StatePXEBooting), ok(opBoot), {Op: fsm.OpReset}, fail(opBoot, StatePXEBooting), ok(opBoot)}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, quarantine(tc.h))
		})
	}
}

// A self-test that hangs once is recorded and run again, not a verdict:
// the board passes the second time and is on probation, not failed.
func TestHealth_SelfTestHangRetried(t *testing.T) {
	r := newRig(t)
	r.run(pandaA, timeoutStep(StatePXEPowerCycling), eventStep(EventPowerCycleOK, StatePXEBooting),
		eventStep(EventMobileInitStarted, StateMobileInitStarted), eventStep(EventSelfTestRunning, StateSelfTestRunning))
	r.run(pandaA, timeoutStep(StatePXEPowerCycling))
	require.Equal(t, "self-test", r.device(pandaA).NextImage)
	require.Equal(t, fsm.Outcome{At: lastOutcome(r, pandaA).At, Op: opSelfTest, Fail: string(StateSelfTestRunning)}, lastOutcome(r, pandaA))
	r.run(pandaA, eventStep(EventPowerCycleOK, StatePXEBooting), eventStep(EventMobileInitStarted, StateMobileInitStarted),
		eventStep(EventSelfTestRunning, StateSelfTestRunning), eventStep(EventSelfTestOK, StateProbation))
}

// The health-check periods of boards that entered ready together spread
// over the last fifth of the 10 minutes, differently at each entry, and
// the same on every node (they depend on the name and generation alone).
func TestHealth_CheckPeriodsSpread(t *testing.T) {
	spec := deviceStates[StateReady]
	seen := map[time.Duration]bool{}
	lo, hi := spec.Timeout, time.Duration(0)
	for i := range 300 {
		d := &fsm.Device{Name: fmt.Sprintf("panda-%04d", i), Generation: 7}
		p := spread(d, spec)
		require.Equal(t, p, spread(d, spec), "deterministic")
		require.Greater(t, p, spec.Timeout*4/5)
		require.LessOrEqual(t, p, spec.Timeout)
		seen[p] = true
		lo, hi = min(lo, p), max(hi, p)
	}
	require.Greater(t, len(seen), 250, "periods differ from board to board")
	require.Greater(t, hi-lo, spec.Timeout/10, "spread over the fifth: %s to %s", lo, hi)
	a := &fsm.Device{Name: pandaA, Generation: 1}
	b := &fsm.Device{Name: pandaA, Generation: 2}
	require.NotEqual(t, spread(a, spec), spread(b, spec), "and from one period to the next")
	require.Equal(t, deviceStates[StateSUTVerifying].Timeout, spread(a, deviceStates[StateSUTVerifying]), "only where a state asks for it")
}
