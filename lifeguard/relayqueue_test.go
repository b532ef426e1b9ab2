package lifeguard

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/bmm/relay"
	"github.com/mozpool/mozpool/fsm"
)

// power_cycle_started re-arms the deadline of every relay state from the
// command's time, keeping the generation; a timeout proposed for the
// deadline before is stale, one for the new deadline applies.
func TestMachine_PowerCycleStartedRearmsDeadline(t *testing.T) {
	for _, state := range []State{StatePCPowerCycling, StatePXEPowerCycling, StateSUTVerifyPowerCycle} {
		t.Run(string(state), func(t *testing.T) {
			r := newRig(t)
			r.toReady(pandaA)
			if state == StatePXEPowerCycling {
				r.event(pandaA, EventPleaseImage, pleaseImageArgs("b2g", b2gBootConfig))
			} else {
				r.forceFromCurrent(pandaA, state)
			}
			require.Equal(t, state, r.state(pandaA))
			before := r.device(pandaA)

			// The relay board was busy for ten minutes.
			r.at = r.at.Add(10 * time.Minute)
			res := r.apply(fsm.CmdDeviceEvent, &fsm.DeviceEvent{Device: pandaA, Event: string(EventPowerCycleStarted),
				Generation: before.Generation, Source: "bmm"})
			out, err := decodeOutcome(res)
			require.NoError(t, err)
			require.False(t, out.Ignored, out.Reason)
			after := r.device(pandaA)
			require.Equal(t, string(state), after.State)
			require.Equal(t, before.Generation, after.Generation, "the pending result still applies")
			require.Equal(t, before.StateEntered, after.StateEntered)
			require.Equal(t, r.at.Add(spec(state).Timeout), after.StateDeadline, "the whole timeout from the start")

			// The timeout of the old deadline, proposed before the re-arm
			// was applied, changes nothing.
			res = r.apply(fsm.CmdDeviceTimeout, &fsm.DeviceTimeout{Device: pandaA, Generation: before.Generation,
				Deadline: before.StateDeadline})
			out, err = decodeOutcome(res)
			require.NoError(t, err)
			require.True(t, out.Ignored)
			require.Equal(t, after.StateDeadline, r.device(pandaA).StateDeadline)
			require.Equal(t, before.Generation, r.device(pandaA).Generation)

			// The new deadline's timeout applies.
			r.at = after.StateDeadline
			res = r.apply(fsm.CmdDeviceTimeout, &fsm.DeviceTimeout{Device: pandaA, Generation: before.Generation,
				Deadline: after.StateDeadline})
			out, err = decodeOutcome(res)
			require.NoError(t, err)
			require.False(t, out.Ignored, out.Reason)
			require.Greater(t, r.device(pandaA).Generation, before.Generation)
		})
	}

	// Outside the relay states the event means nothing.
	r := newRig(t)
	r.toReady(pandaA)
	d := r.device(pandaA)
	out, err := decodeOutcome(r.apply(fsm.CmdDeviceEvent, &fsm.DeviceEvent{Device: pandaA,
		Event: string(EventPowerCycleStarted), Generation: d.Generation, Source: "bmm"}))
	require.NoError(t, err)
	require.True(t, out.Ignored)
	require.Equal(t, d.StateDeadline, r.device(pandaA).StateDeadline)
}

// queueHW stands in for bmm's relay-board queue: the power cycle of device
// reports that it waits (relay.Notice.Queued), then starts when the test
// says so (Started), then finishes when the test says so, or returns when
// its context ends.
type queueHW struct {
	*fakeHW
	device          string
	start, finish   chan struct{}
	queued, running atomic.Int32
	calls           atomic.Int32
	mu              sync.Mutex
	ended           []error // how each call of device ended, in order
}

func (h *queueHW) PowerCycle(ctx context.Context, d string) error {
	if d != h.device {
		return h.fakeHW.PowerCycle(ctx, d)
	}
	h.calls.Add(1)
	err := h.cycle(ctx)
	h.mu.Lock()
	h.ended = append(h.ended, err)
	h.mu.Unlock()
	return err
}

func (h *queueHW) cycle(ctx context.Context) error {
	n := relay.NoticeFrom(ctx)
	if n.Queued != nil {
		n.Queued()
	}
	h.queued.Add(1)
	select {
	case <-h.start:
	case <-ctx.Done():
		return ctx.Err()
	}
	if n.Started != nil {
		n.Started()
	}
	h.running.Add(1)
	select {
	case <-h.finish:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *queueHW) endings() []error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]error(nil), h.ended...)
}

func newQueueRig(t *testing.T, minAction, relayOp time.Duration) (*execRig, *queueHW) {
	r := newExecRig(t, rigServer)
	for _, d := range []string{pandaB, pandaNoRelay, "panda-0003"} {
		r.force(t, d, "locked_out")
	}
	r.force(t, pandaA, "ready")
	hw := &queueHW{fakeHW: r.hw, device: pandaA, start: make(chan struct{}), finish: make(chan struct{})}
	cfg := r.exec.cfg
	cfg.Hardware, cfg.MinActionTime, cfg.RelayOpTime = hw, minAction, relayOp
	exec, err := NewExecutor(cfg)
	require.NoError(t, err)
	r.exec = exec
	return r, hw
}

func (r *execRig) device(dev string) fsm.Device {
	var d fsm.Device
	r.f.Read(func(s *fsm.State) { d = *s.Devices[dev] })
	return d
}

// The time pc_power_cycling allows (60 ms at the rig's scale) counts from
// when the power cycle leaves the relay board's queue: while it waits, the
// state does not time out, however long the wait; when it starts, the
// deadline is re-armed from then with the same generation, and the
// cycle's result moves the device on.
func TestExecutor_RelayWaitDoesNotCountAgainstTheState(t *testing.T) {
	r, hw := newQueueRig(t, time.Second, time.Minute)
	r.start(t)
	res, _ := r.propose(context.Background(), fsm.CmdDeviceEvent, &fsm.DeviceEvent{Device: pandaA, Event: "please_power_cycle"})
	require.NoError(t, res.Error())
	require.Eventually(t, func() bool { return hw.queued.Load() == 1 }, 10*time.Second, time.Millisecond)
	entry := r.device(pandaA)
	require.Equal(t, string(StatePCPowerCycling), entry.State)

	// Well past the entry's deadline, the entry stands and no second
	// power cycle was asked for.
	require.Eventually(t, func() bool { return time.Now().After(entry.StateDeadline.Add(300 * time.Millisecond)) },
		10*time.Second, 5*time.Millisecond)
	now := r.device(pandaA)
	require.Equal(t, entry.Generation, now.Generation, "timed out while waiting for the relay board")
	require.Equal(t, entry.StateDeadline, now.StateDeadline)
	require.Equal(t, int32(1), hw.calls.Load())

	started := time.Now()
	close(hw.start)
	require.Eventually(t, func() bool { return !r.device(pandaA).StateDeadline.Equal(entry.StateDeadline) },
		10*time.Second, time.Millisecond, "the deadline was not re-armed when the cycle started")
	rearmed := r.device(pandaA)
	require.Equal(t, entry.Generation, rearmed.Generation)
	require.False(t, rearmed.StateDeadline.Before(started.Add(entry.StateDeadline.Sub(entry.StateEntered))),
		"the deadline counts the whole timeout from the start")

	close(hw.finish)
	require.Eventually(t, func() bool { return r.state(pandaA) == StateReady }, 10*time.Second, 5*time.Millisecond)
	require.Equal(t, []error{nil}, hw.endings())
}

// A retry after a timeout replaces the power cycle of the entry before:
// that one's context ends when the new entry is seen, so a device never has
// two power cycles waiting or running. The started cycle hangs until
// RelayOpTime (50 ms here) gives up on it; the re-armed deadline has passed
// by then and pc_power_cycling is entered again; the new cycle moves the
// device on.
func TestExecutor_RetryReplacesTheWaitingPowerCycle(t *testing.T) {
	r, hw := newQueueRig(t, time.Hour, 50*time.Millisecond)
	r.start(t)
	close(hw.start) // each cycle starts at once after reporting its wait
	res, _ := r.propose(context.Background(), fsm.CmdDeviceEvent, &fsm.DeviceEvent{Device: pandaA, Event: "please_power_cycle"})
	require.NoError(t, res.Error())
	entry := r.device(pandaA)

	require.Eventually(t, func() bool { return len(hw.endings()) >= 1 }, 10*time.Second, 5*time.Millisecond,
		"the hanging cycle was not given up")
	require.ErrorIs(t, hw.endings()[0], context.Canceled)
	require.Eventually(t, func() bool { return r.device(pandaA).Generation > entry.Generation }, 10*time.Second, 5*time.Millisecond)
	require.GreaterOrEqual(t, r.device(pandaA).Counters[counterPowerCycle], 1, "a timeout retried the cycle")

	close(hw.finish)
	require.Eventually(t, func() bool { return r.state(pandaA) == StateReady }, 10*time.Second, 5*time.Millisecond)
}

// A running power cycle that outlasts its state's (scaled) timeout is not
// cut off, and the state does not time out under it: relay boards run in
// real time whatever the time scale. Its result moves the device on.
func TestExecutor_RunningPowerCycleOutlastsTheStateTimeout(t *testing.T) {
	r, hw := newQueueRig(t, time.Millisecond, time.Minute)
	r.start(t)
	close(hw.start)
	res, _ := r.propose(context.Background(), fsm.CmdDeviceEvent, &fsm.DeviceEvent{Device: pandaA, Event: "please_power_cycle"})
	require.NoError(t, res.Error())
	require.Eventually(t, func() bool { return hw.calls.Load() == 1 }, 10*time.Second, time.Millisecond)
	entry := r.device(pandaA)

	// Well past the (re-armed) deadline, the cycle still runs and the
	// entry stands.
	require.Eventually(t, func() bool {
		d := r.device(pandaA)
		return d.Generation == entry.Generation && !d.StateDeadline.IsZero() && time.Now().After(d.StateDeadline.Add(300*time.Millisecond))
	}, 10*time.Second, 5*time.Millisecond)
	require.Equal(t, entry.Generation, r.device(pandaA).Generation, "timed out under a running power cycle")
	require.Empty(t, hw.endings(), "the running cycle was cut off")
	require.Equal(t, int32(1), hw.calls.Load())

	close(hw.finish)
	require.Eventually(t, func() bool { return r.state(pandaA) == StateReady }, 10*time.Second, 5*time.Millisecond)
	require.Equal(t, []error{nil}, hw.endings())
}
