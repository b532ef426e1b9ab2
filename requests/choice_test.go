package requests

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/fsm"
	"github.com/mozpool/mozpool/lifeguard"
)

// Creation and device choice, run through
// fsm.Apply with the real lifeguard and request tables.

func TestCreateValidation(t *testing.T) {
	tests := []struct {
		name   string
		change func(r *rig, c *fsm.RequestCreate)
		want   error
	}{
		{"unknown image", func(_ *rig, c *fsm.RequestCreate) { c.Image = "windows" }, fsm.ErrUnknownImage},
		{"unknown named device", func(_ *rig, c *fsm.RequestCreate) { c.RequestedDevice = "panda-9999" }, fsm.ErrUnknownDevice},
		{"missing boot-config key", func(_ *rig, c *fsm.RequestCreate) { c.BootConfig = `{"other": "x"}` }, fsm.ErrInvalid},
		{"boot config not an object", func(_ *rig, c *fsm.RequestCreate) { c.BootConfig = `"http://builds/b2g"` }, fsm.ErrInvalid},
		{"empty assignee", func(_ *rig, c *fsm.RequestCreate) { c.Assignee = "" }, fsm.ErrInvalid},
		{"no requested device", func(_ *rig, c *fsm.RequestCreate) { c.RequestedDevice = "" }, fsm.ErrInvalid},
		{"expiry before the command", func(r *rig, c *fsm.RequestCreate) { c.Expires = r.at.Add(-time.Hour) }, fsm.ErrInvalid},
		{"expiry too far", func(r *rig, c *fsm.RequestCreate) { c.Expires = r.at.Add(fsm.MaxRequestDuration + 24*time.Hour) }, fsm.ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			r.ready(append(pandas, tegra)...)
			c := r.createCmd("any", "b2g", "any", b2gConfig)
			tc.change(r, c)
			_, err := r.tryCreateCmd(c)
			require.ErrorIs(t, err, tc.want, "create: got %v, want %v", err, tc.want)
			r.f.Read(func(s *fsm.State) {
				require.Empty(t, s.Requests, "a refused create must create nothing")
				require.Zero(t, s.NextID["request"], "a refused create must not use an id")
				for _, d := range s.Devices {
					require.Zero(t, d.RequestID, "device %s claimed by a refused create", d.Name)
					require.Equal(t, lifeguard.StateReady, lifeguard.State(d.State), "device %s touched by a refused create", d.Name)
				}
			})
		})
	}
}

func TestCreateAcceptsZeroDuration(t *testing.T) {
	r := newRig(t)
	c := r.createCmd("any", "b2g", "", b2gConfig)
	// The proposer computed expires = its time + 0 s; the command
	// carries the same time (r.apply stamps r.at + 1 s, so use that).
	c.Expires = r.at.Add(time.Second)
	q, err := r.tryCreateCmd(c)
	require.NoError(t, err)
	require.Equal(t, "any", q.Environment, "an empty environment means any")
	require.Equal(t, int64(1), q.ID)
}

// The claim and the device's please_image are one command: after the
// create, the request is pending and its device is already imaging.
func TestCreateClaimsAndImagesInOneCommand(t *testing.T) {
	r := newRig(t)
	r.ready(even1)
	mark := r.mark()
	q := r.createB2G("any", "any")

	require.Equal(t, StatePending, State(q.State), "create result")
	require.Equal(t, even1, q.Device, "create result")
	r.requireRequest(q.ID, StatePending, even1)
	d := r.device(even1)
	require.Equal(t, lifeguard.StatePXEPowerCycling, lifeguard.State(d.State))
	require.Equal(t, q.ID, d.RequestID)
	require.Equal(t, "b2g", d.NextImage)
	require.Equal(t, b2gConfig, d.NextBootConfig)
	require.Equal(t, r.at, d.LastUsed, "claiming stamps last_used with the command time")

	require.Len(t, r.notes[mark:], 1, "one command, one notification")
	n := r.notes[mark]
	require.Equal(t, fsm.CmdRequestCreate, n.Type)
	require.Contains(t, n.Requests, q.ID)
	require.Contains(t, n.Devices, even1)
	var entered []lifeguard.State
	for _, tr := range n.Transitions {
		entered = append(entered, lifeguard.State(tr.State))
	}
	require.Equal(t, []lifeguard.State{lifeguard.StateStartPXEBoot, lifeguard.StatePXEPowerCycling}, entered, "device states entered by the create")
	requireLogged(t, r.requestLogs(mark, q.ID), "entering state finding_device")
	requireLogged(t, r.requestLogs(mark, q.ID), "claimed device "+even1+" and sent it please_image")
	requireLogged(t, r.requestLogs(mark, q.ID), "entering state pending")
	requireLogged(t, r.deviceLogs(mark, even1), "claimed by request 1 (please_image for slave-1)")
	require.Equal(t, 1, r.request(q.ID).Counters[counterSearches])
}

// A device whose hardware type has no PXE config for the image is never
// chosen, even when it is the only ready one.
func TestChoiceSkipsUnsupportedHardware(t *testing.T) {
	r := newRig(t)
	r.ready(tegra)

	any := r.createB2G("any", "any")
	r.requireRequest(any.ID, StateFindingDevice, "")
	even := r.createB2G("any", "even")
	r.requireRequest(even.ID, StateFindingDevice, "")
	// No image config of the tegra installs b2g: a request for it waits
	// (until one is mapped, or its max_wait).
	named := r.createB2G(tegra, "any")
	r.requireRequest(named.ID, StateFindingDevice, "")
	r.requireRequest(any.ID, StateFindingDevice, "")
	r.requireRequest(even.ID, StateFindingDevice, "")
	d := r.device(tegra)
	require.Equal(t, lifeguard.StateReady, lifeguard.State(d.State), "the tegra was sent nothing")
	require.Zero(t, d.RequestID)

	// The tegra does take an image its hardware supports.
	a := r.create("any", "android", "even", "")
	r.requireRequest(a.ID, StatePending, tegra)

	// Once a panda is ready, the first in line takes it.
	r.ready(even1)
	r.requireRequest(any.ID, StatePending, even1)
	r.requireRequest(even.ID, StateFindingDevice, "")
}

// installOn leaves image with bootConfig on dev, as an earlier request
// that was imaged and returned would.
func (r *rig) installOn(dev, image, bootConfig, flow string) {
	r.t.Helper()
	q := r.create(dev, image, "any", bootConfig)
	r.requireRequest(q.ID, StatePending, dev)
	r.install(dev, flow)
	r.requireRequest(q.ID, StateReady, dev)
	r.closeRequest(q.ID)
	d := r.device(dev)
	require.Equal(r.t, image, d.Image)
	require.Equal(r.t, lifeguard.StateReady, lifeguard.State(d.State))
	require.Zero(r.t, d.RequestID)
}

// A reusable image already on the device with an equal boot
// config is only power-cycled; otherwise the device is imaged.
func TestReuse(t *testing.T) {
	tests := []struct {
		name string
		// installed is what even1 carries (image, boot config, flow).
		image, installed, flow string
		// request is what is asked for, on even1.
		reqImage, reqConfig string
		wantEvent           lifeguard.Event
		wantState           lifeguard.State
	}{
		{"reusable, same config", "android", "{}", "android", "android", "{}", lifeguard.EventPleasePowerCycle, lifeguard.StatePCPowerCycling},
		{"reusable, config equal as JSON", "linux", `{"kernel": "4.1"}`, "android", "linux", `{"kernel":"4.1"}`, lifeguard.EventPleasePowerCycle, lifeguard.StatePCPowerCycling},
		{"reusable, other config", "linux", `{"kernel": "4.1"}`, "android", "linux", `{"kernel": "5.0"}`, lifeguard.EventPleaseImage, lifeguard.StatePXEPowerCycling},
		{"reusable, other image", "android", "{}", "android", "linux", `{"kernel": "4.1"}`, lifeguard.EventPleaseImage, lifeguard.StatePXEPowerCycling},
		{"not reusable, same config", "b2g", b2gConfig, "b2g", "b2g", b2gConfig, lifeguard.EventPleaseImage, lifeguard.StatePXEPowerCycling},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			r.ready(even1)
			r.installOn(even1, tc.image, tc.installed, tc.flow)

			mark := r.mark()
			q := r.create(even1, tc.reqImage, "any", tc.reqConfig)
			r.requireRequest(q.ID, StatePending, even1)
			d := r.device(even1)
			require.Equal(t, tc.wantState, lifeguard.State(d.State), "device after the claim")
			requireLogged(t, r.requestLogs(mark, q.ID), "sent it "+string(tc.wantEvent))
			requireLogged(t, r.deviceLogs(mark, even1), "("+string(tc.wantEvent)+" for ")
			if tc.wantEvent == lifeguard.EventPleasePowerCycle {
				require.Empty(t, d.NextImage, "a power cycle installs nothing")
				r.reboot(even1)
				require.Equal(t, tc.image, r.device(even1).Image, "the image stays")
				require.Equal(t, tc.installed, r.device(even1).BootConfig, "the boot config stays")
			} else {
				require.Equal(t, tc.reqImage, d.NextImage)
				r.install(even1, tc.flow)
				require.Equal(t, tc.reqConfig, r.device(even1).BootConfig)
			}
			r.requireRequest(q.ID, StateReady, even1)
		})
	}
}

// Of two ready devices, the one already carrying the reusable
// image with the same boot config is always chosen, although the other was
// used less recently.
func TestReusableDevicePreferred(t *testing.T) {
	r := newRig(t)
	r.ready(even1, even2)
	r.installOn(even1, "android", "{}", "android")
	require.True(t, r.device(even2).LastUsed.IsZero(), "even2 was never used")

	for i := range 10 {
		q := r.create("any", "android", "even", "")
		r.requireRequest(q.ID, StatePending, even1)
		require.Equal(t, lifeguard.StatePCPowerCycling, lifeguard.State(r.device(even1).State), "round %d", i)
		require.Equal(t, lifeguard.StateReady, lifeguard.State(r.device(even2).State), "round %d: the other device is untouched", i)
		r.reboot(even1)
		r.requireRequest(q.ID, StateReady, even1)
		r.closeRequest(q.ID)
		r.requireRequest(q.ID, StateClosed, "")
	}
	require.True(t, r.device(even2).LastUsed.IsZero(), "even2 was never chosen")
}

// A request for an environment only gets devices of that
// environment; "any" gets the others.
func TestEnvironmentFilter(t *testing.T) {
	r := newRig(t)
	r.ready(pandas...)
	got := map[string]bool{}
	for range 3 {
		q := r.createB2G("any", "odd")
		require.Equal(t, StatePending, State(q.State))
		require.Contains(t, []string{odd1, odd2, odd3}, q.Device, "an odd request got %s", q.Device)
		got[q.Device] = true
	}
	require.Len(t, got, 3)

	// No odd device left: the next odd request waits although even
	// devices are free.
	q := r.createB2G("any", "odd")
	r.requireRequest(q.ID, StateFindingDevice, "")

	anyEnv := r.createB2G("any", "any")
	require.Contains(t, []string{even1, even2}, anyEnv.Device)
	evenEnv := r.createB2G("any", "even")
	require.Contains(t, []string{even1, even2}, evenEnv.Device)
	require.NotEqual(t, anyEnv.Device, evenEnv.Device)

	// A named device must match the environment too.
	r.closeRequest(evenEnv.ID)
	r.force(evenEnv.Device, lifeguard.StatePXEPowerCycling, lifeguard.StateReady)
	named := r.createB2G(evenEnv.Device, "odd")
	r.requireRequest(named.ID, StateFindingDevice, "")
}

// Among equal devices the least recently used is chosen, so two devices
// take turns.
func TestLeastRecentlyUsedFirst(t *testing.T) {
	r := newRig(t)
	r.ready(even1, even2)
	var got []string
	for range 6 {
		q := r.createB2G("any", "even")
		require.Equal(t, StatePending, State(q.State))
		got = append(got, q.Device)
		// Both devices are ready again before the next request, so
		// only last_used tells them apart.
		r.closeRequest(q.ID)
		r.force(q.Device, lifeguard.StatePXEPowerCycling, lifeguard.StateReady)
	}
	require.Equal(t, []string{even1, even2, even1, even2, even1, even2}, got)
}

// Boot configs compare as parsed JSON; what does not parse, or is empty or
// null, counts as {} (as the original).
func TestSameBootConfig(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{`{"b2gbase": "x"}`, `{"b2gbase":"x"}`, true},
		{`{"a": 1, "b": 2}`, `{"b": 2, "a": 1}`, true},
		{`{"a": 1}`, `{"a": "1"}`, false},
		{`{"a": 1}`, `{"a": 1, "b": null}`, false},
		{``, `{}`, true},
		{`null`, `{}`, true},
		{`not json`, `{}`, true},
		{`not json`, `{"a": 1}`, false},
		{`{"a": [1, 2]}`, `{"a":[1,2]}`, true},
		{`{"a": [1, 2]}`, `{"a":[2,1]}`, false},
	}
	for _, tc := range tests {
		require.Equal(t, tc.want, sameBootConfig(tc.a, tc.b), "sameBootConfig(%q, %q)", tc.a, tc.b)
		require.Equal(t, tc.want, sameBootConfig(tc.b, tc.a), "sameBootConfig(%q, %q)", tc.b, tc.a)
	}
}

func TestChoiceSkipsDownServers(t *testing.T) {
	r := newRig(t)
	r.ready(pandas...)
	// The lab's imaging server is unreachable: its rack is frozen, so no
	// board of it is claimed.
	r.apply(fsm.CmdServerHealth, &fsm.ServerHealth{Name: rigServer, Down: true})
	q := r.createB2G("any", "any")
	r.requireRequest(q.ID, StateFindingDevice, "")
	// Back up: the next search claims a board.
	r.apply(fsm.CmdServerHealth, &fsm.ServerHealth{Name: rigServer, Down: false})
	r.timeout(q.ID)
	require.NotEmpty(t, r.request(q.ID).Device)
}
