package fsm_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/fsm"
	"github.com/mozpool/mozpool/internal/testlog"
	"github.com/mozpool/mozpool/lifeguard"
	"github.com/mozpool/mozpool/requests"
)

// Request commands at the FSM level. The request table's behaviour is
// tested in package requests; here: the FSM refuses request commands
// without a machine, and applies a log of them deterministically.

func TestRequestCommands_NoMachine(t *testing.T) {
	f := testFSM(t)
	syncSample(t, f)
	at := t0.Add(time.Minute)
	cmds := []struct {
		typ fsm.CommandType
		cmd any
	}{
		{fsm.CmdRequestCreate, fsm.RequestCreate{Header: fsm.Header{At: at}, RequestedDevice: "any", Assignee: "me",
			Expires: at.Add(time.Hour), Image: "android", BootConfig: "{}"}},
		{fsm.CmdRequestEvent, fsm.RequestEvent{Header: fsm.Header{At: at}, ID: 1, Event: string(requests.EventClose)}},
		{fsm.CmdRequestTimeout, fsm.RequestTimeout{Header: fsm.Header{At: at}, ID: 1, Generation: 1}},
		{fsm.CmdRequestRenew, fsm.RequestRenew{Header: fsm.Header{At: at}, ID: 1, Expires: at.Add(time.Hour)}},
		{fsm.CmdRequestExpire, fsm.RequestExpire{Header: fsm.Header{At: at}, ID: 1}},
		{fsm.CmdRequestCompact, fsm.RequestCompact{Header: fsm.Header{At: at}, Before: at}},
	}
	for i, c := range cmds {
		res := apply(t, f, uint64(2+i), c.typ, c.cmd)
		require.Error(t, res.Error(), "%s without a request machine", c.typ)
	}
	f.Read(func(s *fsm.State) { require.Empty(t, s.Requests) })
}

// requestFSM is an FSM with both machines and the sample inventory, all
// pandas ready.
func requestFSM(t *testing.T) *fsm.FSM {
	t.Helper()
	f := fsm.New(fsm.Config{Logger: testlog.New(t), Devices: lifeguard.Machine{}, Requests: requests.Machine{}})
	syncSample(t, f)
	return f
}

// Claims, searches, results and returns replayed from the same log give
// byte-identical states: device choice depends on nothing but the log.
func TestRequestLog_Deterministic(t *testing.T) {
	f := requestFSM(t)
	var log [][]byte
	index := uint64(1)
	at := t0
	add := func(typ fsm.CommandType, cmd fsm.Command) fsm.Result {
		t.Helper()
		index++
		at = at.Add(time.Second)
		cmd.Head().At = at
		b := encode(t, typ, cmd)
		log = append(log, b)
		return f.ApplyCommand(index, b)
	}
	for i := 1; i <= 4; i++ {
		require.NoError(t, add(fsm.CmdDeviceStateChange, &fsm.DeviceStateChange{Device: fmt.Sprintf("panda-%04d", i), From: string(lifeguard.StateNew), To: string(lifeguard.StateReady)}).Error())
	}
	var ids []int64
	for i := range 8 {
		image, bc := "b2g", `{"b2gbase": "x"}`
		if i%2 == 1 {
			image, bc = "android", "{}"
		}
		var q fsm.Request
		require.NoError(t, add(fsm.CmdRequestCreate, &fsm.RequestCreate{RequestedDevice: "any", Assignee: "me",
			Expires: at.Add(time.Hour), Image: image, BootConfig: bc, Environment: "any"}).Decode(&q))
		ids = append(ids, q.ID)
	}
	for round := range 3 {
		for _, id := range ids {
			var r fsm.Request
			f.Read(func(s *fsm.State) { r = *s.Requests[id] })
			switch {
			case r.State == string(requests.StatePending) && round == 0:
				add(fsm.CmdRequestEvent, &fsm.RequestEvent{ID: id, Event: string(requests.EventLifeguardFinished),
					Args: fsm.RequestEventArgs{ImagingResult: "failed-bad-device"}})
			case r.State == string(requests.StatePending):
				add(fsm.CmdRequestEvent, &fsm.RequestEvent{ID: id, Event: string(requests.EventClose)})
			case r.State == string(requests.StateFindingDevice):
				add(fsm.CmdRequestTimeout, &fsm.RequestTimeout{ID: id, Generation: r.Generation})
			}
		}
		for i := 1; i <= 4; i++ {
			name := fmt.Sprintf("panda-%04d", i)
			var d fsm.Device
			f.Read(func(s *fsm.State) { d = *s.Devices[name] })
			if d.RequestID == 0 && d.State != string(lifeguard.StateReady) {
				add(fsm.CmdDeviceStateChange, &fsm.DeviceStateChange{Device: name, From: d.State, To: string(lifeguard.StateReady)})
			}
		}
	}
	closed := 0
	f.Read(func(s *fsm.State) {
		for _, r := range s.Requests {
			if r.State == string(requests.StateClosed) {
				closed++
			}
		}
	})
	require.GreaterOrEqual(t, closed, 4, "the log claims, moves and returns requests")
	want := snapshotBytes(t, f)
	for range 5 {
		g := requestFSM(t)
		for i, b := range log {
			g.ApplyCommand(uint64(2+i), b)
		}
		requireState(t, want, g, "replayed log")
	}
}

// A request's claim history records each device it held, from the index of
// the entry that claimed it to that of the entry that released it; a
// rename of the device moves the claim at the rename's index, and the
// history survives a snapshot.
func TestRequest_ClaimHistory(t *testing.T) {
	f := requestFSM(t)
	index := uint64(1)
	at := t0
	next := func() (uint64, time.Time) { index++; at = at.Add(time.Second); return index, at }
	for i := 1; i <= 4; i++ {
		ix, at := next()
		applyOK(t, f, ix, fsm.CmdDeviceStateChange, fsm.DeviceStateChange{Header: fsm.Header{At: at},
			Device: fmt.Sprintf("panda-%04d", i), From: string(lifeguard.StateNew), To: string(lifeguard.StateReady)})
	}
	created, at := next()
	var q fsm.Request
	require.NoError(t, apply(t, f, created, fsm.CmdRequestCreate, fsm.RequestCreate{Header: fsm.Header{At: at},
		RequestedDevice: "any", Assignee: "me", Expires: at.Add(time.Hour), Image: "android", BootConfig: "{}",
		Environment: "any"}).Decode(&q))
	var held string
	f.Read(func(s *fsm.State) {
		r := s.Requests[q.ID]
		held = r.Device
		require.NotEmpty(t, held)
		require.Equal(t, []fsm.Claim{{Device: held, From: created}}, r.Claims)
	})

	renamed, at := next()
	inv := sampleInventory()
	for i := range inv.Devices {
		if inv.Devices[i].Name == held {
			inv.Devices[i].Name = "renamed-board"
		}
	}
	_, err := sync(t, f, renamed, at, inv, false)
	require.NoError(t, err)

	closed, at := next()
	applyOK(t, f, closed, fsm.CmdRequestEvent, fsm.RequestEvent{Header: fsm.Header{At: at}, ID: q.ID, Event: string(requests.EventClose)})
	want := []fsm.Claim{{Device: held, From: created, To: renamed}, {Device: "renamed-board", From: renamed, To: closed}}
	f.Read(func(s *fsm.State) { require.Equal(t, want, s.Requests[q.ID].Claims) })

	g := restore(t, snapshotBytes(t, f))
	g.Read(func(s *fsm.State) { require.Equal(t, want, s.Requests[q.ID].Claims, "after a snapshot") })
}
