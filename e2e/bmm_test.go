package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/daemon/daemontest"
	"github.com/mozpool/mozpool/lifeguard"
)

// ping asks node for dev's ping route and returns its success field
// (nil when the node did not answer 200 with one).
func ping(t *testing.T, n *daemontest.Node, dev string) *bool {
	t.Helper()
	status, body := do(t, http.MethodGet, n.URL+"/api/device/"+dev+"/ping/", nil)
	var out struct {
		Success *bool `json:"success"`
	}
	if status != http.StatusOK || json.Unmarshal(body, &out) != nil {
		t.Logf("ping/ of %s via %s: %d %s", dev, n.Name, status, body)
	}
	return out.Success
}

func isTrue(b *bool) bool  { return b != nil && *b }
func isFalse(b *bool) bool { return b != nil && !*b }

// testBMMRoutes checks end to end that the BMM routes sent to a node
// that does not own the board are executed by the owner on the simulated
// hardware, over the real protocols (power-cycle with a PXE config,
// power-off, ping, relay test, and the errors for unknown names).
func testBMMRoutes(t *testing.T, l *lab, dev string) {
	via := l.nonOwner(t, dev)
	// Keep lifeguard's hands off the board.
	require.Equal(t, http.StatusOK, stateChange(t, via, dev, lifeguard.StateReady, lifeguard.StateLockedOut))
	l.waitState(t, dev, lifeguard.StateLockedOut, 10*time.Second)

	before := l.sim.Board(dev)
	cmds0 := len(l.relayCommands(t, dev))
	mark := l.logMark(t, dev)
	start := time.Now()
	bootConfig := `{"b2gbase":"y"}`
	status, body := do(t, http.MethodPost, via.URL+"/api/device/"+dev+"/power-cycle/",
		map[string]string{"pxe_config": pxeB2G, "boot_config": bootConfig})
	require.Equal(t, http.StatusOK, status, "%s", body)
	require.JSONEq(t, `{}`, string(body))

	// The owner's relay client turned the board off ("on" energises the
	// relay), then on again.
	relayName := fmt.Sprintf("bank%d relay%d", before.Relay.Bank, before.Relay.Relay)
	require.Eventually(t, func() bool {
		return inOrder(l.relayCommands(t, dev)[cmds0:], "set "+relayName+" on", "set "+relayName+" off")
	}, 10*time.Second, poll, "the relay board records the power cycle")
	// The board fetched the PXE file the owner wrote, over TFTP, and its
	// second stage started.
	require.Eventually(t, func() bool {
		b := l.sim.Board(dev)
		return b.TFTPFetches > before.TFTPFetches && posted(b, lifeguard.EventMobileInitStarted, start)
	}, 20*time.Second, poll, "the board net-booted and posted %s", lifeguard.EventMobileInitStarted)

	// bootconfig/ serves the boot config verbatim, from any node.
	for _, n := range l.cluster.Live() {
		status, body = do(t, http.MethodGet, n.URL+"/api/device/"+dev+"/bootconfig/", nil)
		require.Equal(t, http.StatusOK, status)
		require.Equal(t, bootConfig, string(body))
	}

	// A powered, booted board answers ping; after power-off/ it does not.
	require.Eventually(t, func() bool { return isTrue(ping(t, via, dev)) }, 10*time.Second, poll, "ping/ of a booted board")
	status, body = do(t, http.MethodGet, via.URL+"/api/device/"+dev+"/power-off/", nil)
	require.Equal(t, http.StatusOK, status, "%s", body)
	require.Eventually(t, func() bool { return !l.sim.Board(dev).Powered && isFalse(ping(t, via, dev)) },
		10*time.Second, poll, "after power-off/ the board is unpowered and ping/ fails")

	// Every action is in the device's log, with source bmm.
	require.Eventually(t, func() bool {
		log := l.logSince(dev, mark)
		return logHas(log, "bmm", "writing pxe config "+pxeB2G+" succeeded") &&
			logHas(log, "bmm", "power cycle succeeded") &&
			logHas(log, "bmm", "power off succeeded")
	}, 10*time.Second, poll, "the BMM actions are logged")
	require.Empty(t, enteredStates(l.logAfter(t, dev, mark)), "lifeguard's state did not move")
	require.Equal(t, lifeguard.StateLockedOut, l.state(dev))

	// The relay board's comms test, from a node that does not own it.
	status, body = do(t, http.MethodGet, via.URL+"/api/relay/"+relayBoardName(l.rackOf(t, dev))+"/test/", nil)
	require.Equal(t, http.StatusOK, status, "%s", body)
	require.JSONEq(t, `{"success": true}`, string(body))

	// Unknown device or board: 404; unknown PXE config: 400.
	status, _ = do(t, http.MethodPost, via.URL+"/api/device/nosuch/power-cycle/", map[string]string{})
	require.Equal(t, http.StatusNotFound, status)
	status, _ = do(t, http.MethodGet, via.URL+"/api/device/nosuch/ping/", nil)
	require.Equal(t, http.StatusNotFound, status)
	status, _ = do(t, http.MethodGet, via.URL+"/api/relay/nosuch/test/", nil)
	require.Equal(t, http.StatusNotFound, status)
	cmds := len(l.relayCommands(t, dev))
	status, _ = do(t, http.MethodPost, via.URL+"/api/device/"+dev+"/power-cycle/", map[string]string{"pxe_config": "nosuch"})
	require.Equal(t, http.StatusBadRequest, status)
	require.Len(t, l.relayCommands(t, dev), cmds, "a refused power-cycle does not touch the relay")
}
