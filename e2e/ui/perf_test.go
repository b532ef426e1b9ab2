package ui

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/daemon/daemontest"
	"github.com/mozpool/mozpool/fsm"
	"github.com/mozpool/mozpool/sim"
)

// firstPaintBudget is how long the Devices page may take, from navigation
// start, to paint its first rows of 10,000 devices.
const firstPaintBudget = 1000.0 // ms

// TestDevicesFirstPaint10k loads a 10,002-device inventory (no simulated
// boards) into a 3-node cluster, waits until every device has settled, and
// measures in the browser how long the Devices page takes, from navigation
// start, to paint its first rows: fetching every device's details, sorting
// them and rendering the rows in view. The page reports the time itself as
// window.__firstTablePaint.
func TestDevicesFirstPaint10k(t *testing.T) {
	skipShort(t)
	chromiumPath(t)
	c := daemontest.New(t, 3, daemontest.Options{PingPort: 20730, SUTPort: 20731})
	inv, err := sim.GenerateInventory(sim.GenerateOptions{
		Servers:         []string{daemontest.NodeName(1), daemontest.NodeName(2), daemontest.NodeName(3)},
		BoardsPerServer: 3334, BoardNet: 13, RelayNet: 14, RelayPort: 2101,
	})
	require.NoError(t, err)
	// Without relay_info a device cannot be power-cycled: each goes from
	// new to failed_power_cycling and stays there, so the cluster is quiet
	// while the page is timed (with relay addresses nobody answers, 10,000
	// devices would retry their power cycles together every minute).
	for i := range inv.Devices {
		inv.Devices[i].RelayInfo = ""
	}
	c.LoadInventory(inv)
	n := len(inv.Devices)
	for _, nd := range c.Nodes {
		require.Eventually(t, func() bool {
			settled := 0
			nd.FSM.Read(func(st *fsm.State) {
				for _, d := range st.Devices {
					if d.State == "failed_power_cycling" {
						settled++
					}
				}
			})
			return settled == n
		}, 2*time.Minute, 100*time.Millisecond, "%s: devices did not settle", nd.Name)
	}
	node := c.Followers()[0]
	b := newBrowser(t)
	b.do(30*time.Second, chromedp.Navigate("about:blank")) // start Chromium first: its start-up is not the page's

	b.do(60*time.Second, chromedp.Navigate(node.URL+"/ui/#/devices"))
	b.waitFor(30*time.Second, `window.__firstTablePaint !== undefined`, "the first table paint")
	ms := eval[float64](b, `window.__firstTablePaint`)
	t.Logf("Devices page, %d devices: first table paint %.0f ms after navigation start", n, ms)
	t.Logf("of which: %s", eval[string](b, `(() => {
		const r = performance.getEntriesByType('resource');
		const list = r.find(e => e.name.includes('device/list/?details'));
		const js = r.filter(e => e.name.endsWith('.js'));
		const nav = performance.getEntriesByType('navigation')[0];
		return 'page ' + nav.responseEnd.toFixed(0) + ' ms, scripts loaded ' + Math.max(...js.map(e => e.responseEnd)).toFixed(0) +
			' ms, device list requested ' + list.startTime.toFixed(0) + ' ms, first byte ' + list.responseStart.toFixed(0) +
			' ms, received ' + list.responseEnd.toFixed(0) + ' ms (' + (list.decodedBodySize / 1e6).toFixed(1) + ' MB)';
	})()`))

	require.Less(t, ms, firstPaintBudget, "first table paint")

	eval[bool](b, helpersJS)
	require.Contains(t, eval[string](b, `document.querySelector('#page-devices .vt-foot').textContent`), fmt.Sprintf("%d,%03d devices", n/1000, n%1000))
	// Only the rows in view are in the DOM.
	inDOM := eval[int](b, `document.querySelectorAll('#page-devices .vt-row').length`)
	require.Less(t, inDOM, 100, "rows in the DOM")

	// Scrolling to the middle shows the middle rows.
	eval[bool](b, `(s => { s.scrollTop = s.scrollHeight / 2; return true })(document.querySelector('#page-devices .vt-scroll'))`)
	b.waitFor(5*time.Second, `!!h.row('devices', 'panda-5001') || !!h.row('devices', 'panda-5010')`, "the middle rows")

	// A search over every device answers at once.
	searchMs := eval[float64](b, `new Promise(done => {
		const t0 = performance.now();
		h.set('#page-devices input[type=search]', 'panda-0042');
		const check = () => document.querySelectorAll('#page-devices .vt-row:not([hidden])').length === 1
			? done(performance.now() - t0) : requestAnimationFrame(check);
		check();
	})`)
	t.Logf("search over %d devices: %.0f ms (60 ms of it the typing debounce)", n, searchMs)
	eval[bool](b, `h.set('#page-devices input[type=search]', '')`)

	// A poll that brings a changed list redraws in place; the page
	// measures what rebuilding the table costs.
	require.NoError(t, node.Client().SetComments(context.Background(), "panda-0003", "flaky SD card"))
	b.waitFor(15*time.Second, `h.cell('devices', 'panda-0003', 'comments') === 'flaky SD card'`, "the new comment")
	rebuild := eval[float64](b, `performance.getEntriesByName('mozpool:devices-table').at(-1).duration`)
	t.Logf("rebuilding the table of %d devices after a poll: %.0f ms", n, rebuild)
	b.screenshot("devices-10k")
	b.requireClean(true)
}
