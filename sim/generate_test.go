package sim

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/fsm"
)

func TestGenerateInventory(t *testing.T) {
	inv, err := GenerateInventory(GenerateOptions{
		Servers: []string{"s1", "s2", "s3"}, BoardsPerServer: 334, BoardNet: 9, RelayNet: 10, RelayPort: 2101,
	})
	require.NoError(t, err)
	require.Len(t, inv.Devices, 1002)
	ips, macs, wires := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, d := range inv.Devices {
		require.False(t, ips[d.IPAddress], "ip %s used twice", d.IPAddress)
		require.False(t, macs[d.MAC], "mac %s used twice", d.MAC)
		require.False(t, wires[d.RelayInfo], "relay %s wired twice", d.RelayInfo)
		ips[d.IPAddress], macs[d.MAC], wires[d.RelayInfo] = true, true, true
	}
	// The cluster accepts it as it is.
	f := fsm.New(fsm.Config{})
	b, err := fsm.Encode(fsm.CmdInventorySync, &fsm.InventorySync{Header: fsm.Header{At: time.Unix(0, 0).UTC()}, Inventory: inv, ShipIt: true})
	require.NoError(t, err)
	require.NoError(t, f.ApplyCommand(1, b).Error())
	// And so does the simulator.
	cfg := DefaultConfig()
	cfg.Inventory, cfg.API = inv, []string{"http://127.0.0.1:1"}
	_, err = New(cfg)
	require.NoError(t, err)

	// 50,000 boards: more than 250 relay boards per rack, each address
	// still valid and used once.
	inv, err = GenerateInventory(GenerateOptions{
		Servers: []string{"s1", "s2", "s3"}, BoardsPerServer: 16667, BoardNet: 1, RelayNet: 2, RelayPort: 2101,
	})
	require.NoError(t, err)
	require.Len(t, inv.Devices, 50001)
	ips, relays := map[string]bool{}, map[string]bool{}
	for _, d := range inv.Devices {
		require.False(t, ips[d.IPAddress], "ip %s used twice", d.IPAddress)
		ips[d.IPAddress] = true
		host, _, _ := strings.Cut(d.RelayInfo, ":")
		require.NotNil(t, net.ParseIP(host), "relay host %q", host)
		relays[d.RelayInfo] = true
	}
	require.Len(t, relays, 50001)

	// Shards of it: every board in exactly one, with all of its relay
	// board's boards.
	seen := map[string]int{}
	hostShard := map[string]int{}
	for i := range 7 {
		part, err := ShardInventory(inv, i, 7)
		require.NoError(t, err)
		require.Less(t, len(part.Devices), 50001/7+64)
		for _, d := range part.Devices {
			seen[d.Name]++
			host, _, _ := strings.Cut(d.RelayInfo, ":")
			if s, ok := hostShard[host]; ok {
				require.Equal(t, s, i, "relay board %s split", host)
			}
			hostShard[host] = i
		}
	}
	require.Len(t, seen, 50001)
	for name, n := range seen {
		require.Equal(t, 1, n, name)
	}
	_, err = ShardInventory(inv, 3, 3)
	require.ErrorIs(t, err, ErrBadInventory)
	cfg.Inventory = inv
	_, err = New(cfg)
	require.NoError(t, err)

	_, err = GenerateInventory(GenerateOptions{Servers: []string{"s1"}, BoardsPerServer: 1, BoardNet: 3, RelayNet: 3})
	require.ErrorIs(t, err, ErrBadInventory)
}

func TestGenerateInventory_Standby(t *testing.T) {
	inv, err := GenerateInventory(GenerateOptions{Servers: []string{"a", "b", "c"}, BoardsPerServer: 1, BoardNet: 3, RelayNet: 4, Standby: true})
	require.NoError(t, err)
	require.Equal(t, []fsm.InventoryRack{
		{Name: "rack1", Servers: []string{"a", "b"}},
		{Name: "rack2", Servers: []string{"b", "c"}},
		{Name: "rack3", Servers: []string{"c", "a"}},
	}, inv.Racks)
}
