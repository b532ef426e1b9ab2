package fsm_test

import (
	"bytes"
	"encoding/json"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/fsm"
	"github.com/mozpool/mozpool/internal/testlog"
	"github.com/mozpool/mozpool/lifeguard"
	"github.com/mozpool/mozpool/requests"
)

// Device commands run through the real lifeguard table.

// devRig applies device commands to an FSM with lifeguard.Machine, one
// second and one log index apart.
type devRig struct {
	t     *testing.T
	f     *fsm.FSM
	rec   *recorder
	index uint64
	at    time.Time
}

// newDevRig syncs the sample inventory (all devices in "new").
func newDevRig(t *testing.T) *devRig {
	t.Helper()
	r := &devRig{t: t, rec: &recorder{}, index: 1, at: t0}
	r.f = fsm.New(fsm.Config{Logger: testlog.New(t), Devices: lifeguard.Machine{},
		Notify: func(n fsm.Notification) { r.rec.notes = append(r.rec.notes, n) }})
	syncSample(t, r.f)
	return r
}

func (r *devRig) apply(typ fsm.CommandType, cmd fsm.Command) fsm.Result {
	r.t.Helper()
	r.index++
	r.at = r.at.Add(time.Second)
	cmd.Head().At = r.at
	return apply(r.t, r.f, r.index, typ, cmd)
}

// devResult is an fsm.EventResult with lifeguard's state type.
type devResult struct {
	State   lifeguard.State
	Ignored bool
	Reason  string
}

func (r *devRig) result(res fsm.Result) devResult {
	r.t.Helper()
	var out fsm.EventResult
	require.NoError(r.t, res.Decode(&out))
	return devResult{State: lifeguard.State(out.State), Ignored: out.Ignored, Reason: out.Reason}
}

// event delivers event with the given generation (0: from outside).
func (r *devRig) event(name string, event lifeguard.Event, gen uint64, args fsm.EventArgs) devResult {
	r.t.Helper()
	return r.result(r.apply(fsm.CmdDeviceEvent, &fsm.DeviceEvent{Device: name, Event: string(event), Generation: gen, Args: args}))
}

func (r *devRig) timeout(name string, gen uint64) devResult {
	r.t.Helper()
	return r.result(r.apply(fsm.CmdDeviceTimeout, &fsm.DeviceTimeout{Device: name, Generation: gen}))
}

func (r *devRig) force(name string, from, to lifeguard.State) devResult {
	r.t.Helper()
	return r.result(r.apply(fsm.CmdDeviceStateChange, &fsm.DeviceStateChange{Device: name, From: string(from), To: string(to)}))
}

func (r *devRig) device(name string) fsm.Device {
	r.t.Helper()
	var d fsm.Device
	r.f.Read(func(s *fsm.State) { d = *s.Devices[name] })
	return d
}

func (r *devRig) request(id int64) fsm.Request {
	r.t.Helper()
	var req fsm.Request
	r.f.Read(func(s *fsm.State) { req = *s.Requests[id] })
	return req
}

// transitions lists the state entries reported since note number mark.
func (r *devRig) transitions(mark int) []fsm.Transition {
	var out []fsm.Transition
	for _, n := range r.rec.notes[mark:] {
		out = append(out, n.Transitions...)
	}
	return out
}

func lgImageArgs(image, bootConfig string) fsm.EventArgs {
	b, _ := json.Marshal(bootConfig)
	return fsm.EventArgs{Image: &image, BootConfig: b}
}

// devStep is a device event and the state it leads to.
type devStep struct {
	event lifeguard.Event
	want  lifeguard.State
}

// lgDev is the device the tests drive.
const lgDev = "panda-0001"

func TestDeviceTimeout_Generation(t *testing.T) {
	r := newDevRig(t)
	d := r.device(lgDev)
	require.Equal(t, uint64(1), d.Generation, "generation of a new device")
	require.Equal(t, t0, d.StateDeadline, "a new device is due at once")

	for _, gen := range []uint64{0, 2, 99} {
		got := r.timeout(lgDev, gen)
		require.True(t, got.Ignored, "timeout of generation %d in generation 1 not ignored", gen)
		require.Equal(t, lifeguard.StateNew, got.State)
		require.Equal(t, d, r.device(lgDev), "device after a stale timeout")
	}

	got := r.timeout(lgDev, 1)
	require.False(t, got.Ignored)
	require.Equal(t, lifeguard.StatePXEPowerCycling, got.State, "Handle(new, timeout) = %s, want pxe_power_cycling", got.State)
	d = r.device(lgDev)
	require.Equal(t, uint64(3), d.Generation, "generation after start_self_test and pxe_power_cycling")

	got = r.timeout(lgDev, 1)
	require.True(t, got.Ignored, "a repeated timeout of generation 1 not ignored")
	require.Equal(t, d, r.device(lgDev), "device after a repeated timeout")

	// A state without a deadline ignores even a current timeout.
	r.force(lgDev, lifeguard.StatePXEPowerCycling, lifeguard.StateLockedOut)
	d = r.device(lgDev)
	got = r.timeout(lgDev, d.Generation)
	require.True(t, got.Ignored, "timeout in locked_out not ignored")
	require.Equal(t, d, r.device(lgDev))
}

func TestDeviceEvent_Generation(t *testing.T) {
	r := newDevRig(t)
	r.force(lgDev, lifeguard.StateNew, lifeguard.StateReady)
	require.Equal(t, lifeguard.StatePCPowerCycling, r.event(lgDev, lifeguard.EventPleasePowerCycle, 0, fsm.EventArgs{}).State)
	first := r.device(lgDev).Generation

	// A failure re-enters the state: a new generation.
	require.Equal(t, lifeguard.StatePCPowerCycling, r.event(lgDev, lifeguard.EventPowerCycleFailed, first, fsm.EventArgs{}).State)
	second := r.device(lgDev)
	require.Equal(t, first+1, second.Generation, "generation after re-entering pc_power_cycling")

	tests := []struct {
		name string
		gen  uint64
	}{
		{"older", first},
		{"much older", 1},
		{"newer", second.Generation + 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := r.event(lgDev, lifeguard.EventPowerCycleOK, tc.gen, fsm.EventArgs{})
			require.True(t, got.Ignored, "power_cycle_ok of generation %d in generation %d not ignored", tc.gen, second.Generation)
			require.Equal(t, "stale generation", got.Reason)
			require.Equal(t, lifeguard.StatePCPowerCycling, got.State)
			require.Equal(t, second, r.device(lgDev), "device after a stale result")
		})
	}

	got := r.event(lgDev, lifeguard.EventPowerCycleOK, second.Generation, fsm.EventArgs{})
	require.False(t, got.Ignored)
	require.Equal(t, lifeguard.StatePCRebooting, got.State)

	// An external event (generation 0) applies to whatever entry is current.
	r.force(lgDev, lifeguard.StatePCRebooting, lifeguard.StatePCPinging)
	r.force(lgDev, lifeguard.StatePCPinging, lifeguard.StatePCPinging)
	got = r.event(lgDev, lifeguard.EventPingOK, 0, fsm.EventArgs{})
	require.False(t, got.Ignored)
	require.Equal(t, lifeguard.StateReady, got.State)
}

// Every entry, re-entries and passing states included, takes the next
// generation, and the transitions report them in order.
func TestDeviceGeneration_EveryEntry(t *testing.T) {
	r := newDevRig(t)
	mark := len(r.rec.notes)
	r.force(lgDev, lifeguard.StateNew, lifeguard.StateReady)
	r.timeout(lgDev, r.device(lgDev).Generation)                                         // ready → ready
	r.event(lgDev, lifeguard.EventPleaseImage, 0, lgImageArgs("b2g", `{"b2gbase":"x"}`)) // start_pxe_boot → pxe_power_cycling
	r.event(lgDev, lifeguard.EventPowerCycleFailed, 0, fsm.EventArgs{})                  // pxe_power_cycling again
	r.force(lgDev, lifeguard.StatePXEPowerCycling, lifeguard.StatePXEPowerCycling)

	var states []lifeguard.State
	trs := r.transitions(mark)
	for i, tr := range trs {
		require.Equal(t, lgDev, tr.Device)
		require.Equal(t, uint64(2+i), tr.Generation, "generation of transition %d (%s)", i, tr.State)
		states = append(states, lifeguard.State(tr.State))
	}
	require.Equal(t, []lifeguard.State{lifeguard.StateReady, lifeguard.StateReady, lifeguard.StateStartPXEBoot,
		lifeguard.StatePXEPowerCycling, lifeguard.StatePXEPowerCycling, lifeguard.StatePXEPowerCycling}, states)
	d := r.device(lgDev)
	require.Equal(t, trs[len(trs)-1].Generation, d.Generation)
	require.Equal(t, trs[len(trs)-1].Deadline, d.StateDeadline)
}

func TestDeviceDeadline_TimeScale(t *testing.T) {
	tests := []struct {
		name  string
		scale float64 // 0: never set
		want  time.Duration
	}{
		{"real time", 0, 180 * time.Second},
		{"one", 1, 180 * time.Second},
		{"hundredth", 0.01, 1800 * time.Millisecond},
		{"thousandth", 0.001, 180 * time.Millisecond},
		{"slower", 2, 360 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newDevRig(t)
			if tc.scale != 0 {
				require.NoError(t, r.apply(fsm.CmdSetTimeScale, &fsm.SetTimeScale{TimeScale: tc.scale}).Error())
			}
			r.force(lgDev, lifeguard.StateNew, lifeguard.StateReady)
			r.event(lgDev, lifeguard.EventPleaseImage, 0, lgImageArgs("b2g", `{"b2gbase":"x"}`))
			mark := len(r.rec.notes)
			got := r.event(lgDev, lifeguard.EventPowerCycleOK, 0, fsm.EventArgs{})
			require.Equal(t, lifeguard.StatePXEBooting, got.State)
			d := r.device(lgDev)
			require.Equal(t, r.at.Add(tc.want), d.StateDeadline, "deadline of pxe_booting entered at %v", r.at)
			require.Equal(t, r.at, d.StateEntered)
			trs := r.transitions(mark)
			require.Len(t, trs, 1)
			require.Equal(t, d.StateDeadline, trs[0].Deadline, "reported deadline")

			// Timeout 0 stays "due at once" and no timeout stays none.
			r.force(lgDev, lifeguard.StatePXEBooting, lifeguard.StateNew)
			require.Equal(t, r.at, r.device(lgDev).StateDeadline, "deadline of new")
			r.force(lgDev, lifeguard.StateNew, lifeguard.StateLockedOut)
			require.True(t, r.device(lgDev).StateDeadline.IsZero(), "deadline of locked_out")
		})
	}
}

func TestSetTimeScale_Invalid(t *testing.T) {
	r := newDevRig(t)
	require.NoError(t, r.apply(fsm.CmdSetTimeScale, &fsm.SetTimeScale{TimeScale: 0.5}).Error())
	for _, scale := range []float64{0, -1, -0.01, 1000.5, 1e9} {
		res := r.apply(fsm.CmdSetTimeScale, &fsm.SetTimeScale{TimeScale: scale})
		require.ErrorIs(t, res.Error(), fsm.ErrInvalid, "SetTimeScale(%v)", scale)
		r.f.Read(func(s *fsm.State) { require.Equal(t, 0.5, s.TimeScale, "time scale after SetTimeScale(%v)", scale) })
	}
	require.NoError(t, r.apply(fsm.CmdSetTimeScale, &fsm.SetTimeScale{TimeScale: 1000}).Error())
	r.f.Read(func(s *fsm.State) { require.Equal(t, 1000.0, s.TimeScale) })
}

// Under a time scale, a device state's timeout never shrinks below the
// floor the time scale carries (nor below the timeout itself when that is
// shorter); without a floor, scaling is exact.
func TestDeviceDeadline_MinDeviceTimeout(t *testing.T) {
	tests := []struct {
		name  string
		scale float64
		floor time.Duration
		state lifeguard.State // entered with please_image, then events
		want  time.Duration
	}{
		{"no floor", 0.001, 0, lifeguard.StatePXEBooting, 180 * time.Millisecond},
		{"floor lifts a short timeout", 0.001, time.Second, lifeguard.StatePXEBooting, time.Second},
		{"above the floor", 0.01, time.Second, lifeguard.StatePXEBooting, 1800 * time.Millisecond},
		{"a floor above the timeout keeps the timeout", 0.001, time.Hour, lifeguard.StatePXEBooting, 180 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newDevRig(t)
			require.NoError(t, r.apply(fsm.CmdSetTimeScale, &fsm.SetTimeScale{TimeScale: tc.scale, MinDeviceTimeout: tc.floor}).Error())
			r.force(lgDev, lifeguard.StateNew, lifeguard.StateReady)
			r.event(lgDev, lifeguard.EventPleaseImage, 0, lgImageArgs("b2g", `{"b2gbase":"x"}`))
			got := r.event(lgDev, lifeguard.EventPowerCycleOK, 0, fsm.EventArgs{})
			require.Equal(t, tc.state, got.State)
			require.Equal(t, r.at.Add(tc.want), r.device(lgDev).StateDeadline)

			// Timeout 0 stays "due at once" and no timeout stays none.
			r.force(lgDev, lifeguard.StatePXEBooting, lifeguard.StateNew)
			require.Equal(t, r.at, r.device(lgDev).StateDeadline, "deadline of new")
			r.force(lgDev, lifeguard.StateNew, lifeguard.StateLockedOut)
			require.True(t, r.device(lgDev).StateDeadline.IsZero(), "deadline of locked_out")
		})
	}
	r := newDevRig(t)
	for _, floor := range []time.Duration{-time.Second, time.Hour + 1} {
		res := r.apply(fsm.CmdSetTimeScale, &fsm.SetTimeScale{TimeScale: 0.5, MinDeviceTimeout: floor})
		require.ErrorIs(t, res.Error(), fsm.ErrInvalid, "MinDeviceTimeout %v", floor)
	}
}

// The time scale is part of the replicated state: a node restored from a
// snapshot must compute the same deadlines as the others.
func TestTimeScale_Snapshot(t *testing.T) {
	r := newDevRig(t)
	require.NoError(t, r.apply(fsm.CmdSetTimeScale, &fsm.SetTimeScale{TimeScale: 0.01, MinDeviceTimeout: time.Second}).Error())
	restored := fsm.New(fsm.Config{Logger: testlog.New(t), Devices: lifeguard.Machine{}})
	require.NoError(t, restored.Restore(io.NopCloser(bytes.NewReader(snapshotBytes(t, r.f)))))
	restored.Read(func(s *fsm.State) {
		require.Equal(t, 0.01, s.TimeScale, "time scale after restore")
		require.Equal(t, time.Second, s.MinDeviceTimeout, "minimum device timeout after restore")
	})

	cmd := encode(t, fsm.CmdDeviceStateChange, fsm.DeviceStateChange{Header: fsm.Header{At: t0.Add(time.Hour)}, Device: lgDev, From: string(lifeguard.StateNew), To: string(lifeguard.StateReady)})
	require.NoError(t, r.f.ApplyCommand(10, cmd).Error())
	require.NoError(t, restored.ApplyCommand(10, cmd).Error())
	requireState(t, snapshotBytes(t, r.f), restored, "state of the restored node after the same command")
}

// As in Mozpool, operation_complete reports "complete", every failed_* entry
// "failed-bad-device", to the request that holds the device.
func TestDeviceImagingResult(t *testing.T) {
	imaging := []devStep{
		{lifeguard.EventPleaseImage, lifeguard.StatePXEPowerCycling},
		{lifeguard.EventPowerCycleOK, lifeguard.StatePXEBooting},
		{lifeguard.EventMobileInitStarted, lifeguard.StateMobileInitStarted},
		{lifeguard.EventB2GDownloading, lifeguard.StateB2GDownloading},
	}
	setup := func(t *testing.T) *devRig {
		r := newDevRig(t)
		fsm.PutRequest(r.f, &fsm.Request{ID: 7, ImagingServer: "mobile-imaging-001", RequestedDevice: "any", Assignee: "me",
			Image: "b2g", BootConfig: `{"b2gbase":"x"}`, State: string(requests.StatePending), Device: lgDev, Created: t0})
		fsm.AttachRequest(r.f, lgDev, 7)
		r.force(lgDev, lifeguard.StateNew, lifeguard.StateReady)
		for _, s := range imaging {
			got := r.event(lgDev, s.event, 0, lgImageArgs("b2g", `{"b2gbase":"x"}`))
			require.Equal(t, s.want, got.State, "Handle(_, %s) = %s, want %s", s.event, got.State, s.want)
		}
		require.Empty(t, r.request(7).ImagingResult, "imaging result while imaging")
		return r
	}
	requireResult := func(t *testing.T, r *devRig, mark int, want string) {
		t.Helper()
		require.Equal(t, want, r.request(7).ImagingResult)
		var msgs []string
		for _, l := range r.rec.logs()[mark:] {
			if l.Kind == fsm.LogRequest && l.Name == "7" {
				msgs = append(msgs, l.Message)
			}
		}
		require.Equal(t, []string{"device " + lgDev + " finished: " + want}, msgs, "request log")
	}
	logMark := func(r *devRig) int { return len(r.rec.logs()) }

	t.Run("complete", func(t *testing.T) {
		r := setup(t)
		for _, s := range []devStep{
			{lifeguard.EventB2GExtracting, lifeguard.StateB2GExtracting}, {lifeguard.EventB2GRebooting, lifeguard.StateSUTVerifying},
			{lifeguard.EventSUTVerifyOK, lifeguard.StateSUTSDCardVerifying},
		} {
			require.Equal(t, s.want, r.event(lgDev, s.event, 0, fsm.EventArgs{}).State)
		}
		mark := logMark(r)
		require.Equal(t, lifeguard.StateReady, r.event(lgDev, lifeguard.EventSUTSDCardOK, 0, fsm.EventArgs{}).State)
		requireResult(t, r, mark, "complete")
		require.Equal(t, "b2g", r.device(lgDev).Image)
	})
	t.Run("failed and self-test", func(t *testing.T) {
		r := setup(t)
		for i := 0; i < 3; i++ {
			require.Equal(t, lifeguard.StatePXEPowerCycling, r.timeout(lgDev, r.device(lgDev).Generation).State)
			for _, s := range imaging[1:] {
				require.Equal(t, s.want, r.event(lgDev, s.event, 0, fsm.EventArgs{}).State)
			}
		}
		mark := logMark(r)
		got := r.timeout(lgDev, r.device(lgDev).Generation)
		require.Equal(t, lifeguard.StatePXEPowerCycling, got.State, "4th b2g_downloading timeout: failed, then self-test")
		requireResult(t, r, mark, "failed-bad-device")

		// The self-test that follows reports nothing more; it follows a
		// failure, so the board goes on probation.
		mark = logMark(r)
		for _, s := range []devStep{
			{lifeguard.EventPowerCycleOK, lifeguard.StatePXEBooting}, {lifeguard.EventMobileInitStarted, lifeguard.StateMobileInitStarted},
			{lifeguard.EventSelfTestRunning, lifeguard.StateSelfTestRunning}, {lifeguard.EventSelfTestOK, lifeguard.StateProbation},
		} {
			require.Equal(t, s.want, r.event(lgDev, s.event, 0, fsm.EventArgs{}).State)
		}
		for _, l := range r.rec.logs()[mark:] {
			require.NotEqual(t, fsm.LogRequest, l.Kind, "request log line %q after the self-test", l.Message)
		}
		require.Equal(t, "failed-bad-device", r.request(7).ImagingResult)
	})
	t.Run("failed, no self-test", func(t *testing.T) {
		r := setup(t)
		mark := logMark(r)
		require.Equal(t, lifeguard.StateFailedMobileInitStarted, r.force(lgDev, lifeguard.StateB2GDownloading, lifeguard.StateFailedMobileInitStarted).State)
		requireResult(t, r, mark, "failed-bad-device")
	})
	t.Run("no request", func(t *testing.T) {
		r := newDevRig(t)
		r.force(lgDev, lifeguard.StateNew, lifeguard.StateFailedPXEBooting)
		for _, l := range r.rec.logs() {
			require.NotEqual(t, fsm.LogRequest, l.Kind, "request log line %q", l.Message)
		}
	})
}

func TestDeviceCommands_Errors(t *testing.T) {
	r := newDevRig(t)
	cmds := []struct {
		typ fsm.CommandType
		cmd fsm.Command
	}{
		{fsm.CmdDeviceEvent, &fsm.DeviceEvent{Device: "nosuch", Event: string(lifeguard.EventPleaseSelfTest)}},
		{fsm.CmdDeviceTimeout, &fsm.DeviceTimeout{Device: "nosuch", Generation: 1}},
		{fsm.CmdDeviceStateChange, &fsm.DeviceStateChange{Device: "nosuch", From: string(lifeguard.StateNew), To: string(lifeguard.StateReady)}},
	}
	for _, c := range cmds {
		require.ErrorIs(t, r.apply(c.typ, c.cmd).Error(), fsm.ErrUnknownDevice, "%s of an unknown device", c.typ)
	}

	// Without a machine every device command is refused.
	f := testFSM(t)
	syncSample(t, f)
	for i, c := range cmds {
		c.cmd.Head().At = t0
		switch cmd := c.cmd.(type) {
		case *fsm.DeviceEvent:
			cmd.Device = lgDev
		case *fsm.DeviceTimeout:
			cmd.Device = lgDev
		case *fsm.DeviceStateChange:
			cmd.Device = lgDev
		}
		res := apply(t, f, uint64(2+i), c.typ, c.cmd)
		require.ErrorIs(t, res.Error(), fsm.ErrNoMachine, "%s without a machine", c.typ)
	}
}
