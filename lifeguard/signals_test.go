package lifeguard

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/fsm"
)

// tftpHealth returns the FSM's record of the rig's imaging server's
// PXE/TFTP (nil when it has none).
func tftpHealth(r *rig) *fsm.RelayHealth {
	var out *fsm.RelayHealth
	r.f.Read(func(s *fsm.State) {
		if th, ok := s.TFTPHealth[rigServer]; ok {
			c := *th
			out = &c
		}
	})
	return out
}

// Three boards of one imaging server whose boot loaders cannot fetch the
// PXE file make its PXE/TFTP suspect: the third and every later such
// failure is neither counted nor recorded (the boards wait in pxe_wait),
// no board is quarantined for it, and when a board of the server fetches
// and boots its PXE file the waiting boards are retried at once. The
// relay board is not suspected: the boot loader ran.
func TestHealth_SharedTFTPFault(t *testing.T) {
	r := newRig(t)
	boards := []string{pandaA, pandaB, "panda-0003"}
	for _, b := range boards {
		r.toReady(b)
		r.run(b, pleaseB2G)
		r.run(b, toPXEBooting...)
	}
	r.run(pandaA, eventStep(EventPXEFetchFailed, StatePXEPowerCycling))
	require.Equal(t, fsm.Outcome{At: lastOutcome(r, pandaA).At, Op: opBoot, Fail: failPXEFetch}, lastOutcome(r, pandaA))
	r.run(pandaB, eventStep(EventPXEFetchFailed, StatePXEPowerCycling))
	require.False(t, tftpHealth(r).Suspect, "two boards are not yet a pattern")
	mark := r.mark()
	r.run("panda-0003", eventStep(EventPXEFetchFailed, StatePXEWait))
	th := tftpHealth(r)
	require.True(t, th.Suspect)
	require.Equal(t, failPXEFetch, th.Kind)
	require.Len(t, th.Recent, 3)
	require.Empty(t, r.device("panda-0003").Counters[counterPXEBooting], "not counted against the board")
	historyLen := len(r.device("panda-0003").History)
	var logged int
	for _, n := range r.notes[mark:] {
		for _, l := range n.Logs {
			if l.Source == "statemachine" && l.Name == "panda-0003" {
				logged++
			}
		}
	}
	require.NotZero(t, logged)
	require.Equal(t, th, tftpHealth(r.clone(t)), "kept in snapshots")
	require.Nil(t, relayHealth(r), "the relay board is not suspected")

	// Later failures wait too, again and again, without counting.
	for range 3 {
		r.run(pandaA, toPXEBooting...)
		r.run(pandaA, eventStep(EventPXEFetchFailed, StatePXEWait))
		r.run(pandaA, timeoutStep(StatePXEPowerCycling)) // pxe_wait retries by itself
	}
	require.Equal(t, 1, r.device(pandaA).Counters[counterPXEBooting])
	require.Equal(t, historyLen, len(r.device("panda-0003").History))
	r.run(pandaA, toPXEBooting...)
	r.run(pandaA, eventStep(EventPXEFetchFailed, StatePXEWait))

	// A board that fetches and boots its PXE file proves TFTP serves:
	// pandaA is retried and reaches ready.
	r.run(pandaB, toMobileInit...)
	require.Nil(t, tftpHealth(r), "cleared")
	require.Equal(t, StatePXEPowerCycling, r.state(pandaA))
	r.run(pandaA, toSDCardVerifying...)
	r.run(pandaA, eventStep(EventSUTSDCardOK, StateReady))
	for _, b := range boards {
		require.Empty(t, quarantine(r.device(b).History), "%s quarantined", b)
	}
}

// A board's syslog makes a failed step end at once: a reset in the middle
// of an imaging step retries the net boot (counted as the step's
// failure), a hang in the boot loader retries it, and a kernel panic of
// the image just written writes it again.
func TestSignals_FailEarly(t *testing.T) {
	r := newRig(t)
	r.toReady(pandaA)
	r.run(pandaA, pleaseB2G)
	r.run(pandaA, toB2GDownloading...)
	r.run(pandaA, eventStep(EventBoardRebooted, StatePXEPowerCycling))
	require.Equal(t, 1, r.device(pandaA).Counters[counterB2GDownloading])
	require.Equal(t, "b2g", r.device(pandaA).NextImage)

	r.run(pandaA, toPXEBooting...)
	r.run(pandaA, eventStep(EventBootHung, StatePXEPowerCycling))
	require.Equal(t, 1, r.device(pandaA).Counters[counterPXEBooting])
	require.Equal(t, fsm.Outcome{At: lastOutcome(r, pandaA).At, Op: opBoot, Fail: string(StatePXEBooting)}, lastOutcome(r, pandaA))
	require.Nil(t, relayHealth(r), "a hang in the boot loader is not the relay board's")

	r.run(pandaA, toSUTVerifying...)
	require.Equal(t, StateSUTVerifying, r.state(pandaA))
	r.run(pandaA, eventStep(EventKernelPanic, StatePXEPowerCycling))
	require.Equal(t, "b2g", r.device(pandaA).NextImage, "imaged again")
	require.Equal(t, fsm.Outcome{At: lastOutcome(r, pandaA).At, Op: opImaging, Fail: failKernelPanic}, lastOutcome(r, pandaA),
		"an imaging that did not take, not a board that does not answer")
	r.run(pandaA, toSDCardVerifying...)
	r.run(pandaA, eventStep(EventSUTSDCardOK, StateReady))

	// Where a signal means nothing it is refused.
	_, err := r.tryEvent(pandaA, EventBoardRebooted, fsm.EventArgs{})
	require.NoError(t, err)
	require.Equal(t, StateReady, r.state(pandaA))
}

func TestSignals_SignalOf(t *testing.T) {
	for msg, want := range map[string]Event{
		"u-boot: U-Boot 2012.07 (Jul 20 2012 - 12:00:00) for OMAP4 Panda": EventBoardRebooted,
		"u-boot[12]: data abort":                                           EventBootHung,
		"u-boot: no PXE file, booting from mmc":                            EventPXEFetchFailed,
		"u-boot: TFTP error: 'File not found' (1)":                         EventPXEFetchFailed,
		"kernel: Kernel panic - not syncing: VFS: Unable to mount root fs": EventKernelPanic,
		"kernel: Linux version 3.2.0-panda":                                "",
		"u-boot: pxe get 01-00-11-22-33-44-01":                             "",
		"sutagent: U-Boot is not me":                                       "",
		"no app here":                                                      "",
	} {
		require.Equal(t, want, signalOf(msg), msg)
	}
}

// A line is queued only when the device's current state accepts its
// signal and it was written after the device entered that state; the
// signal carries that entry's generation.
func TestSignals_MessageGating(t *testing.T) {
	r := newRig(t)
	r.toReady(pandaA)
	r.run(pandaA, pleaseB2G)
	r.run(pandaA, toB2GDownloading...)
	s := NewSyslogSignals(SyslogSignalsConfig{FSM: r.f})
	d := r.device(pandaA)
	banner := "u-boot: U-Boot 2012.07 (Jul 20 2012 - 12:00:00) for OMAP4 Panda"

	s.Message(pandaA, d.StateEntered.Add(-1), banner)
	s.Message(pandaA, d.StateEntered.Add(1), "u-boot: no PXE file, booting from mmc")
	s.Message(pandaB, d.StateEntered.Add(1), banner)
	require.Empty(t, s.queue, "old line, signal the state does not accept, device not imaging")

	s.Message(pandaA, d.StateEntered.Add(1), banner)
	require.Len(t, s.queue, 1)
	require.Equal(t, signal{pandaA, EventBoardRebooted, d.Generation}, <-s.queue)
}

// A board counts as proven after provenBoots net boots in a row since its
// last reset, and hungProvenBoots since its last hung one; other failures
// in between do not matter.
func TestHealth_Proven(t *testing.T) {
	ok := fsm.Outcome{Op: opBoot}
	hung := fsm.Outcome{Op: opBoot, Fail: string(StatePXEBooting)}
	fetch := fsm.Outcome{Op: opBoot, Fail: failPXEFetch}
	img := fsm.Outcome{Op: opImaging}
	require.False(t, proven(nil))
	require.False(t, proven([]fsm.Outcome{ok, img, ok, img, ok, img}))
	require.True(t, proven([]fsm.Outcome{ok, img, ok, img, ok, img, ok, img}))
	require.False(t, proven([]fsm.Outcome{ok, ok, ok, ok, hung, ok, ok, ok}))
	require.False(t, proven([]fsm.Outcome{hung, ok, fetch, ok, img, ok, ok}), "four clean boots after a hang are not enough")
	require.True(t, hungRecently([]fsm.Outcome{hung, ok, fetch, ok, img, ok, ok, ok, ok, ok}))
	require.True(t, proven([]fsm.Outcome{hung, ok, fetch, ok, img, ok, ok, ok, ok, ok, ok}))
	require.False(t, hungRecently([]fsm.Outcome{hung, ok, fetch, ok, img, ok, ok, ok, ok, ok, ok}))
	require.False(t, proven([]fsm.Outcome{ok, ok, ok, ok, {Op: fsm.OpReset}, ok}))

	// The queue's grade.
	require.Equal(t, 0, trust(nil))
	require.Equal(t, 2, trust([]fsm.Outcome{ok, img, fetch, ok}))
	require.Equal(t, provenBoots, trust([]fsm.Outcome{ok, ok, ok, ok, ok, ok}))
	require.Equal(t, 0, trust([]fsm.Outcome{ok, ok, hung, ok, ok, ok, ok, ok}), "hung: untrusted until hungProvenBoots")
	require.Equal(t, 1, trust([]fsm.Outcome{hung, ok, ok, {Op: fsm.OpReset}, ok}), "a reset forgets the hang")
}
