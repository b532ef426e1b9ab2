package daemontest

import (
	"context"
	"crypto/tls"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/internal/testlog"
	"github.com/mozpool/mozpool/sim"
)

// SimConfig is the configuration of a simulated lab for c: an inventory of
// boardsPerServer boards behind each node, on two free loopback networks
// (relay boards on ports of their own), at the cluster's time scale, with
// the nodes' ping and SUT ports, their URLs and, unless they run plain
// HTTP, the test CA. Callers adjust delays and failures before StartSim.
func (c *Cluster) SimConfig(tb testing.TB, boardsPerServer int) sim.Config {
	tb.Helper()
	nets := LoopbackNets(2)
	names := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		names[i] = n.Name
	}
	inv, err := sim.GenerateInventory(sim.GenerateOptions{
		Servers: names, BoardsPerServer: boardsPerServer, BoardNet: nets[0], RelayNet: nets[1], RelayPort: 0,
	})
	require.NoError(tb, err)
	cfg := sim.DefaultConfig()
	cfg.Inventory, cfg.TimeScale, cfg.PingPort, cfg.SUTPort = inv, c.opts.TimeScale, c.PingPort(), c.SUTPort()
	cfg.Logger = testlog.New(tb)
	if !c.opts.PlainHTTP {
		cfg.TLS = ClientTLS()
	}
	for _, n := range c.Nodes {
		cfg.API = append(cfg.API, n.URL)
	}
	return cfg
}

// ClientTLS is the client TLS configuration for c's nodes: the test CA,
// or nil when they run plain HTTP.
func (c *Cluster) ClientTLS() *tls.Config {
	if c.opts.PlainHTTP {
		return nil
	}
	return ClientTLS()
}

// StartSim starts a simulated lab with cfg; it is stopped when the test
// ends.
func StartSim(tb testing.TB, cfg sim.Config) *sim.Lab {
	tb.Helper()
	lab, err := sim.New(cfg)
	require.NoError(tb, err)
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(func() {
		cancel()
		sctx, stop := context.WithTimeout(context.Background(), 10*time.Second)
		defer stop()
		lab.Shutdown(sctx)
	})
	require.NoError(tb, lab.Start(ctx))
	return lab
}
