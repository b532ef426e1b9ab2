package main

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/sim"
)

func TestParseFlags(t *testing.T) {
	o, err := parseFlags([]string{
		"-inventory", "lab.json", "-api", "http://127.0.0.1:8010, http://127.0.0.1:8020",
		"-time-scale", "0.1", "-seed", "7", "-broken", "0.2", "-fail-booting", "0.5", "-fail-running", "0",
		"-ping-port", "30700", "-sut-port", "30701", "-relay-recovery", "0s",
	})
	require.NoError(t, err)
	require.Equal(t, []string{"http://127.0.0.1:8010", "http://127.0.0.1:8020"}, o.cfg.API)
	require.Equal(t, 0.1, o.cfg.TimeScale)
	require.Equal(t, int64(7), o.cfg.Seed)
	require.Equal(t, 0.2, o.cfg.BrokenFraction)
	require.Equal(t, 0.5, o.cfg.Failures.Booting)
	require.Zero(t, o.cfg.Failures.Running)
	require.Equal(t, sim.DefaultConfig().Failures.Extracting, o.cfg.Failures.Extracting, "unset flags keep the defaults")
	require.Equal(t, 30700, o.cfg.PingPort)
	require.Equal(t, 30701, o.cfg.SUTPort)
	require.Equal(t, time.Duration(0), o.cfg.RelayRecovery)
	require.Equal(t, "127.0.0.1:0", o.listen)
	require.Equal(t, [2]int{0, 1}, [2]int{o.shard, o.shards}, "one shard: the whole lab")
	o, err = parseFlags([]string{"-inventory", "lab.json", "-api", "http://x", "-shard", "2/4"})
	require.NoError(t, err)
	require.Equal(t, [2]int{2, 4}, [2]int{o.shard, o.shards})

	for _, args := range [][]string{
		{"-api", "http://127.0.0.1:8010"},
		{"-inventory", "lab.json"},
		{"-inventory", "lab.json", "-api", " , "},
		{"-inventory", "lab.json", "-api", "http://x", "extra"},
		{"-inventory", "lab.json", "-api", "http://x", "-shard", "4/4"},
		{"-inventory", "lab.json", "-api", "http://x", "-shard", "x"},
	} {
		_, err := parseFlags(args)
		require.Error(t, err, "%v", args)
	}
}

// TestLabInventorySimulates checks that the sample lab can be simulated:
// every device has an address and a relay the simulator can bind.
func TestLabInventorySimulates(t *testing.T) {
	inv, err := loadInventory("../../lab/lab.json")
	require.NoError(t, err)
	cfg := sim.DefaultConfig()
	cfg.Inventory = inv
	cfg.API = []string{"http://127.0.0.1:8010"}
	l, err := sim.New(cfg)
	require.NoError(t, err)
	boards := l.Boards()
	require.Len(t, boards, 30)
	require.Equal(t, "127.1.1.1", boards[0].IP)
	require.Equal(t, "127.2.0.1:2101", boards[0].Relay.Host)
	require.Equal(t, "127.1.2.1", boards[10].IP)
	require.Len(t, l.Relays(), 3)
}

func TestWriteInventory(t *testing.T) {
	inv, err := loadInventory("../../lab/lab.json")
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "out.json")
	require.NoError(t, writeInventory(path, inv))
	got, err := loadInventory(path)
	require.NoError(t, err)
	require.Equal(t, inv, got)
}
