package lifeguard

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/fsm"
	"github.com/mozpool/mozpool/internal/testlog"
)

// The test lab: one imaging server, pandas on one relay board, and one
// panda without relay_info.
const (
	pandaType, pandaModel = "panda", "ES Rev B2"
	rigServer             = "mobile-imaging-001"

	pandaA       = "panda-0001"
	pandaB       = "panda-0002"
	pandaNoRelay = "panda-0009"
)

// rigT0 is the time of the inventory sync; every later command is later.
var rigT0 = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)

// b2gBootConfig is the boot config of the b2g flows (a JSON document
// carried as a string, as the request layer sends it).
const b2gBootConfig = `{"b2gbase":"x"}`

// stringArg encodes s as the JSON string an EventArgs.BootConfig holds.
func stringArg(s string) json.RawMessage {
	b, _ := json.Marshal(s)
	return b
}

// pleaseImageArgs are the arguments of please_image.
func pleaseImageArgs(image, bootConfig string) fsm.EventArgs {
	return fsm.EventArgs{Image: &image, BootConfig: stringArg(bootConfig)}
}

// rigInventory is the lab the rig syncs: images b2g, android, self-test and
// maintenance, all with PXE configs for the panda; fennec, whose only PXE
// config is for another hardware type; three pandas with relay_info and one
// without.
func rigInventory() fsm.Inventory {
	inv := fsm.Inventory{
		ImagingServers: []fsm.InventoryServer{{Name: rigServer, Rack: "rack-1"}},
		HardwareTypes: []fsm.InventoryHardwareType{
			{Type: pandaType, Model: pandaModel},
			{Type: "tegra", Model: "250"},
		},
		Images: []fsm.ImageSpec{
			{Name: "b2g", BootConfigKeys: []string{"b2gbase"}, HasSUTAgent: true},
			{Name: "android", CanReuse: true, HasSUTAgent: true},
			{Name: "self-test", Hidden: true},
			{Name: "maintenance", Hidden: true},
			{Name: "fennec"},
		},
		PXEConfigs: []fsm.InventoryPXEConfig{
			{Name: "panda-b2g-1", Description: "b2g installer", Contents: "KERNEL b2g"},
			{Name: "panda-android-1", Description: "android installer", Contents: "KERNEL android"},
			{Name: "panda-selftest", Description: "self test", Contents: "KERNEL selftest"},
			{Name: "panda-maint", Description: "maintenance", Contents: "KERNEL maint"},
			{Name: "tegra-fennec", Description: "fennec installer", Contents: "KERNEL fennec"},
		},
		ImagePXEConfigs: []fsm.InventoryImagePXE{
			{Image: "b2g", HardwareType: pandaType, HardwareModel: pandaModel, PXEConfig: "panda-b2g-1"},
			{Image: "android", HardwareType: pandaType, HardwareModel: pandaModel, PXEConfig: "panda-android-1"},
			{Image: "self-test", HardwareType: pandaType, HardwareModel: pandaModel, PXEConfig: "panda-selftest"},
			{Image: "maintenance", HardwareType: pandaType, HardwareModel: pandaModel, PXEConfig: "panda-maint"},
			{Image: "fennec", HardwareType: "tegra", HardwareModel: "250", PXEConfig: "tegra-fennec"},
		},
	}
	for i, name := range []string{pandaA, pandaB, "panda-0003"} {
		inv.Devices = append(inv.Devices, fsm.InventoryDevice{
			Name: name, FQDN: name + ".lab", InventoryID: int64(101 + i),
			MAC:           fmt.Sprintf("00:11:22:33:44:%02x", i+1),
			ImagingServer: rigServer, RelayInfo: fmt.Sprintf("relay-1.lab:bank1:relay%d", i+1),
			HardwareType: pandaType, HardwareModel: pandaModel,
		})
	}
	inv.Devices = append(inv.Devices, fsm.InventoryDevice{
		Name: pandaNoRelay, FQDN: pandaNoRelay + ".lab", InventoryID: 109, MAC: "00:11:22:33:44:09",
		ImagingServer: rigServer, HardwareType: pandaType, HardwareModel: pandaModel,
	})
	return inv
}

// rigOption changes the inventory before it is synced.
type rigOption func(*fsm.Inventory)

// withoutPXE drops the panda's PXE config mapping for image.
func withoutPXE(image string) rigOption {
	return func(inv *fsm.Inventory) {
		inv.ImagePXEConfigs = slices.DeleteFunc(inv.ImagePXEConfigs, func(m fsm.InventoryImagePXE) bool {
			return m.Image == image && m.HardwareType == pandaType
		})
	}
}

// withoutImage drops image and its mappings altogether.
func withoutImage(image string) rigOption {
	return func(inv *fsm.Inventory) {
		withoutPXE(image)(inv)
		inv.Images = slices.DeleteFunc(inv.Images, func(s fsm.ImageSpec) bool { return s.Name == image })
	}
}

// rig is an FSM running the lifeguard table, fed commands with increasing
// log indexes and times, as the Raft log would.
type rig struct {
	t     *testing.T
	f     *fsm.FSM
	index uint64
	at    time.Time
	notes []fsm.Notification
}

// newRig returns an FSM with Machine, loaded with rigInventory (changed by
// opts). Every device starts in StateNew.
func newRig(t *testing.T, opts ...rigOption) *rig {
	t.Helper()
	r := &rig{t: t, at: rigT0}
	r.f = fsm.New(fsm.Config{Logger: testlog.New(t), Devices: Machine{}, Notify: r.record})
	inv := rigInventory()
	for _, o := range opts {
		o(&inv)
	}
	res := r.apply(fsm.CmdInventorySync, &fsm.InventorySync{Inventory: inv, ShipIt: true})
	require.NoError(t, res.Error(), "inventory sync")
	return r
}

// record is the FSM's Notify: it runs on the goroutine that applies, which
// is the test's.
func (r *rig) record(n fsm.Notification) { r.notes = append(r.notes, n) }

// clone returns a rig with a copy of r's state (through a snapshot), so that
// one prepared device can be tried with many events. Notifications start
// afresh.
func (r *rig) clone(t *testing.T) *rig {
	t.Helper()
	snap, err := r.f.Snapshot()
	require.NoError(t, err)
	sink := &snapshotBuffer{}
	require.NoError(t, snap.Persist(sink))
	c := &rig{t: t, index: r.index, at: r.at}
	c.f = fsm.New(fsm.Config{Logger: hclog.NewNullLogger(), Devices: Machine{}, Notify: c.record})
	require.NoError(t, c.f.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))))
	return c
}

// snapshotBuffer is a raft.SnapshotSink in memory.
type snapshotBuffer struct{ bytes.Buffer }

func (*snapshotBuffer) ID() string    { return "mem" }
func (*snapshotBuffer) Close() error  { return nil }
func (*snapshotBuffer) Cancel() error { return nil }

// apply stamps cmd with the next time and applies it at the next index.
func (r *rig) apply(typ fsm.CommandType, cmd fsm.Command) fsm.Result {
	r.t.Helper()
	r.index++
	r.at = r.at.Add(time.Second)
	cmd.Head().At = r.at
	b, err := fsm.Encode(typ, cmd)
	require.NoError(r.t, err)
	return r.f.ApplyCommand(r.index, b)
}

// outcome is the fsm.EventResult of a device command, with its state typed.
type outcome struct {
	State   State
	Ignored bool
	Reason  string
}

// decodeOutcome decodes the fsm.EventResult of res.
func decodeOutcome(res fsm.Result) (outcome, error) {
	var out fsm.EventResult
	err := res.Decode(&out)
	return outcome{State: State(out.State), Ignored: out.Ignored, Reason: out.Reason}, err
}

// tryEvent delivers an external event (generation 0).
func (r *rig) tryEvent(dev string, event Event, args fsm.EventArgs) (outcome, error) {
	r.t.Helper()
	return decodeOutcome(r.apply(fsm.CmdDeviceEvent, &fsm.DeviceEvent{Device: dev, Event: string(event), Args: args, Source: "test"}))
}

// event delivers an external event and requires that it was not refused.
func (r *rig) event(dev string, eventStep Event, args fsm.EventArgs) outcome {
	r.t.Helper()
	from := r.state(dev)
	res, err := r.tryEvent(dev, eventStep, args)
	require.NoError(r.t, err, "Handle(%s, %s) failed", from, eventStep)
	return res
}

// timeout proposes the timeout of the device's current state entry, as its
// owner's timer would once the deadline has passed (the command time moves
// past the deadline).
func (r *rig) timeout(dev string) outcome {
	r.t.Helper()
	d := r.device(dev)
	if d.StateDeadline.After(r.at) {
		r.at = d.StateDeadline
	}
	out, err := decodeOutcome(r.apply(fsm.CmdDeviceTimeout, &fsm.DeviceTimeout{Device: dev, Generation: d.Generation}))
	require.NoError(r.t, err, "Handle(%s, timeout) failed", d.State)
	return out
}

// tryForce is a forced state change from → to.
func (r *rig) tryForce(dev string, from, to State) (outcome, error) {
	r.t.Helper()
	return decodeOutcome(r.apply(fsm.CmdDeviceStateChange, &fsm.DeviceStateChange{Device: dev, From: string(from), To: string(to)}))
}

// force is tryForce that must succeed.
func (r *rig) force(dev string, from, to State) outcome {
	r.t.Helper()
	res, err := r.tryForce(dev, from, to)
	require.NoError(r.t, err, "state-change %s: %s → %s", dev, from, to)
	return res
}

// forceFromCurrent forces the device into to from wherever it is.
func (r *rig) forceFromCurrent(dev string, to State) outcome {
	r.t.Helper()
	return r.force(dev, r.state(dev), to)
}

// state is the device's current state.
func (r *rig) state(dev string) State {
	r.t.Helper()
	return State(r.device(dev).State)
}

// device returns a copy of the device record.
func (r *rig) device(dev string) fsm.Device {
	r.t.Helper()
	var d fsm.Device
	found := false
	r.f.Read(func(s *fsm.State) {
		if p, ok := s.Devices[dev]; ok {
			d, found = *p, true
			d.Counters = maps.Clone(p.Counters)
		}
	})
	require.True(r.t, found, "no device %s", dev)
	return d
}

// mark remembers where the notifications are, for entered.
func (r *rig) mark() int { return len(r.notes) }

// entered lists the states dev entered since mark, in order.
func (r *rig) entered(dev string, mark int) []State {
	var out []State
	for _, n := range r.notes[mark:] {
		for _, tr := range n.Transitions {
			if tr.Device == dev {
				out = append(out, State(tr.State))
			}
		}
	}
	return out
}

// flowStep is one thing that happens to a device: an event, or its timeout
// when Event is empty. Want is the state the device is in afterwards.
type flowStep struct {
	Event Event
	Args  fsm.EventArgs
	Want  State
}

// timeoutStep is a timeout step.
func timeoutStep(want State) flowStep { return flowStep{Want: want} }

// eventStep is an event step without arguments.
func eventStep(event Event, want State) flowStep { return flowStep{Event: event, Want: want} }

func (s flowStep) name() Event {
	if s.Event == "" {
		return "timeout"
	}
	return s.Event
}

// run performs steps on dev and checks the state after each.
func (r *rig) run(dev string, steps ...flowStep) {
	r.t.Helper()
	for i, s := range steps {
		from := r.state(dev)
		var res outcome
		if s.Event == "" {
			res = r.timeout(dev)
		} else {
			res = r.event(dev, s.Event, s.Args)
		}
		require.False(r.t, res.Ignored, "step %d: Handle(%s, %s) ignored (%s), want %s", i, from, s.name(), res.Reason, s.Want)
		require.Equal(r.t, s.Want, res.State, "step %d: Handle(%s, %s) = %s, want %s", i, from, s.name(), res.State, s.Want)
		require.Equal(r.t, s.Want, r.state(dev), "step %d: stored state after Handle(%s, %s)", i, from, s.name())
	}
}

// toReady moves a fresh device from StateNew to ready by a forced change.
func (r *rig) toReady(dev string) {
	r.t.Helper()
	r.force(dev, StateNew, StateReady)
}
