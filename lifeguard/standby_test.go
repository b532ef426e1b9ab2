package lifeguard

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/fsm"
)

const rigStandby = "mobile-imaging-002"

// withStandby syncs the rig's inventory again with rack-1 naming the rig's
// server, then rigStandby.
func (r *execRig) withStandby(t *testing.T) {
	t.Helper()
	inv := rigInventory()
	inv.ImagingServers = append(inv.ImagingServers, fsm.InventoryServer{Name: rigStandby})
	inv.Racks = []fsm.InventoryRack{{Name: "rack-1", Servers: []string{rigServer, rigStandby}}}
	res, _ := r.propose(context.Background(), fsm.CmdInventorySync, &fsm.InventorySync{Inventory: inv, ShipIt: true})
	require.NoError(t, res.Error())
}

// fences returns the fences of the device results and timeouts proposed
// so far about dev.
func (r *execRig) fences(dev string) []fsm.Fence {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []fsm.Fence
	for _, c := range r.proposed {
		switch c := c.(type) {
		case *fsm.DeviceEvent:
			if c.Device == dev && c.Generation != 0 {
				out = append(out, c.Fence)
			}
		case *fsm.DeviceTimeout:
			if c.Device == dev {
				out = append(out, c.Fence)
			}
		}
	}
	return out
}

func (r *execRig) hwCalls(dev string) int {
	n := 0
	for _, c := range r.hw.Calls() {
		if len(c) >= len(dev) && c[len(c)-len(dev):] == dev {
			n++
		}
	}
	return n
}

// Every result and timeout the executor proposes names its server and the
// rack ownership generation it acted under.
func TestExecutor_ProposalsCarryTheRackGeneration(t *testing.T) {
	r := newExecRig(t, rigServer)
	r.withStandby(t)
	r.force(t, pandaB, StateLockedOut)
	r.force(t, pandaNoRelay, StateLockedOut)
	r.force(t, pandaA, StateReady)
	r.start(t)
	res, _ := r.propose(context.Background(), fsm.CmdDeviceEvent, &fsm.DeviceEvent{Device: pandaA, Event: string(EventPleasePowerCycle)})
	require.NoError(t, res.Error())
	require.Eventually(t, func() bool { return r.state(pandaA) == StateReady && len(r.fences(pandaA)) >= 2 }, 10*time.Second, 5*time.Millisecond)
	for _, f := range r.fences(pandaA) {
		require.Equal(t, fsm.Fence{Server: rigServer, RackGeneration: 1}, f)
	}
}

// Once the rack is moved to the standby the executor does nothing to its
// boards; moved back, it acts again, under the new generation.
func TestExecutor_StopsWhenTheRackMovesAway(t *testing.T) {
	r := newExecRig(t, rigServer)
	r.withStandby(t)
	r.force(t, pandaB, StateLockedOut)
	r.force(t, pandaNoRelay, StateLockedOut)
	r.force(t, "panda-0003", StateLockedOut)
	r.force(t, pandaA, StateLockedOut)
	r.start(t)
	res, _ := r.propose(context.Background(), fsm.CmdRackMove, &fsm.RackMove{Rack: "rack-1", Server: rigStandby})
	require.NoError(t, res.Error())
	before := r.hwCalls(pandaA)
	r.force(t, pandaA, StateReady)
	res, _ = r.propose(context.Background(), fsm.CmdDeviceEvent, &fsm.DeviceEvent{Device: pandaA, Event: string(EventPleasePowerCycle)})
	require.NoError(t, res.Error())
	require.Never(t, func() bool { return r.hwCalls(pandaA) != before }, 300*time.Millisecond, 10*time.Millisecond,
		"the executor acted on a board of a rack it no longer owns")
	require.Equal(t, StatePCPowerCycling, r.state(pandaA))

	res, _ = r.propose(context.Background(), fsm.CmdRackMove, &fsm.RackMove{Rack: "rack-1", Server: rigServer})
	require.NoError(t, res.Error())
	require.Eventually(t, func() bool { return r.state(pandaA) == StateReady }, 10*time.Second, 5*time.Millisecond,
		"the board continues from its state once the rack is back")
	fences := r.fences(pandaA)
	require.NotEmpty(t, fences)
	for _, f := range fences {
		require.Equal(t, fsm.Fence{Server: rigServer, RackGeneration: 3}, f)
	}
}

// A node out of contact with the cluster starts no action: it may have
// lost its rack without knowing.
func TestExecutor_ActsOnlyInContact(t *testing.T) {
	r := newExecRig(t, rigServer)
	r.force(t, pandaB, StateLockedOut)
	r.force(t, pandaNoRelay, StateLockedOut)
	r.force(t, "panda-0003", StateLockedOut)
	r.force(t, pandaA, StateLockedOut)
	r.inContact.Store(false)
	r.start(t)
	r.force(t, pandaA, StatePCPowerCycling)
	require.Never(t, func() bool { return len(r.hw.Calls()) > 0 }, 300*time.Millisecond, 10*time.Millisecond,
		"acted while out of contact")
	r.inContact.Store(true)
	require.Eventually(t, func() bool { return r.hwCalls(pandaA) > 0 }, 5*time.Second, 10*time.Millisecond)
}

// A board net-booting when its rack is taken over gets its PXE file
// written by the new owner, which did not power-cycle it.
func TestExecutor_RebuildsThePXEFileOfANetBootingBoard(t *testing.T) {
	r := newExecRig(t, rigStandby)
	r.withStandby(t)
	for _, dev := range []string{pandaB, pandaNoRelay, "panda-0003"} {
		r.force(t, dev, StateLockedOut)
	}
	r.force(t, pandaA, StateReady)
	res, _ := r.propose(context.Background(), fsm.CmdDeviceEvent, &fsm.DeviceEvent{Device: pandaA, Event: string(EventPleaseImage), Args: pleaseImageArgs("b2g", b2gBootConfig)})
	require.NoError(t, res.Error())
	r.force(t, pandaA, StatePXEBooting) // the owner power-cycled it
	r.start(t)
	require.Never(t, func() bool { return r.hwCalls(pandaA) > 0 }, 200*time.Millisecond, 10*time.Millisecond, "a standby acted")
	res, _ = r.propose(context.Background(), fsm.CmdRackTakeover, &fsm.RackTakeover{Rack: "rack-1", Server: rigStandby, Generation: 1})
	require.NoError(t, res.Error())
	require.Eventually(t, func() bool {
		for _, c := range r.hw.Calls() {
			if c == "set-pxe "+pandaA+" panda-b2g-1" {
				return true
			}
		}
		return false
	}, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, StatePXEBooting, r.state(pandaA))
}
