package requests

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/fsm"
	"github.com/mozpool/mozpool/internal/testlog"
	"github.com/mozpool/mozpool/lifeguard"
)

// The test lab: one imaging server; five pandas, two in environment "even"
// and three in "odd"; one tegra in "even" whose hardware has no PXE config
// for b2g (only for android).
const (
	pandaType, pandaModel = "panda", "ES Rev B2"
	tegraType, tegraModel = "tegra", "250"
	rigServer             = "mobile-imaging-001"

	even1 = "panda-even-1"
	even2 = "panda-even-2"
	odd1  = "panda-odd-1"
	odd2  = "panda-odd-2"
	odd3  = "panda-odd-3"
	tegra = "tegra-even-1"
)

// pandas are the devices that can take every image.
var pandas = []string{even1, even2, odd1, odd2, odd3}

// rigT0 is the time of the inventory sync; every later command is later.
var rigT0 = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)

// b2gConfig is a boot config of the b2g image (its only key is b2gbase).
const b2gConfig = `{"b2gbase": "http://builds/b2g"}`

// rigInventory is the lab: images b2g (boot-config key b2gbase, not
// reusable), android (reusable, no keys) and linux (reusable, key kernel),
// each with a PXE config for the panda; the tegra only has android.
func rigInventory() fsm.Inventory {
	inv := fsm.Inventory{
		ImagingServers: []fsm.InventoryServer{{Name: rigServer, Rack: "rack-1"}},
		HardwareTypes: []fsm.InventoryHardwareType{
			{Type: pandaType, Model: pandaModel},
			{Type: tegraType, Model: tegraModel},
		},
		Images: []fsm.ImageSpec{
			{Name: "b2g", BootConfigKeys: []string{"b2gbase"}, HasSUTAgent: true},
			{Name: "android", CanReuse: true, HasSUTAgent: true},
			{Name: "linux", CanReuse: true, BootConfigKeys: []string{"kernel"}, HasSUTAgent: true},
			{Name: "self-test", Hidden: true},
		},
		PXEConfigs: []fsm.InventoryPXEConfig{
			{Name: "panda-b2g", Contents: "KERNEL b2g"},
			{Name: "panda-android", Contents: "KERNEL android"},
			{Name: "panda-linux", Contents: "KERNEL linux"},
			{Name: "panda-selftest", Contents: "KERNEL selftest"},
			{Name: "tegra-android", Contents: "KERNEL tegra-android"},
		},
		ImagePXEConfigs: []fsm.InventoryImagePXE{
			{Image: "b2g", HardwareType: pandaType, HardwareModel: pandaModel, PXEConfig: "panda-b2g"},
			{Image: "android", HardwareType: pandaType, HardwareModel: pandaModel, PXEConfig: "panda-android"},
			{Image: "linux", HardwareType: pandaType, HardwareModel: pandaModel, PXEConfig: "panda-linux"},
			{Image: "self-test", HardwareType: pandaType, HardwareModel: pandaModel, PXEConfig: "panda-selftest"},
			{Image: "android", HardwareType: tegraType, HardwareModel: tegraModel, PXEConfig: "tegra-android"},
		},
	}
	envs := map[string]string{even1: "even", even2: "even", odd1: "odd", odd2: "odd", odd3: "odd"}
	for i, name := range pandas {
		inv.Devices = append(inv.Devices, fsm.InventoryDevice{
			Name: name, FQDN: name + ".lab", InventoryID: int64(101 + i),
			MAC:           fmt.Sprintf("00:11:22:33:44:%02x", i+1),
			ImagingServer: rigServer, RelayInfo: fmt.Sprintf("relay-1.lab:bank1:relay%d", i+1),
			HardwareType: pandaType, HardwareModel: pandaModel, Environment: envs[name],
		})
	}
	inv.Devices = append(inv.Devices, fsm.InventoryDevice{
		Name: tegra, FQDN: tegra + ".lab", InventoryID: 201, MAC: "00:11:22:33:55:01",
		ImagingServer: rigServer, RelayInfo: "relay-1.lab:bank2:relay1",
		HardwareType: tegraType, HardwareModel: tegraModel, Environment: "even",
	})
	return inv
}

// newFSM returns an FSM running both machines, with notify as its Notify.
func newFSM(t *testing.T, notify func(fsm.Notification)) *fsm.FSM {
	t.Helper()
	return fsm.New(fsm.Config{Logger: testlog.New(t), Devices: lifeguard.Machine{}, Requests: Machine{}, Notify: notify})
}

// rig is an FSM running the lifeguard and request tables, fed commands with
// increasing log indexes and times, as the Raft log would. After every
// command it checks that claims pair devices and requests one to one.
type rig struct {
	t     *testing.T
	f     *fsm.FSM
	index uint64
	at    time.Time
	notes []fsm.Notification
}

// newRig syncs rigInventory; every device starts in "new".
func newRig(t *testing.T) *rig {
	t.Helper()
	r := &rig{t: t, at: rigT0}
	r.f = newFSM(t, func(n fsm.Notification) { r.notes = append(r.notes, n) })
	res := r.apply(fsm.CmdInventorySync, &fsm.InventorySync{Inventory: rigInventory(), ShipIt: true})
	require.NoError(t, res.Error(), "inventory sync")
	return r
}

// apply stamps cmd with the next second and applies it at the next index.
func (r *rig) apply(typ fsm.CommandType, cmd fsm.Command) fsm.Result {
	r.t.Helper()
	r.index++
	r.at = r.at.Add(time.Second)
	cmd.Head().At = r.at
	b, err := fsm.Encode(typ, cmd)
	require.NoError(r.t, err)
	res := r.f.ApplyCommand(r.index, b)
	requireClaimsConsistent(r.t, r.f, fmt.Sprintf("after %s at index %d", typ, r.index))
	return res
}

// requireClaimsConsistent checks the claim invariant: every claimed device
// names an open request that names it back, every request holding a device
// is named by that device, and closed or failed requests hold nothing. So no
// device is ever held by two requests, nor a request by two devices.
func requireClaimsConsistent(t *testing.T, f *fsm.FSM, when string) {
	t.Helper()
	m := Machine{}
	f.Read(func(s *fsm.State) {
		for name, d := range s.Devices {
			if d.RequestID == 0 {
				continue
			}
			req, ok := s.Requests[d.RequestID]
			require.True(t, ok, "%s: device %s claimed by missing request %d", when, name, d.RequestID)
			require.Equal(t, name, req.Device, "%s: device %s claimed by request %d, which holds %q", when, name, req.ID, req.Device)
			require.True(t, m.Open(req.State), "%s: device %s claimed by request %d in state %s", when, name, req.ID, req.State)
		}
		for id, req := range s.Requests {
			if req.Device == "" {
				continue
			}
			d, ok := s.Devices[req.Device]
			require.True(t, ok, "%s: request %d holds missing device %s", when, id, req.Device)
			require.Equal(t, id, d.RequestID, "%s: request %d holds %s, which is claimed by %d", when, id, req.Device, d.RequestID)
		}
	})
}

// createCmd is a create for dev with the image and environment; the boot
// config is the image's ("{}" unless given) and it expires in a day.
func (r *rig) createCmd(dev, image, env, bootConfig string) *fsm.RequestCreate {
	if bootConfig == "" {
		bootConfig = "{}"
	}
	return &fsm.RequestCreate{RequestedDevice: dev, Assignee: "slave-1", Expires: r.at.Add(24 * time.Hour),
		Image: image, BootConfig: bootConfig, Environment: env, Server: rigServer}
}

// tryCreateCmd applies a create and decodes its result.
func (r *rig) tryCreateCmd(c *fsm.RequestCreate) (fsm.Request, error) {
	r.t.Helper()
	var out fsm.Request
	err := r.apply(fsm.CmdRequestCreate, c).Decode(&out)
	return out, err
}

// create applies a create that must succeed and returns the request as it
// is after the command.
func (r *rig) create(dev, image, env, bootConfig string) fsm.Request {
	r.t.Helper()
	out, err := r.tryCreateCmd(r.createCmd(dev, image, env, bootConfig))
	require.NoError(r.t, err, "create %s %s %s", dev, image, env)
	return out
}

// createB2G is a b2g request for dev in env.
func (r *rig) createB2G(dev, env string) fsm.Request {
	r.t.Helper()
	return r.create(dev, "b2g", env, b2gConfig)
}

// ready forces fresh devices from new to ready.
func (r *rig) ready(devs ...string) {
	r.t.Helper()
	for _, d := range devs {
		r.force(d, lifeguard.StateNew, lifeguard.StateReady)
	}
}

// force is a forced device state change that must succeed. A device
// forced ready may be claimed by a waiting request in the same Apply.
func (r *rig) force(dev string, from, to lifeguard.State) {
	r.t.Helper()
	claimed := r.device(dev).RequestID
	res := r.apply(fsm.CmdDeviceStateChange, &fsm.DeviceStateChange{Device: dev, From: string(from), To: string(to)})
	require.NoError(r.t, res.Error(), "state-change %s: %s → %s", dev, from, to)
	if d := r.device(dev); d.RequestID == 0 || d.RequestID == claimed {
		require.Equal(r.t, to, r.deviceState(dev))
	}
}

// deviceState is a device's state.
func (r *rig) deviceState(name string) lifeguard.State {
	r.t.Helper()
	return lifeguard.State(r.device(name).State)
}

// device returns a copy of a device record.
func (r *rig) device(name string) fsm.Device {
	r.t.Helper()
	var d fsm.Device
	found := false
	r.f.Read(func(s *fsm.State) {
		if p, ok := s.Devices[name]; ok {
			d, found = *p, true
			d.Counters = maps.Clone(p.Counters)
		}
	})
	require.True(r.t, found, "no device %s", name)
	return d
}

// request returns a copy of a request record.
func (r *rig) request(id int64) fsm.Request {
	r.t.Helper()
	var q fsm.Request
	found := false
	r.f.Read(func(s *fsm.State) {
		if p, ok := s.Requests[id]; ok {
			q, found = *p, true
			q.Counters = maps.Clone(p.Counters)
		}
	})
	require.True(r.t, found, "no request %d", id)
	return q
}

// exists reports whether request id is in the state.
func (r *rig) exists(id int64) bool {
	var ok bool
	r.f.Read(func(s *fsm.State) { _, ok = s.Requests[id] })
	return ok
}

// requestState is a request's state.
func (r *rig) requestState(id int64) State {
	r.t.Helper()
	return State(r.request(id).State)
}

// requireRequest checks a request's state and the device it holds.
func (r *rig) requireRequest(id int64, state State, device string) {
	r.t.Helper()
	q := r.request(id)
	require.Equal(r.t, state, State(q.State), "request %d state", id)
	require.Equal(r.t, device, q.Device, "request %d device", id)
}

// eventResult decodes an EventResult that must not be an error.
func (r *rig) eventResult(res fsm.Result) fsm.EventResult {
	r.t.Helper()
	var out fsm.EventResult
	require.NoError(r.t, res.Decode(&out))
	return out
}

// outcome is an fsm.EventResult with the state typed by its machine's
// State (requests' or lifeguard's).
type outcome[S ~string] struct {
	State   S
	Ignored bool
	Reason  string
}

func outcomeOf[S ~string](e fsm.EventResult) outcome[S] {
	return outcome[S]{State: S(e.State), Ignored: e.Ignored, Reason: e.Reason}
}

// requestEvent delivers an event to a request from outside.
func (r *rig) requestEvent(id int64, event Event, result lifeguard.Result) outcome[State] {
	r.t.Helper()
	return outcomeOf[State](r.eventResult(r.apply(fsm.CmdRequestEvent, &fsm.RequestEvent{ID: id, Event: string(event),
		Args: fsm.RequestEventArgs{ImagingResult: string(result)}})))
}

// closeRequest is a return.
func (r *rig) closeRequest(id int64) outcome[State] {
	r.t.Helper()
	return r.requestEvent(id, EventClose, "")
}

// timeout proposes the timeout of the request's current state entry, as the
// leader's driver would once the deadline has passed (the command time
// moves past the deadline).
func (r *rig) timeout(id int64) outcome[State] {
	r.t.Helper()
	q := r.request(id)
	require.False(r.t, q.StateDeadline.IsZero(), "request %d in %s has no deadline", id, q.State)
	if q.StateDeadline.After(r.at) {
		r.at = q.StateDeadline
	}
	return outcomeOf[State](r.eventResult(r.apply(fsm.CmdRequestTimeout, &fsm.RequestTimeout{ID: id, Generation: q.Generation})))
}

// timeouts fires n timeouts of the request in a row.
func (r *rig) timeouts(id int64, n int) {
	r.t.Helper()
	for range n {
		r.timeout(id)
	}
}

// expire proposes the request's expiry at the current command time.
func (r *rig) expire(id int64) outcome[State] {
	r.t.Helper()
	return outcomeOf[State](r.eventResult(r.apply(fsm.CmdRequestExpire, &fsm.RequestExpire{ID: id})))
}

// deviceEvent delivers a device event; a hardware result (hw) carries the
// generation of the state entry it was started for.
func (r *rig) deviceEvent(dev string, event lifeguard.Event, hw bool) outcome[lifeguard.State] {
	r.t.Helper()
	var gen uint64
	if hw {
		gen = r.device(dev).Generation
	}
	res := r.eventResult(r.apply(fsm.CmdDeviceEvent, &fsm.DeviceEvent{Device: dev, Event: string(event), Generation: gen, Source: "test"}))
	require.False(r.t, res.Ignored, "device %s ignored %s: %s", dev, event, res.Reason)
	return outcomeOf[lifeguard.State](res)
}

// deviceTimeout fires the timeout of the device's current state entry.
func (r *rig) deviceTimeout(dev string) outcome[lifeguard.State] {
	r.t.Helper()
	d := r.device(dev)
	if d.StateDeadline.After(r.at) {
		r.at = d.StateDeadline
	}
	return outcomeOf[lifeguard.State](r.eventResult(r.apply(fsm.CmdDeviceTimeout, &fsm.DeviceTimeout{Device: dev, Generation: d.Generation})))
}

// imagingStep is a device event and the state after it.
type imagingStep struct {
	event lifeguard.Event
	want  lifeguard.State
}

// imagingSteps are the device's steps from pxe_power_cycling to ready for
// an install flow ("b2g" or "android"), with the state after each.
func imagingSteps(flow string) []imagingStep {
	steps := map[string][]imagingStep{
		"b2g": {
			{lifeguard.EventB2GDownloading, lifeguard.StateB2GDownloading},
			{lifeguard.EventB2GExtracting, lifeguard.StateB2GExtracting},
			{lifeguard.EventB2GRebooting, lifeguard.StateSUTVerifying},
		},
		"android": {
			{lifeguard.EventAndroidDownloading, lifeguard.StateAndroidDownloading},
			{lifeguard.EventAndroidExtracting, lifeguard.StateAndroidExtracting},
			{lifeguard.EventAndroidRebooting, lifeguard.StateSUTVerifying},
		},
	}[flow]
	return slices.Concat([]imagingStep{
		{lifeguard.EventPowerCycleOK, lifeguard.StatePXEBooting},
		{lifeguard.EventMobileInitStarted, lifeguard.StateMobileInitStarted},
	}, steps, []imagingStep{
		{lifeguard.EventSUTVerifyOK, lifeguard.StateSUTSDCardVerifying},
		{lifeguard.EventSUTSDCardOK, lifeguard.StateReady},
	})
}

// hardwareResults are the events the imaging server sends (tagged with a
// generation); the others come from the board.
var hardwareResults = map[lifeguard.Event]bool{
	lifeguard.EventPowerCycleOK: true, lifeguard.EventPingOK: true, lifeguard.EventSUTVerifyOK: true, lifeguard.EventSUTSDCardOK: true,
}

// install drives dev, which must be in pxe_power_cycling, through an
// install flow to ready, checking every state on the way.
func (r *rig) install(dev, flow string) {
	r.t.Helper()
	require.Equal(r.t, lifeguard.StatePXEPowerCycling, r.deviceState(dev), "device %s before installing", dev)
	for _, s := range imagingSteps(flow) {
		res := r.deviceEvent(dev, s.event, hardwareResults[s.event])
		require.Equal(r.t, s.want, res.State, "device %s: Handle(%s) = %s, want %s", dev, s.event, res.State, s.want)
	}
}

// reboot drives dev, which must be in pc_power_cycling, through a plain
// power cycle to ready.
func (r *rig) reboot(dev string) {
	r.t.Helper()
	require.Equal(r.t, lifeguard.StatePCPowerCycling, r.deviceState(dev), "device %s before rebooting", dev)
	require.Equal(r.t, lifeguard.StatePCRebooting, r.deviceEvent(dev, lifeguard.EventPowerCycleOK, true).State)
	require.Equal(r.t, lifeguard.StatePCPinging, r.deviceTimeout(dev).State)
	require.Equal(r.t, lifeguard.StateReady, r.deviceEvent(dev, lifeguard.EventPingOK, true).State)
}

// mark remembers where the notifications are, for logs.
func (r *rig) mark() int { return len(r.notes) }

// logs returns the messages logged for a device or request (kind and name)
// since mark.
func (r *rig) logs(mark int, kind, name string) []string {
	var out []string
	for _, n := range r.notes[mark:] {
		for _, l := range n.Logs {
			if l.Kind == kind && l.Name == name {
				out = append(out, l.Message)
			}
		}
	}
	return out
}

// requestLogs are the messages logged for request id since mark.
func (r *rig) requestLogs(mark int, id int64) []string {
	return r.logs(mark, fsm.LogRequest, strconv.FormatInt(id, 10))
}

// deviceLogs are the messages logged for device name since mark.
func (r *rig) deviceLogs(mark int, name string) []string {
	return r.logs(mark, fsm.LogDevice, name)
}

// requireLogged requires a message containing substr among msgs.
func requireLogged(t *testing.T, msgs []string, substr string) {
	t.Helper()
	for _, m := range msgs {
		if strings.Contains(m, substr) {
			return
		}
	}
	require.Failf(t, "message not logged", "no message contains %q in %q", substr, msgs)
}

// snapshot copies the rig's state into a fresh FSM through Snapshot,
// Persist and Restore.
func (r *rig) snapshot() *fsm.FSM {
	r.t.Helper()
	snap, err := r.f.Snapshot()
	require.NoError(r.t, err)
	sink := &snapshotBuffer{}
	require.NoError(r.t, snap.Persist(sink))
	f := newFSM(r.t, nil)
	require.NoError(r.t, f.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))))
	return f
}

// snapshotBuffer is a raft.SnapshotSink in memory.
type snapshotBuffer struct{ bytes.Buffer }

func (*snapshotBuffer) ID() string    { return "mem" }
func (*snapshotBuffer) Close() error  { return nil }
func (*snapshotBuffer) Cancel() error { return nil }
