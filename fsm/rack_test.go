package fsm_test

import (
	"bytes"
	"encoding/binary"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/fsm"
	"github.com/mozpool/mozpool/internal/testlog"
	"github.com/mozpool/mozpool/lifeguard"
)

const (
	srv1 = "mobile-imaging-001"
	srv2 = "mobile-imaging-002"
)

// newRackRig syncs the sample inventory with rack-1 served by srv1, srv2
// standing by.
func newRackRig(t *testing.T) *devRig {
	t.Helper()
	r := &devRig{t: t, rec: &recorder{}, index: 1, at: t0}
	r.f = fsm.New(fsm.Config{Logger: testlog.New(t), Devices: lifeguard.Machine{},
		Notify: func(n fsm.Notification) { r.rec.notes = append(r.rec.notes, n) }})
	inv := sampleInventory()
	inv.Racks = []fsm.InventoryRack{{Name: "rack-1", Servers: []string{srv1, srv2}}}
	applyOK(t, r.f, 1, fsm.CmdInventorySync, fsm.InventorySync{Header: fsm.Header{At: t0}, Inventory: inv})
	return r
}

func (r *devRig) rack(name string) fsm.Rack {
	r.t.Helper()
	var out fsm.Rack
	r.f.Read(func(s *fsm.State) {
		rk, ok := s.Racks[name]
		require.True(r.t, ok, "rack %s", name)
		out = *rk
	})
	return out
}

func (r *devRig) fencedEvent(name string, event lifeguard.Event, gen uint64, f fsm.Fence) fsm.Result {
	r.t.Helper()
	return r.apply(fsm.CmdDeviceEvent, &fsm.DeviceEvent{Device: name, Event: string(event), Generation: gen, Source: "bmm", Fence: f})
}

func TestRack_InventoryNamesOwnerAndStandbys(t *testing.T) {
	r := newRackRig(t)
	rk := r.rack("rack-1")
	require.Equal(t, []string{srv1, srv2}, rk.Servers)
	require.Equal(t, srv1, rk.Owner)
	require.Equal(t, uint64(1), rk.Generation)
	d := r.device(lgDev)
	require.Equal(t, "rack-1", d.Rack)
	require.Equal(t, srv1, d.ImagingServer, "imaging_server is who acts on the board now")
	// A rack not listed is served by its own servers.
	require.Equal(t, []string{srv2}, r.rack("rack-2").Servers)

	// A rack naming an unknown server, twice the same, or none is refused.
	for _, racks := range [][]fsm.InventoryRack{
		{{Name: "rack-1", Servers: []string{srv1, "nope"}}},
		{{Name: "rack-1", Servers: []string{srv1, srv1}}},
		{{Name: "rack-1"}},
		{{Name: "rack-1", Servers: []string{srv1}}, {Name: "rack-1", Servers: []string{srv2}}},
	} {
		inv := sampleInventory()
		inv.Racks = racks
		res := r.apply(fsm.CmdInventorySync, &fsm.InventorySync{Inventory: inv})
		require.Error(t, res.Error(), "%+v", racks)
	}
	require.Equal(t, rk, r.rack("rack-1"), "refused syncs change nothing")
}

// An imaging server's result is taken only from the owner of the board's
// rack, under the rack's current generation.
func TestRack_FenceRefusesNonOwnerAndStaleGeneration(t *testing.T) {
	r := newRackRig(t)
	require.Equal(t, lifeguard.StatePXEPowerCycling, r.event(lgDev, lifeguard.EventPleaseImage, 0, lgImageArgs("b2g", "{}")).State)
	gen := r.device(lgDev).Generation

	res := r.fencedEvent(lgDev, lifeguard.EventPowerCycleOK, gen, fsm.Fence{Server: srv2, RackGeneration: 1})
	require.ErrorIs(t, res.Error(), fsm.ErrFenced, "a standby's result")
	res = r.fencedEvent(lgDev, lifeguard.EventPowerCycleOK, gen, fsm.Fence{Server: srv1, RackGeneration: 7})
	require.ErrorIs(t, res.Error(), fsm.ErrFenced, "a generation the rack never had")
	require.Equal(t, lifeguard.StatePXEPowerCycling, lifeguard.State(r.device(lgDev).State), "refused results change nothing")

	// The owner's result under the current generation is taken.
	require.Equal(t, lifeguard.StatePXEBooting, r.result(r.fencedEvent(lgDev, lifeguard.EventPowerCycleOK, gen, fsm.Fence{Server: srv1, RackGeneration: 1})).State)

	// After a takeover, the former owner is fenced, and so is the new
	// owner under the generation it saw before.
	require.NoError(t, r.apply(fsm.CmdRackTakeover, &fsm.RackTakeover{Rack: "rack-1", Server: srv2, Generation: 1}).Error())
	d := r.device(lgDev)
	for _, f := range []fsm.Fence{{Server: srv1, RackGeneration: 1}, {Server: srv1, RackGeneration: 2}, {Server: srv2, RackGeneration: 1}} {
		require.ErrorIs(t, r.apply(fsm.CmdDeviceTimeout, &fsm.DeviceTimeout{Device: lgDev, Generation: d.Generation, Fence: f}).Error(), fsm.ErrFenced, "timeout %+v", f)
		require.ErrorIs(t, r.fencedEvent(lgDev, lifeguard.EventMobileInitStarted, d.Generation, f).Error(), fsm.ErrFenced, "event %+v", f)
		require.ErrorIs(t, r.apply(fsm.CmdDeviceStateChange, &fsm.DeviceStateChange{Device: lgDev, From: d.State, To: "ready", Fence: f}).Error(), fsm.ErrFenced, "state change %+v", f)
	}
	require.Equal(t, d, r.device(lgDev))
	require.Equal(t, lifeguard.StateMobileInitStarted, r.result(r.fencedEvent(lgDev, lifeguard.EventMobileInitStarted, d.Generation, fsm.Fence{Server: srv2, RackGeneration: 2})).State)

	// A former owner's log lines about the board are dropped; the owner's
	// are filed.
	mark := len(r.rec.logs())
	require.NoError(t, r.apply(fsm.CmdLogAppend, &fsm.LogAppend{Server: srv1, RackGenerations: map[string]uint64{"rack-1": 1},
		Entries: []fsm.LogEntry{{Kind: fsm.LogDevice, Name: lgDev, Source: "syslog", Message: "old owner"}}}).Error())
	require.NoError(t, r.apply(fsm.CmdLogAppend, &fsm.LogAppend{Server: srv2, RackGenerations: map[string]uint64{"rack-1": 2},
		Entries: []fsm.LogEntry{{Kind: fsm.LogDevice, Name: lgDev, Source: "syslog", Message: "new owner"}}}).Error())
	var msgs []string
	for _, e := range r.rec.logs()[mark:] {
		msgs = append(msgs, e.Message)
	}
	require.Equal(t, []string{"new owner"}, msgs)

	// Commands without a fence (the API's) are not fenced.
	require.NoError(t, r.apply(fsm.CmdDeviceStateChange, &fsm.DeviceStateChange{Device: lgDev, From: string(lifeguard.StateMobileInitStarted), To: "ready"}).Error())
}

// A takeover moves the rack's boards and relay boards to the standby, bumps
// the ownership generation, and enters each board's state again with its
// timeout counted from now; one decided on a stale view is refused.
func TestRack_TakeoverBumpsGenerationAndContinuesBoards(t *testing.T) {
	r := newRackRig(t)
	r.event(lgDev, lifeguard.EventPleaseImage, 0, lgImageArgs("b2g", "{}"))
	before := r.device(lgDev)
	span := before.StateDeadline.Sub(before.StateEntered)
	require.Positive(t, span)

	res := r.apply(fsm.CmdRackTakeover, &fsm.RackTakeover{Rack: "rack-1", Server: srv2, Generation: 1})
	require.NoError(t, res.Error())
	rk := r.rack("rack-1")
	require.Equal(t, srv2, rk.Owner)
	require.Equal(t, uint64(2), rk.Generation)
	require.Equal(t, "takeover", rk.Reason)

	d := r.device(lgDev)
	require.Equal(t, srv2, d.ImagingServer)
	require.Equal(t, before.State, d.State, "the board continues from its state")
	require.Equal(t, before.Generation+1, d.Generation, "a new entry of the state: the old owner's results are stale")
	require.Equal(t, r.at, d.StateEntered)
	require.Equal(t, r.at.Add(span), d.StateDeadline, "the state's timeout counts again from the takeover")
	require.Equal(t, srv2, r.device("panda-0002").ImagingServer)
	require.Equal(t, srv2, r.device("panda-0003").ImagingServer, "rack-2 is srv2's own")
	r.f.Read(func(s *fsm.State) { require.Equal(t, srv2, s.RelayBoards["relay-1"].ImagingServer) })

	// The old owner's result for the entry it was working on is refused.
	require.ErrorIs(t, r.fencedEvent(lgDev, lifeguard.EventPowerCycleOK, before.Generation, fsm.Fence{Server: srv1, RackGeneration: 1}).Error(), fsm.ErrFenced)

	// A second takeover decided on the same view is refused: fencing.
	require.ErrorIs(t, r.apply(fsm.CmdRackTakeover, &fsm.RackTakeover{Rack: "rack-1", Server: srv1, Generation: 1}).Error(), fsm.ErrFenced)
	require.ErrorIs(t, r.apply(fsm.CmdRackTakeover, &fsm.RackTakeover{Rack: "rack-1", Server: srv2, Generation: 2}).Error(), fsm.ErrConflict, "the owner already")
	require.ErrorIs(t, r.apply(fsm.CmdRackTakeover, &fsm.RackTakeover{Rack: "rack-2", Server: srv1, Generation: 1}).Error(), fsm.ErrInvalid, "not a server of the rack")
	require.ErrorIs(t, r.apply(fsm.CmdRackTakeover, &fsm.RackTakeover{Rack: "rack-9", Server: srv1, Generation: 1}).Error(), fsm.ErrUnknownRack)
	require.Equal(t, rk, r.rack("rack-1"))
}

// An operator moves a rack by hand; the move survives a snapshot round
// trip, and a later inventory sync keeps the owner while it is one of the
// rack's servers.
func TestRack_MoveAndSnapshotRoundTrip(t *testing.T) {
	r := newRackRig(t)
	require.ErrorIs(t, r.apply(fsm.CmdRackMove, &fsm.RackMove{Rack: "rack-1", Server: srv2, Generation: 5}).Error(), fsm.ErrConflict)
	require.ErrorIs(t, r.apply(fsm.CmdRackMove, &fsm.RackMove{Rack: "rack-1", Server: "nope"}).Error(), fsm.ErrInvalid)
	require.NoError(t, r.apply(fsm.CmdRackMove, &fsm.RackMove{Rack: "rack-1", Server: srv2}).Error())
	require.Equal(t, "move", r.rack("rack-1").Reason)
	// Moving to the owner is a no-op.
	require.NoError(t, r.apply(fsm.CmdRackMove, &fsm.RackMove{Rack: "rack-1", Server: srv2}).Error())
	require.Equal(t, uint64(2), r.rack("rack-1").Generation)

	restored := fsm.New(fsm.Config{Logger: testlog.New(t), Devices: lifeguard.Machine{}})
	require.NoError(t, restored.Restore(io.NopCloser(bytes.NewReader(snapshotBytes(t, r.f)))))
	restored.Read(func(s *fsm.State) {
		rk := s.Racks["rack-1"]
		require.Equal(t, srv2, rk.Owner)
		require.Equal(t, uint64(2), rk.Generation)
		require.Equal(t, []string{srv1, srv2}, rk.Servers)
		require.Equal(t, srv2, s.Devices[lgDev].ImagingServer)
	})
	requireState(t, snapshotBytes(t, r.f), restored, "restored racks")

	inv := sampleInventory()
	inv.Racks = []fsm.InventoryRack{{Name: "rack-1", Servers: []string{srv1, srv2}}}
	require.NoError(t, r.apply(fsm.CmdInventorySync, &fsm.InventorySync{Inventory: inv}).Error())
	require.Equal(t, srv2, r.rack("rack-1").Owner, "a sync keeps an owner that is still a server of the rack")
	require.Equal(t, srv2, r.device(lgDev).ImagingServer, "and the boards stay with it")
	inv.Racks = []fsm.InventoryRack{{Name: "rack-1", Servers: []string{srv1}}}
	require.NoError(t, r.apply(fsm.CmdInventorySync, &fsm.InventorySync{Inventory: inv, ShipIt: true}).Error())
	require.Equal(t, srv1, r.rack("rack-1").Owner, "an owner dropped from the rack gives it to the first server")
	require.Equal(t, uint64(3), r.rack("rack-1").Generation)
	require.Equal(t, srv1, r.device(lgDev).ImagingServer)
}

// A snapshot taken before racks had owners (no rack records) restores;
// the next inventory sync gives the racks their owners.
func TestRack_SnapshotWithoutRackRecordsRestores(t *testing.T) {
	r := newRackRig(t)
	b := snapshotBytes(t, r.f)
	var old []byte
	for len(b) > 0 {
		n, k := binary.Uvarint(b[1:])
		rec := b[:1+k+int(n)]
		if rec[0] != 19 {
			old = append(old, rec...)
		}
		b = b[len(rec):]
	}
	g := fsm.New(fsm.Config{Logger: testlog.New(t), Devices: lifeguard.Machine{}})
	require.NoError(t, g.Restore(io.NopCloser(bytes.NewReader(old))))
	g.Read(func(s *fsm.State) {
		require.Empty(t, s.Racks)
		require.Len(t, s.Devices, 4)
		require.Equal(t, srv1, s.Devices[lgDev].ImagingServer)
	})
	inv := sampleInventory()
	inv.Racks = []fsm.InventoryRack{{Name: "rack-1", Servers: []string{srv2, srv1}}}
	applyOK(t, g, 100, fsm.CmdInventorySync, fsm.InventorySync{Header: fsm.Header{At: t0.Add(time.Hour)}, Inventory: inv})
	g.Read(func(s *fsm.State) {
		require.Equal(t, srv2, s.Racks["rack-1"].Owner)
		require.Equal(t, uint64(1), s.Racks["rack-1"].Generation)
		require.Equal(t, srv2, s.Devices[lgDev].ImagingServer)
	})
}
