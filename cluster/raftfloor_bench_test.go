package cluster

import (
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// nopFSM applies nothing: BenchmarkRaftFloor measures the library alone.
type nopFSM struct{}

func (nopFSM) Apply(*raft.Log) any                 { return nil }
func (nopFSM) Snapshot() (raft.FSMSnapshot, error) { return nopSnapshot{}, nil }
func (nopFSM) Restore(rc io.ReadCloser) error      { return rc.Close() }

type nopSnapshot struct{}

func (nopSnapshot) Persist(s raft.SnapshotSink) error { return s.Close() }
func (nopSnapshot) Release()                          {}

// BenchmarkRaftFloor is the floor under this cluster's write path: three
// hashicorp/raft nodes configured as a Node configures them (the WAL log
// store with its fdatasyncs, the log cache, the TCP transport without
// pipelining, the same timeouts) on loopback, with an FSM that does
// nothing, and 1, 16 or 64 goroutines applying 200-byte entries on the
// leader. No HTTP, no forwarding, no JSON, no state machine: whatever this
// prints is the most the cluster's writes can reach on this machine, to
// compare with etcd's (make bench-vs-etcd prints both; one of that
// benchmark's operations is two writes).
//
//	go test -run '^$' -bench RaftFloor -benchtime 3s ./cluster/
func BenchmarkRaftFloor(b *testing.B) {
	for _, clients := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			leader := raftTrio(b)
			data := make([]byte, 200)
			var next atomic.Int64
			lat := make([][]time.Duration, clients)
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for c := range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for next.Add(1) <= int64(b.N) {
						t := time.Now()
						if err := leader.Apply(data, 10*time.Second).Error(); err != nil {
							b.Error(err)
							return
						}
						lat[c] = append(lat[c], time.Since(t))
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			all := slices.Concat(lat...)
			slices.Sort(all)
			if len(all) > 0 {
				b.ReportMetric(float64(len(all))/elapsed.Seconds(), "writes/s")
				b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50_ms")
				b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99_ms")
			}
		})
	}
}

// raftTrio starts three Raft nodes on loopback as openRaft configures
// them and returns the leader once both followers have joined.
func raftTrio(b *testing.B) *raft.Raft {
	b.Helper()
	cfg := DefaultConfig()
	logger := hclog.NewNullLogger()
	var nodes []*raft.Raft
	var servers []raft.Server
	for i := range 3 {
		dir := b.TempDir()
		store, _, err := openRaftStore(dir, RaftLogWAL, logger)
		if err != nil {
			b.Fatal(err)
		}
		logs, err := raft.NewLogCache(512, store)
		if err != nil {
			b.Fatal(err)
		}
		snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, logger)
		if err != nil {
			b.Fatal(err)
		}
		tr, err := raft.NewTCPTransportWithConfig("127.0.0.1:0", nil, &raft.NetworkTransportConfig{
			MaxPool: 3, Timeout: 10 * time.Second, MaxRPCsInFlight: 1, Logger: logger,
		})
		if err != nil {
			b.Fatal(err)
		}
		rc := raft.DefaultConfig()
		rc.LocalID = raft.ServerID(fmt.Sprintf("n%d", i))
		rc.HeartbeatTimeout, rc.ElectionTimeout = cfg.HeartbeatTimeout, cfg.ElectionTimeout
		rc.LeaderLeaseTimeout, rc.CommitTimeout = cfg.LeaderLeaseTimeout, cfg.CommitTimeout
		rc.NoLegacyTelemetry = true
		rc.Logger = logger
		r, err := raft.NewRaft(rc, nopFSM{}, logs, store, snaps, tr)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			r.Shutdown().Error()
			tr.Close()
			store.Close()
		})
		nodes = append(nodes, r)
		servers = append(servers, raft.Server{ID: rc.LocalID, Address: tr.LocalAddr(), Suffrage: raft.Voter})
	}
	if err := nodes[0].BootstrapCluster(raft.Configuration{Servers: servers[:1]}).Error(); err != nil {
		b.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for nodes[0].State() != raft.Leader {
		if time.Now().After(deadline) {
			b.Fatal("no leader")
		}
		<-time.After(10 * time.Millisecond)
	}
	for _, s := range servers[1:] {
		if err := nodes[0].AddVoter(s.ID, s.Address, 0, 10*time.Second).Error(); err != nil {
			b.Fatal(err)
		}
	}
	// Warm up: the followers have the configuration and the connections
	// exist.
	for range 100 {
		if err := nodes[0].Apply(nil, 10*time.Second).Error(); err != nil {
			b.Fatal(err)
		}
	}
	return nodes[0]
}
