package fsm_test

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/fsm"
	"github.com/mozpool/mozpool/lifeguard"
	"github.com/mozpool/mozpool/requests"
)

// qlab is a lab of boards on one imaging server with the real device and
// request machines, driven one command at a time at a command time the
// test sets. Boards come free by force: a test closes a board's request
// and forces the board back to ready, and the Apply of that state change
// assigns it.
type qlab struct {
	tb    testing.TB
	f     *fsm.FSM
	index uint64
	at    time.Time
	// notes counts the notifications naming requests.
	notes []fsm.Notification
}

const (
	qServer             = "srv-1"
	qPanda, qPandaModel = "panda", "ES Rev B2"
	qTegra, qTegraModel = "tegra", "250"
)

func qBoard(i int) string { return fmt.Sprintf("board-%05d", i) }

// newQLab syncs n boards (pandas unless tweak says otherwise) and leaves
// them in state new; ready makes them ready.
func newQLab(tb testing.TB, n int, tweak func(i int, d *fsm.InventoryDevice)) *qlab {
	tb.Helper()
	l := &qlab{tb: tb, at: t0}
	l.f = fsm.New(fsm.Config{Devices: lifeguard.Machine{}, Requests: requests.Machine{},
		Notify: func(n fsm.Notification) {
			if len(n.Requests) > 0 {
				l.notes = append(l.notes, n)
			}
		}})
	inv := fsm.Inventory{
		ImagingServers: []fsm.InventoryServer{{Name: qServer}},
		HardwareTypes:  []fsm.InventoryHardwareType{{Type: qPanda, Model: qPandaModel}, {Type: qTegra, Model: qTegraModel}},
		Images:         []fsm.ImageSpec{{Name: "android", HasSUTAgent: true}},
		PXEConfigs:     []fsm.InventoryPXEConfig{{Name: "panda-android", Contents: "x"}, {Name: "tegra-android", Contents: "y"}},
		ImagePXEConfigs: []fsm.InventoryImagePXE{
			{Image: "android", HardwareType: qPanda, HardwareModel: qPandaModel, PXEConfig: "panda-android"},
			{Image: "android", HardwareType: qTegra, HardwareModel: qTegraModel, PXEConfig: "tegra-android"},
		},
	}
	for i := range n {
		d := fsm.InventoryDevice{Name: qBoard(i), FQDN: qBoard(i) + ".lab", InventoryID: int64(i + 1),
			MAC: fmt.Sprintf("02:00:00:%02x:%02x:%02x", i>>16&0xff, i>>8&0xff, i&0xff), ImagingServer: qServer,
			HardwareType: qPanda, HardwareModel: qPandaModel,
			RelayInfo: fmt.Sprintf("relay-%d.lab:bank%d:relay%d", i/64, i/8%8+1, i%8+1)}
		if tweak != nil {
			tweak(i, &d)
		}
		inv.Devices = append(inv.Devices, d)
	}
	l.do(fsm.CmdInventorySync, &fsm.InventorySync{Inventory: inv, ShipIt: true})
	return l
}

func (l *qlab) do(typ fsm.CommandType, cmd fsm.Command) fsm.Result {
	l.tb.Helper()
	cmd.Head().At = l.at
	b, err := fsm.Encode(typ, cmd)
	require.NoError(l.tb, err)
	l.index++
	return l.f.ApplyCommand(l.index, b)
}

func (l *qlab) ok(typ fsm.CommandType, cmd fsm.Command) fsm.Result {
	l.tb.Helper()
	res := l.do(typ, cmd)
	require.NoError(l.tb, res.Error())
	return res
}

// ready forces boards from new to ready.
func (l *qlab) ready(boards ...string) {
	l.tb.Helper()
	for _, b := range boards {
		l.ok(fsm.CmdDeviceStateChange, &fsm.DeviceStateChange{Device: b, From: string(lifeguard.StateNew), To: string(lifeguard.StateReady)})
	}
}

// create creates a request for "any" (unless mod names a board) by
// assignee "ci", for an hour.
func (l *qlab) create(mod func(c *fsm.RequestCreate)) fsm.Request {
	l.tb.Helper()
	c := &fsm.RequestCreate{RequestedDevice: "any", Assignee: "ci", Expires: l.at.Add(time.Hour), Image: "android",
		BootConfig: "{}", Server: qServer}
	if mod != nil {
		mod(c)
	}
	var r fsm.Request
	require.NoError(l.tb, l.ok(fsm.CmdRequestCreate, c).Decode(&r))
	return r
}

func (l *qlab) req(id int64) fsm.Request {
	var r fsm.Request
	l.f.Read(func(s *fsm.State) { r = *s.Requests[id] })
	return r
}

func (l *qlab) holder(board string) int64 {
	var id int64
	l.f.Read(func(s *fsm.State) { id = s.Devices[board].RequestID })
	return id
}

// cycle returns the board's request and forces the board ready: the Apply
// of the state change assigns it. It returns the new holder (0: none).
func (l *qlab) cycle(board string) int64 {
	l.tb.Helper()
	if id := l.holder(board); id != 0 {
		l.ok(fsm.CmdRequestEvent, &fsm.RequestEvent{ID: id, Event: string(requests.EventClose)})
	}
	var state string
	l.f.Read(func(s *fsm.State) { state = s.Devices[board].State })
	l.ok(fsm.CmdDeviceStateChange, &fsm.DeviceStateChange{Device: board, From: state, To: string(lifeguard.StateReady)})
	return l.holder(board)
}

func requireReq(tb testing.TB, l *qlab, id int64, want requests.State) {
	tb.Helper()
	require.Equal(tb, want, requests.State(l.req(id).State), "request %d", id)
}

func prio(p int) func(*fsm.RequestCreate) {
	return func(c *fsm.RequestCreate) { c.Priority = &p }
}

// Higher priorities are served first; within one, arrival order.
func TestQueue_PriorityOrder(t *testing.T) {
	l := newQLab(t, 1, nil)
	l.ready(qBoard(0))
	first := l.create(nil)
	requireReq(t, l, first.ID, requests.StatePending)
	low := l.create(prio(-5))
	high := l.create(prio(10))
	mid := l.create(nil)
	high2 := l.create(prio(10))
	for _, r := range []fsm.Request{low, high, mid, high2} {
		requireReq(t, l, r.ID, requests.StateFindingDevice)
	}
	var got []int64
	for range 4 {
		got = append(got, l.cycle(qBoard(0)))
	}
	require.Equal(t, []int64{high.ID, high2.ID, mid.ID, low.ID}, got)
}

// Two groups that submit 10:1 are served 1:1 while both wait; within a
// group, in arrival order.
func TestQueue_FairShare(t *testing.T) {
	l := newQLab(t, 2, nil)
	l.ready(qBoard(0), qBoard(1))
	l.create(nil)
	l.create(nil)
	group := map[int64]string{}
	submit := func(g string, n int) {
		for range n {
			r := l.create(func(c *fsm.RequestCreate) { c.Group = g; c.MaxWait = time.Hour })
			group[r.ID] = g
		}
	}
	submit("big", 100)
	submit("small", 10)
	served := map[string]int{}
	var lastBig int64
	for round := range 40 {
		// Both keep submitting, 10:1, so both keep waiting.
		submit("big", 10)
		submit("small", 1)
		for _, b := range []string{qBoard(0), qBoard(1)} {
			id := l.cycle(b)
			require.NotZero(t, id)
			served[group[id]]++
			if group[id] == "big" {
				require.Greater(t, id, lastBig, "round %d: a group is served in arrival order", round)
				lastBig = id
			}
		}
		l.at = l.at.Add(time.Second)
	}
	total := served["big"] + served["small"]
	require.Equal(t, 80, total)
	diff := served["big"] - served["small"]
	require.LessOrEqual(t, abs(diff), total/10, "served %v: not within 10%% of 1:1", served)
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

// A low-priority request under a continuous stream of higher-priority ones
// is served by the first board that comes free after it has waited
// fsm.AgingAfter.
func TestQueue_AgingBound(t *testing.T) {
	l := newQLab(t, 1, nil)
	l.ready(qBoard(0))
	l.create(nil)
	long := func(c *fsm.RequestCreate) { c.MaxWait = time.Hour }
	low := l.create(func(c *fsm.RequestCreate) { long(c); prio(-100)(c) })
	queued := l.at
	const every = 20 * time.Second
	for i := 0; ; i++ {
		require.Less(t, i, 100, "the low-priority request was never served")
		// Two high-priority arrivals per board freed: the stream never
		// runs dry.
		l.create(func(c *fsm.RequestCreate) { long(c); prio(100)(c) })
		l.create(func(c *fsm.RequestCreate) { long(c); prio(100)(c) })
		l.at = l.at.Add(every)
		if l.cycle(qBoard(0)) == low.ID {
			waited := l.at.Sub(queued)
			require.GreaterOrEqual(t, waited, fsm.AgingAfter, "served before it aged: priorities were not respected")
			require.Less(t, waited, fsm.AgingAfter+every, "not served by the first board after it aged")
			return
		}
	}
}

// Requests take only boards that meet their constraints; a board that does
// not suit the first in line goes to the first it suits; constraints no
// board can meet fail at once with a reason.
func TestQueue_Constraints(t *testing.T) {
	l := newQLab(t, 4, func(i int, d *fsm.InventoryDevice) {
		switch i {
		case 0:
			d.Tags = map[string]string{"cpu": "armv7", "android": "4.0.4"}
		case 1:
			d.Tags = map[string]string{"cpu": "armv6"}
		case 2:
			d.HardwareType, d.HardwareModel = qTegra, qTegraModel
		case 3:
			d.Environment = "b2g"
		}
	})
	tegra := l.create(func(c *fsm.RequestCreate) { c.HardwareType = qTegra })
	armv7 := l.create(func(c *fsm.RequestCreate) { c.Tags = map[string]string{"cpu": "armv7"} })
	pool := l.create(func(c *fsm.RequestCreate) { c.Environment = "b2g" })
	model := l.create(func(c *fsm.RequestCreate) { c.HardwareModel = qPandaModel; c.Tags = map[string]string{"cpu": "armv6"} })
	for _, r := range []fsm.Request{tegra, armv7, pool, model} {
		requireReq(t, l, r.ID, requests.StateFindingDevice)
	}
	// Freed in the reverse order: each goes to the one request it suits.
	l.ready(qBoard(3), qBoard(2), qBoard(1), qBoard(0))
	require.Equal(t, qBoard(2), l.req(tegra.ID).Device)
	require.Equal(t, qBoard(0), l.req(armv7.ID).Device)
	require.Equal(t, qBoard(3), l.req(pool.ID).Device)
	require.Equal(t, qBoard(1), l.req(model.ID).Device)

	for _, mod := range []func(*fsm.RequestCreate){
		func(c *fsm.RequestCreate) { c.Tags = map[string]string{"cpu": "armv8"} },
		func(c *fsm.RequestCreate) { c.HardwareType = "beagle" },
		func(c *fsm.RequestCreate) { c.HardwareType = qTegra; c.Tags = map[string]string{"cpu": "armv7"} },
	} {
		r := l.create(mod)
		require.Equal(t, requests.StateFailedDeviceNotFound, requests.State(r.State), "fails in the creating Apply")
		require.Contains(t, l.req(r.ID).Reason, "no board in the inventory has")
	}
	// An environment nobody has is waited for: a board may be moved
	// into it through the API.
	r := l.create(func(c *fsm.RequestCreate) { c.HardwareType = qTegra; c.Environment = "b2g" })
	requireReq(t, l, r.ID, requests.StateFindingDevice)
}

// Among free boards, a request takes the one whose history shows the
// most trust (the device machine's Trust: clean net boots in a row) before
// the least recently used: a proven board first, then one that has booted
// more, and last one that hung not long ago.
func TestQueue_PrefersTrustedBoards(t *testing.T) {
	l := newQLab(t, 4, nil)
	l.ready(qBoard(0), qBoard(1), qBoard(2), qBoard(3))
	boot := fsm.Outcome{At: t0, Op: "boot"}
	hung := fsm.Outcome{At: t0, Op: "boot", Fail: string(lifeguard.StatePXEBooting)}
	l.f.Read(func(s *fsm.State) {
		// Test-only: histories as the machine would have recorded them.
		s.Devices[qBoard(0)].History = []fsm.Outcome{boot}
		s.Devices[qBoard(1)].History = []fsm.Outcome{hung, boot, boot, boot, boot}
		s.Devices[qBoard(2)].History = []fsm.Outcome{boot, boot, boot, boot}
		s.Devices[qBoard(3)].History = []fsm.Outcome{boot, boot}
	})
	var got []string
	for range 4 {
		got = append(got, l.req(l.create(nil).ID).Device)
	}
	require.Equal(t, []string{qBoard(2), qBoard(3), qBoard(0), qBoard(1)}, got,
		"proven; two clean boots; one; hung four boots ago")
}

// A request for a named board that is busy waits for it, before later
// requests for any board; one that asks not to wait fails at once.
func TestQueue_NamedDeviceWaits(t *testing.T) {
	l := newQLab(t, 2, nil)
	l.ready(qBoard(0), qBoard(1))
	l.create(nil)
	l.create(nil)
	named := l.create(func(c *fsm.RequestCreate) { c.RequestedDevice = qBoard(1) })
	requireReq(t, l, named.ID, requests.StateFindingDevice)
	anyReq := l.create(nil)
	noWait := l.create(func(c *fsm.RequestCreate) { c.RequestedDevice = qBoard(1); c.NoWait = true })
	requireReq(t, l, noWait.ID, requests.StateFailedDeviceBusy)

	// Board 0 does not suit the named request: the next in line gets it.
	require.Equal(t, anyReq.ID, l.cycle(qBoard(0)))
	requireReq(t, l, named.ID, requests.StateFindingDevice)
	require.Equal(t, named.ID, l.cycle(qBoard(1)))
	requireReq(t, l, named.ID, requests.StatePending)
}

// A waiting request's only timer is its max_wait (scaled); nothing else of
// it changes while nothing happens, and when the wait ends it fails as the
// original did.
func TestQueue_MaxWaitIsTheOnlyTimer(t *testing.T) {
	l := newQLab(t, 1, nil)
	l.ok(fsm.CmdSetTimeScale, &fsm.SetTimeScale{TimeScale: 0.5})
	l.ready(qBoard(0))
	l.create(nil)
	def := l.create(nil)
	short := l.create(func(c *fsm.RequestCreate) { c.MaxWait = 30 * time.Second })
	got := l.req(def.ID)
	require.Equal(t, fsm.DefaultMaxWait/2, got.StateDeadline.Sub(got.StateEntered), "default max_wait, scaled")
	got = l.req(short.ID)
	require.Equal(t, 15*time.Second, got.StateDeadline.Sub(got.StateEntered))

	// Commands that change nothing a request could use touch no request.
	before := len(l.notes)
	l.ok(fsm.CmdLogAppend, &fsm.LogAppend{Entries: []fsm.LogEntry{{Kind: fsm.LogDevice, Name: qBoard(0), Message: "hi"}}})
	l.ok(fsm.CmdDeviceSetComments, &fsm.DeviceSetComments{Device: qBoard(0), Comments: "busy"})
	require.Len(t, l.notes, before, "no request changed")

	res := l.ok(fsm.CmdRequestTimeout, &fsm.RequestTimeout{ID: short.ID, Generation: l.req(short.ID).Generation})
	require.NoError(t, res.Error())
	requireReq(t, l, short.ID, requests.StateFailedDeviceNotFound)
	requireReq(t, l, def.ID, requests.StateFindingDevice)

	// max_wait may not exceed the request's duration.
	res = l.do(fsm.CmdRequestCreate, &fsm.RequestCreate{RequestedDevice: "any", Assignee: "ci", Expires: l.at.Add(time.Minute),
		Image: "android", BootConfig: "{}", MaxWait: time.Hour})
	require.ErrorIs(t, res.Error(), fsm.ErrInvalid)
}

// queueLog is a random but reproducible life of a queue: creates with
// groups, priorities and constraints, boards freed, returns, timeouts.
func runQueueLog(t *testing.T, l *qlab, seed uint64, steps int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 7))
	var open []int64
	for range steps {
		l.at = l.at.Add(time.Duration(rng.IntN(90)) * time.Second)
		switch k := rng.IntN(10); {
		case k < 5:
			r := l.create(func(c *fsm.RequestCreate) {
				p := rng.IntN(3) - 1
				c.Priority = &p
				c.Group = fmt.Sprintf("team-%d", rng.IntN(3))
				c.MaxWait = 20 * time.Minute
				if rng.IntN(4) == 0 {
					c.Tags = map[string]string{"cpu": "armv7"}
				}
				if rng.IntN(8) == 0 {
					c.RequestedDevice = qBoard(rng.IntN(6))
				}
			})
			open = append(open, r.ID)
		case k < 8:
			l.cycle(qBoard(rng.IntN(6)))
		default:
			if len(open) > 0 {
				id := open[rng.IntN(len(open))]
				l.do(fsm.CmdRequestTimeout, &fsm.RequestTimeout{ID: id, Generation: l.req(id).Generation})
			}
		}
	}
}

func newDeterminismLab(t *testing.T) *qlab {
	l := newQLab(t, 6, func(i int, d *fsm.InventoryDevice) {
		if i%2 == 0 {
			d.Tags = map[string]string{"cpu": "armv7"}
		}
	})
	for i := range 6 {
		l.ready(qBoard(i))
	}
	return l
}

// Two FSMs fed the same log make the same assignments and hold the same
// state, queue included; so does one restored from a snapshot midway.
func TestQueue_Deterministic(t *testing.T) {
	a, b := newDeterminismLab(t), newDeterminismLab(t)
	runQueueLog(t, a, 1, 300)
	runQueueLog(t, b, 1, 300)
	require.Equal(t, snapshotBytes(t, a.f), snapshotBytes(t, b.f))
	var waiting int
	a.f.Read(func(s *fsm.State) { waiting = s.Queue.Len() })
	require.Positive(t, waiting, "the log must leave requests waiting")

	c := &qlab{tb: t, f: fsm.New(fsm.Config{Devices: lifeguard.Machine{}, Requests: requests.Machine{}}), index: a.index, at: a.at}
	require.NoError(t, c.f.Restore(io.NopCloser(bytes.NewReader(snapshotBytes(t, a.f)))))
	runQueueLog(t, a, 2, 200)
	runQueueLog(t, c, 2, 200)
	require.Equal(t, snapshotBytes(t, a.f), snapshotBytes(t, c.f), "a restored replica diverged")
}

// Positions follow the service order; ETAs do not go back in line.
func TestQueue_PositionAndETA(t *testing.T) {
	l := newQLab(t, 1, nil)
	l.ready(qBoard(0))
	l.create(nil)
	wait := func(p int) func(*fsm.RequestCreate) {
		return func(c *fsm.RequestCreate) {
			prio(p)(c)
			c.Expires = l.at.Add(10 * time.Hour)
			c.MaxWait = 10 * time.Hour
		}
	}
	low := l.create(wait(-1))
	high := l.create(wait(1))
	mid := l.create(wait(0))
	short := l.create(func(c *fsm.RequestCreate) { c.MaxWait = time.Minute })
	v := l.f.QueueView(l.at)
	var pos []int
	var etas []time.Time
	for _, r := range []fsm.Request{high, mid, low} {
		it, ok := v.Item(r.ID)
		require.True(t, ok)
		pos = append(pos, it.Position)
		etas = append(etas, it.ETA)
		require.Equal(t, 4, it.Competitors)
	}
	require.Equal(t, []int{1, 2, 3}, pos)
	require.False(t, etas[0].IsZero())
	require.True(t, etas[0].Before(etas[1]) && etas[1].Before(etas[2]), "etas %v", etas)
	// Its wait ends before the board can come back: no ETA.
	it, ok := v.Item(short.ID)
	require.True(t, ok)
	require.True(t, it.ETA.IsZero())
	_, ok = v.Item(99)
	require.False(t, ok)
}

// The history learns imaging time per hardware and image when a request
// becomes ready, and hold time per group when it gives its board back;
// ETAs use them.
func TestQueue_HistoryLearns(t *testing.T) {
	l := newQLab(t, 1, nil)
	l.ready(qBoard(0))
	r := l.create(func(c *fsm.RequestCreate) { c.Group = "team" })
	l.at = l.at.Add(3 * time.Minute)
	l.ok(fsm.CmdDeviceStateChange, &fsm.DeviceStateChange{Device: qBoard(0), From: string(lifeguard.StatePXEPowerCycling),
		To: string(lifeguard.StateOperationComplete)})
	requireReq(t, l, r.ID, requests.StateReady)
	l.at = l.at.Add(20 * time.Minute)
	l.ok(fsm.CmdRequestEvent, &fsm.RequestEvent{ID: r.ID, Event: string(requests.EventClose)})
	l.f.Read(func(s *fsm.State) {
		require.Equal(t, 3*time.Minute, s.ImagingTime(fsm.HardwareKey(qPanda, qPandaModel), "android", false))
		require.Equal(t, 20*time.Minute, s.HoldTime("team"))
	})
}

// A group of weight 2 is served twice as often as one of weight 1 while
// both wait.
func TestQueue_WeightedFairShare(t *testing.T) {
	l := newQLab(t, 1, nil)
	l.ready(qBoard(0))
	l.create(nil)
	l.ok(fsm.CmdQueueSetWeight, &fsm.QueueSetWeight{Group: "heavy", Weight: 2})
	require.ErrorIs(t, l.do(fsm.CmdQueueSetWeight, &fsm.QueueSetWeight{Group: "x", Weight: 101}).Error(), fsm.ErrInvalid)
	require.ErrorIs(t, l.do(fsm.CmdQueueSetWeight, &fsm.QueueSetWeight{Weight: 1}).Error(), fsm.ErrInvalid)
	group := map[int64]string{}
	for range 60 {
		for _, g := range []string{"heavy", "light"} {
			r := l.create(func(c *fsm.RequestCreate) { c.Group = g; c.MaxWait = time.Hour })
			group[r.ID] = g
		}
	}
	served := map[string]int{}
	for range 60 {
		served[group[l.cycle(qBoard(0))]]++
	}
	require.InDelta(t, 40, served["heavy"], 4, "served %v", served)
	l.f.Read(func(s *fsm.State) { require.Equal(t, map[string]int{"heavy": 2}, s.Queue.GroupWeights()) })
}

// The queue epoch records the index of its first command; later ones
// change nothing.
func TestQueue_Epoch(t *testing.T) {
	l := newQLab(t, 1, nil)
	l.ok(fsm.CmdQueueEpoch, &fsm.QueueEpoch{})
	first := l.index
	l.ok(fsm.CmdQueueEpoch, &fsm.QueueEpoch{})
	l.f.Read(func(s *fsm.State) { require.Equal(t, first, s.Queue.Epoch) })
	g := restoreQueueLab(t, l)
	g.Read(func(s *fsm.State) { require.Equal(t, first, s.Queue.Epoch, "in the snapshot") })
}

func restoreQueueLab(t *testing.T, l *qlab) *fsm.FSM {
	t.Helper()
	g := fsm.New(fsm.Config{Devices: lifeguard.Machine{}, Requests: requests.Machine{}})
	require.NoError(t, g.Restore(io.NopCloser(bytes.NewReader(snapshotBytes(t, l.f)))))
	return g
}

// Every change that can make a board suit a waiting request assigns it in
// the same Apply: an environment set, a PXE config mapped, an imaging
// server back up, a board added by the inventory.
func TestQueue_AssignedOnEveryRelevantChange(t *testing.T) {
	l := newQLab(t, 2, nil)
	l.ready(qBoard(0), qBoard(1))
	holder := l.create(func(c *fsm.RequestCreate) { c.RequestedDevice = qBoard(1) })
	requireReq(t, l, holder.ID, requests.StatePending)

	// An environment: the board is moved into it.
	env := l.create(func(c *fsm.RequestCreate) { c.Environment = "b2g"; c.MaxWait = time.Hour })
	requireReq(t, l, env.ID, requests.StateFindingDevice)
	l.ok(fsm.CmdDeviceSetEnvironment, &fsm.DeviceSetEnvironment{Device: qBoard(0), Environment: "b2g"})
	require.Equal(t, qBoard(0), l.req(env.ID).Device)
	l.cycle(qBoard(0))

	// An image no hardware has a PXE config for: mapped.
	l.ok(fsm.CmdImageUpsert, &fsm.ImageUpsert{Image: fsm.ImageSpec{Name: "linux"}})
	img := l.create(func(c *fsm.RequestCreate) { c.Image = "linux"; c.MaxWait = time.Hour })
	requireReq(t, l, img.ID, requests.StateFindingDevice)
	l.ok(fsm.CmdImagePXEConfigSet, &fsm.ImagePXEConfigSet{Image: "linux", HardwareType: qPanda, HardwareModel: qPandaModel, PXEConfig: "panda-android"})
	require.Equal(t, qBoard(0), l.req(img.ID).Device)

	// A server marked down: its free board is not offered until it is up.
	l.ok(fsm.CmdRequestEvent, &fsm.RequestEvent{ID: img.ID, Event: string(requests.EventClose)})
	l.ok(fsm.CmdServerHealth, &fsm.ServerHealth{Name: qServer, Down: true})
	l.ok(fsm.CmdDeviceStateChange, &fsm.DeviceStateChange{Device: qBoard(0), From: string(lifeguard.StatePXEPowerCycling), To: string(lifeguard.StateReady)})
	down := l.create(func(c *fsm.RequestCreate) { c.MaxWait = time.Hour })
	requireReq(t, l, down.ID, requests.StateFindingDevice)
	l.ok(fsm.CmdServerHealth, &fsm.ServerHealth{Name: qServer, Down: false})
	require.Equal(t, qBoard(0), l.req(down.ID).Device)

	// A board added by the inventory (tagged as the request asks).
	tagged := l.create(func(c *fsm.RequestCreate) { c.Tags = map[string]string{"cpu": "armv7"}; c.MaxWait = time.Hour })
	requireReq(t, l, tagged.ID, requests.StateFailedDeviceNotFound) // no such board yet
	var inv fsm.Inventory
	l.f.Read(func(s *fsm.State) {
		inv = fsm.Inventory{ImagingServers: []fsm.InventoryServer{{Name: qServer}}}
		for _, name := range []string{qBoard(0), qBoard(1)} {
			d := s.Devices[name]
			inv.Devices = append(inv.Devices, fsm.InventoryDevice{Name: d.Name, FQDN: d.FQDN, InventoryID: d.InventoryID,
				MAC: d.MAC, ImagingServer: d.ImagingServer, RelayInfo: d.RelayInfo, HardwareType: qPanda, HardwareModel: qPandaModel})
		}
	})
	inv.Devices = append(inv.Devices, fsm.InventoryDevice{Name: qBoard(2), FQDN: "b2.lab", InventoryID: 99, MAC: "02:00:00:00:00:99",
		ImagingServer: qServer, RelayInfo: "relay-9.lab:bank1:relay1", HardwareType: qPanda, HardwareModel: qPandaModel,
		Tags: map[string]string{"cpu": "armv7"}})
	l.ok(fsm.CmdInventorySync, &fsm.InventorySync{Inventory: inv, ShipIt: true})
	waiting := l.create(func(c *fsm.RequestCreate) { c.Tags = map[string]string{"cpu": "armv7"}; c.MaxWait = time.Hour })
	requireReq(t, l, waiting.ID, requests.StateFindingDevice) // the new board is not ready yet
	l.ready(qBoard(2))
	require.Equal(t, qBoard(2), l.req(waiting.ID).Device)
}
