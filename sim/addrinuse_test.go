package sim_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/sim"
)

// TestStartFailsWhenABoardAddressIsTaken: a board whose ping address is
// taken (another lab on the same addresses and ports) makes Start fail
// with ErrAddrInUse, binding nothing; once the address is free, Start
// succeeds.
func TestStartFailsWhenABoardAddressIsTaken(t *testing.T) {
	freePort := func() int {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		t.Cleanup(func() { ln.Close() })
		return ln.Addr().(*net.TCPAddr).Port
	}
	boardNet := 10 + rand.IntN(239)
	inv, err := sim.GenerateInventory(sim.GenerateOptions{
		Servers: []string{"img1"}, BoardsPerServer: 2, BoardNet: boardNet, RelayNet: boardNet + 1,
	})
	require.NoError(t, err)
	cfg := sim.DefaultConfig()
	cfg.Inventory, cfg.API = inv, []string{"http://127.0.0.1:1"}
	cfg.PingPort, cfg.SUTPort = freePort(), freePort()
	lab, err := sim.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, lab.Shutdown(ctx))
	})

	taken := net.JoinHostPort(inv.Devices[1].IPAddress, strconv.Itoa(cfg.PingPort))
	ln, err := net.Listen("tcp", taken)
	require.NoError(t, err)
	err = lab.Start(context.Background())
	require.ErrorIs(t, err, sim.ErrAddrInUse)
	require.ErrorContains(t, err, fmt.Sprintf("board %s cannot listen on %s", inv.Devices[1].Name, taken))
	require.Equal(t, inv.Devices, lab.Inventory().Devices, "no relay board was bound")

	require.NoError(t, ln.Close())
	require.NoError(t, lab.Start(context.Background()))
	require.NotEqual(t, inv.Devices[0].RelayInfo, lab.Inventory().Devices[0].RelayInfo, "relay board bound")
}
