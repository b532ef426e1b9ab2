package sim

import (
	"fmt"
	"slices"
	"strings"

	"github.com/mozpool/mozpool/fsm"
)

// ShardInventory returns the part of inv that shard i of n simulates: the
// devices of every n-th relay board (relay boards in address order, from
// the i-th), with those relay boards. A relay board and the boards it
// powers stay in one shard, so n simulator processes together run the
// whole lab, each within its own open file limit (every board listens
// twice). n = 1 returns inv.
func ShardInventory(inv fsm.Inventory, i, n int) (fsm.Inventory, error) {
	if n < 1 || i < 0 || i >= n {
		return fsm.Inventory{}, fmt.Errorf("%w: shard %d of %d", ErrBadInventory, i, n)
	}
	if n == 1 {
		return inv, nil
	}
	host := func(s string) string { h, _, _ := strings.Cut(s, ":"); return h }
	var hosts []string
	for _, d := range inv.Devices {
		hosts = append(hosts, host(d.RelayInfo))
	}
	for _, rb := range inv.RelayBoards {
		hosts = append(hosts, host(rb.FQDN))
	}
	slices.Sort(hosts)
	hosts = slices.Compact(hosts)
	mine := map[string]bool{}
	for k := i; k < len(hosts); k += n {
		mine[hosts[k]] = true
	}
	out := cloneInventory(inv)
	out.Devices = slices.DeleteFunc(out.Devices, func(d fsm.InventoryDevice) bool { return !mine[host(d.RelayInfo)] })
	out.RelayBoards = slices.DeleteFunc(out.RelayBoards, func(rb fsm.InventoryRelayBoard) bool { return !mine[host(rb.FQDN)] })
	return out, nil
}
