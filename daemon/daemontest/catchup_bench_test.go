package daemontest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/fsm"
	"github.com/mozpool/mozpool/lifeguard"
	"github.com/mozpool/mozpool/requests"
	"github.com/mozpool/mozpool/sim"
)

// catchUpDevices is the lab size of BenchmarkCatchUp10k.
const catchUpDevices = 10002 // 3 racks of 3,334

// BenchmarkCatchUp10k measures how long a node of a 3-node cluster holding
// 10,000 devices takes, from its restart, to serve again (Serving: it has
// applied everything committed when it rejoined). Before the restart the
// cluster has written a realistic log: the inventory load, every device's
// way to failed_power_cycling (no board answers), then tailOps commands
// (request creates and returns, comments, forced state changes, device log
// lines), the last missedOps of them while the node is down. It reports
//
//   - s/catchup: restart to Serving (what an operator waits for),
//   - s/start: restart until the daemon has started (the snapshot restored),
//   - s/leader-known: restart until the node has heard from the leader,
//   - snapshot-MB: the size of the node's latest snapshot,
//   - restore-ms: the time fsm.Restore takes on that snapshot alone,
//   - replay-entries and replay-entries/s: the log entries applied after
//     the snapshot, and their rate over the catch-up time less the restore.
//
// Run it with make bench-catchup; MOZPOOL_CATCHUP_PROFILE=FILE also writes
// a CPU profile of the last restart, from the restart to Serving.
func BenchmarkCatchUp10k(b *testing.B) {
	const tailOps, missedOps = 40000, 5000
	c := New(b, 3)
	nets := LoopbackNets(2)
	names := []string{NodeName(1), NodeName(2), NodeName(3)}
	inv, err := sim.GenerateInventory(sim.GenerateOptions{Servers: names, BoardsPerServer: catchUpDevices / 3,
		BoardNet: nets[0], RelayNet: nets[1]})
	require.NoError(b, err)
	for i := range inv.Devices {
		// Without relay_info a device fails its power cycle and stays
		// in failed_power_cycling: the lab is quiet once settled.
		inv.Devices[i].RelayInfo = ""
	}
	c.LoadInventory(inv)
	waitSettled(b, c, len(inv.Devices))

	leader := c.WaitLeader()
	back := c.Followers()[0]
	writeTail(b, leader, len(inv.Devices), 0, tailOps-missedOps)
	c.WaitConverged()

	b.ResetTimer()
	var total, startup, leaderKnown time.Duration
	var restore time.Duration
	var snapBytes int64
	var replayed uint64
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		back.Stop()
		leader = c.WaitLeader()
		writeTail(b, leader, len(inv.Devices), tailOps-missedOps+i*missedOps, missedOps)
		target := leader.FSM.AppliedIndex()
		snap, snapIndex := latestSnapshot(b, back.Dir)
		snapBytes = int64(len(snap))
		b.StartTimer()

		// MOZPOOL_CATCHUP_PROFILE=file writes a CPU profile of the last
		// restart alone, from the restart to Serving.
		profile := os.Getenv("MOZPOOL_CATCHUP_PROFILE")
		if profile != "" && i == b.N-1 {
			f, err := os.Create(profile)
			require.NoError(b, err)
			require.NoError(b, pprof.StartCPUProfile(f))
			defer f.Close()
		}
		start := time.Now()
		back = c.Restart(back)
		started := time.Since(start) // includes the restore of the snapshot
		var led time.Duration
		require.Eventually(b, func() bool {
			if led == 0 && back.Cluster.Leader() != nil {
				led = time.Since(start)
			}
			return back.Cluster.Serving()
		}, 5*time.Minute, time.Millisecond, "the restarted node never served")
		took := time.Since(start)
		if profile != "" && i == b.N-1 {
			pprof.StopCPUProfile()
		}
		total += took
		startup += started
		leaderKnown += led

		b.StopTimer()
		require.GreaterOrEqual(b, back.FSM.AppliedIndex(), target, "serving before it caught up")
		replayed = target - snapIndex
		restore = timeRestore(b, snap)
		b.Logf("restart to serving %v (started after %v, leader known after %v): snapshot at %d (%.1f MB, restore %v), %d entries replayed to %d",
			took, started, led, snapIndex, float64(snapBytes)/1e6, restore, replayed, target)
		c.WaitConverged()
		b.StartTimer()
	}
	b.StopTimer()
	catchUp := total / time.Duration(b.N)
	b.ReportMetric(catchUp.Seconds(), "s/catchup")
	b.ReportMetric((startup / time.Duration(b.N)).Seconds(), "s/start")
	b.ReportMetric((leaderKnown / time.Duration(b.N)).Seconds(), "s/leader-known")
	b.ReportMetric(float64(snapBytes)/1e6, "snapshot-MB")
	b.ReportMetric(float64(restore.Microseconds())/1e3, "restore-ms")
	b.ReportMetric(float64(replayed), "replay-entries")
	if replay := catchUp - restore; replay > 0 {
		b.ReportMetric(float64(replayed)/replay.Seconds(), "replay-entries/s")
	}
	b.ReportMetric(0, "ns/op") // the figure is s/catchup
}

// waitSettled waits until every device of every node is in
// failed_power_cycling.
func waitSettled(tb testing.TB, c *Cluster, devices int) {
	tb.Helper()
	for _, n := range c.Live() {
		require.Eventually(tb, func() bool {
			settled := 0
			n.FSM.Read(func(st *fsm.State) {
				for _, d := range st.Devices {
					if lifeguard.State(d.State) == lifeguard.StateFailedPowerCycling {
						settled++
					}
				}
			})
			return settled == devices
		}, 5*time.Minute, 100*time.Millisecond, "%s: devices did not settle", n.Name)
	}
}

// writeTail proposes ops commands through the leader from 16 workers, a mix
// of what a lab writes: a request for a device and its return, comments,
// a forced state change there and back, syslog lines in device logs.
func writeTail(tb testing.TB, leader *Node, devices, from, ops int) {
	tb.Helper()
	var next atomic.Int64
	next.Store(int64(from))
	var wg sync.WaitGroup
	var failed atomic.Int64
	var firstErr sync.Once
	ctx := context.Background()
	for range 16 {
		wg.Add(1)
		// Exits when the ops are handed out.
		go func() {
			defer wg.Done()
			apply := func(t fsm.CommandType, cmd fsm.Command) fsm.Result {
				res, err := leader.Cluster.Apply(ctx, t, cmd)
				if err != nil {
					failed.Add(1)
					firstErr.Do(func() { tb.Logf("tail write failed: %v", err) })
				}
				return res
			}
			for {
				i := int(next.Add(1)) - 1
				if i >= from+ops {
					return
				}
				dev := fmt.Sprintf("panda-%04d", i%devices+1)
				switch i % 8 {
				case 0, 1:
					res := apply(fsm.CmdRequestCreate, &fsm.RequestCreate{RequestedDevice: dev, Assignee: "bench",
						Expires: time.Now().Add(time.Hour), Image: "android", BootConfig: "{}", Environment: "any",
						Server: leader.Name})
					var req fsm.Request
					if res.Decode(&req) == nil && req.ID != 0 {
						apply(fsm.CmdRequestEvent, &fsm.RequestEvent{ID: req.ID, Event: string(requests.EventClose)})
					}
				case 2:
					apply(fsm.CmdDeviceSetComments, &fsm.DeviceSetComments{Device: dev, Comments: fmt.Sprintf("note %d", i)})
				case 3:
					apply(fsm.CmdDeviceStateChange, &fsm.DeviceStateChange{Device: dev,
						From: string(lifeguard.StateFailedPowerCycling), To: string(lifeguard.StateLockedOut)})
					apply(fsm.CmdDeviceStateChange, &fsm.DeviceStateChange{Device: dev,
						From: string(lifeguard.StateLockedOut), To: string(lifeguard.StateFailedPowerCycling)})
				default:
					apply(fsm.CmdLogAppend, &fsm.LogAppend{Entries: []fsm.LogEntry{{Kind: fsm.LogDevice, Name: dev,
						At: time.Now(), Source: "syslog", Message: fmt.Sprintf("kernel: line %d of a board's boot", i)}}})
				}
			}
		}()
	}
	wg.Wait()
	require.Zero(tb, failed.Load(), "tail writes failed")
}

// latestSnapshot returns the newest snapshot in a node's data dir and the
// log index it reflects (nil and 0 when there is none).
func latestSnapshot(tb testing.TB, dir string) ([]byte, uint64) {
	tb.Helper()
	metas, err := filepath.Glob(filepath.Join(dir, "snapshots", "*", "meta.json"))
	require.NoError(tb, err)
	if len(metas) == 0 {
		return nil, 0 // none yet: the whole log is replayed
	}
	type meta struct{ Index uint64 }
	var best meta
	var bestDir string
	sort.Strings(metas)
	for _, p := range metas {
		b, err := os.ReadFile(p)
		require.NoError(tb, err)
		var m meta
		require.NoError(tb, json.Unmarshal(b, &m))
		if m.Index >= best.Index {
			best, bestDir = m, filepath.Dir(p)
		}
	}
	data, err := os.ReadFile(filepath.Join(bestDir, "state.bin"))
	require.NoError(tb, err)
	return data, best.Index
}

// timeRestore restores snap into a new FSM and returns how long it took.
func timeRestore(tb testing.TB, snap []byte) time.Duration {
	tb.Helper()
	if snap == nil {
		return 0
	}
	f := fsm.New(fsm.Config{Devices: lifeguard.Machine{}, Requests: requests.Machine{}})
	start := time.Now()
	require.NoError(tb, f.Restore(io.NopCloser(bytes.NewReader(snap))))
	return time.Since(start)
}
