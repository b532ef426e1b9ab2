package ui

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/daemon/daemontest"
	"github.com/mozpool/mozpool/fsm"
	"github.com/mozpool/mozpool/lifeguard"
	"github.com/mozpool/mozpool/sim"
)

// quietLab10k loads a 10,002-device inventory (no simulated boards) into a
// 3-node cluster and waits until every device has settled. It returns a
// follower to load the page from and the number of devices.
func quietLab10k(tb testing.TB) (*daemontest.Node, int) {
	tb.Helper()
	return quietLab(tb, 3334)
}

// quietLab is quietLab10k with perServer devices per imaging server.
func quietLab(tb testing.TB, perServer int) (*daemontest.Node, int) {
	tb.Helper()
	c := daemontest.New(tb, 3) // boards' ports: free ones, though no board answers
	nets := daemontest.LoopbackNets(2)
	inv, err := sim.GenerateInventory(sim.GenerateOptions{
		Servers:         []string{daemontest.NodeName(1), daemontest.NodeName(2), daemontest.NodeName(3)},
		BoardsPerServer: perServer, BoardNet: nets[0], RelayNet: nets[1],
	})
	require.NoError(tb, err)
	// Without relay_info a device cannot be power-cycled: each goes from
	// new to failed_power_cycling and stays there, so the cluster is quiet
	// while the page is used (with relay addresses nobody answers, 10,000
	// devices would retry their power cycles together every minute).
	for i := range inv.Devices {
		inv.Devices[i].RelayInfo = ""
	}
	n := len(inv.Devices)
	if n <= 10002 {
		c.LoadInventory(inv)
	} else {
		// Applying 50,000 devices in one command can hold the leader past
		// its heartbeats on a busy machine: an election, and the sync
		// answered 503. It is idempotent: send it again until it holds.
		require.Eventually(tb, func() bool {
			_, err := c.WaitLeader().Client().SyncInventory(context.Background(), inv, false, true)
			if err != nil {
				tb.Logf("inventory sync: %v; again", err)
			}
			return err == nil
		}, 10*time.Minute, time.Second, "inventory sync")
		c.WaitConverged()
	}
	for _, nd := range c.Nodes {
		require.Eventually(tb, func() bool {
			settled := 0
			nd.FSM.Read(func(st *fsm.State) {
				for _, d := range st.Devices {
					if lifeguard.State(d.State) == lifeguard.StateFailedPowerCycling {
						settled++
					}
				}
			})
			return settled == n
		}, time.Duration(max(2, n/5000))*time.Minute, 100*time.Millisecond, "%s: devices did not settle", nd.Name)
	}
	return c.Followers()[0], n
}

// openDevices loads the Devices page and waits for its first table paint.
// The page reports the time of that paint itself, from navigation start, as
// window.__firstTablePaint: fetching every device's details, sorting them
// and rendering the rows in view.
func openDevices(b *browser, url string) {
	b.t.Helper()
	b.do(30*time.Second, chromedp.Navigate("about:blank"))
	b.do(60*time.Second, chromedp.Navigate(url+"/ui/#/devices"))
	b.waitFor(60*time.Second, `window.__firstTablePaint !== undefined`, "the first table paint")
	eval[bool](b, helpersJS)
}

// searchDevices types query into the Devices page's search field and
// resolves, in milliseconds, once exactly want rows are shown.
func searchDevices(b *browser, query string, want int) float64 {
	b.t.Helper()
	return eval[float64](b, fmt.Sprintf(`new Promise(done => {
		const t0 = performance.now();
		h.set('#page-devices input[type=search]', %q);
		const check = () => document.querySelectorAll('#page-devices .vt-row:not([hidden])').length === %d
			? done(performance.now() - t0) : requestAnimationFrame(check);
		check();
	})`, query, want))
}

// TestDevicesPage10k checks that the Devices page handles a 10,000-device
// lab: it counts every device, keeps only the rows in view in the DOM,
// shows the middle rows when scrolled there, finds one device by search,
// and redraws in place when a poll brings a change. How fast it does so is
// BenchmarkDevicesPage10k's business.
func TestDevicesPage10k(t *testing.T) {
	skipShort(t)
	chromiumPath(t)
	node, n := quietLab10k(t)
	b := newBrowser(t)
	openDevices(b, node.URL)

	require.Contains(t, eval[string](b, `document.querySelector('#page-devices .vt-foot').textContent`), fmt.Sprintf("%d,%03d devices", n/1000, n%1000))
	// Only the rows in view are in the DOM.
	inDOM := eval[int](b, `document.querySelectorAll('#page-devices .vt-row').length`)
	require.Less(t, inDOM, 100, "rows in the DOM")

	// Scrolling to the middle shows the middle rows.
	eval[bool](b, `(s => { s.scrollTop = s.scrollHeight / 2; return true })(document.querySelector('#page-devices .vt-scroll'))`)
	b.waitFor(10*time.Second, `!!h.row('devices', 'panda-5001') || !!h.row('devices', 'panda-5010')`, "the middle rows")

	// A search over every device finds the one asked for.
	searchDevices(b, "panda-0042", 1)
	require.Equal(t, "panda-0042", eval[string](b, `document.querySelector('#page-devices .vt-row:not([hidden])').dataset.key`))
	eval[bool](b, `h.set('#page-devices input[type=search]', '')`)

	// A poll that brings a changed list redraws in place.
	require.NoError(t, node.Client().SetComments(context.Background(), "panda-0003", "flaky SD card"))
	b.waitFor(30*time.Second, `h.cell('devices', 'panda-0003', 'comments') === 'flaky SD card'`, "the new comment")
	require.Positive(t, eval[int](b, `performance.getEntriesByName('mozpool:devices-table').length`), "the page measures its rebuilds")
	b.screenshot("devices-10k")
	b.requireClean(true)
}

// BenchmarkDevicesPage measures the Devices page with 10,002 devices
// (MOZPOOL_BENCH_DEVICES=N: about N, a multiple of 3) on a quiet cluster:
// the first table paint after navigation start (fetching
// every device's details, sorting, rendering the rows in view), a search
// over every device (60 ms of it the typing debounce), and the rebuild of
// the table after a poll brings a change. Each iteration loads the page
// afresh. Run it with make bench-ui.
func BenchmarkDevicesPage(b *testing.B) {
	if testing.Short() {
		b.Skip("browser benchmark with a 3-node cluster")
	}
	chromiumPath(b)
	perServer := 3334
	if v := os.Getenv("MOZPOOL_BENCH_DEVICES"); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(b, err, "MOZPOOL_BENCH_DEVICES")
		require.Positive(b, n, "MOZPOOL_BENCH_DEVICES")
		perServer = (n + 2) / 3
	}
	node, n := quietLab(b, perServer)
	b.Logf("%d devices", n)
	br := newBrowser(b)
	br.do(30*time.Second, chromedp.Navigate("about:blank")) // start Chromium first: its start-up is not the page's
	var paint, search, rebuild float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		openDevices(br, node.URL)
		paint += eval[float64](br, `window.__firstTablePaint`)
		if i == 0 {
			b.Logf("of which: %s", eval[string](br, `(() => {
				const r = performance.getEntriesByType('resource');
				const list = r.find(e => e.name.includes('device/list/?details'));
				const js = r.filter(e => e.name.endsWith('.js'));
				const nav = performance.getEntriesByType('navigation')[0];
				return 'page ' + nav.responseEnd.toFixed(0) + ' ms, scripts loaded ' + Math.max(...js.map(e => e.responseEnd)).toFixed(0) +
					' ms, device list requested ' + list.startTime.toFixed(0) + ' ms, first byte ' + list.responseStart.toFixed(0) +
					' ms, received ' + list.responseEnd.toFixed(0) + ' ms (' + (list.decodedBodySize / 1e6).toFixed(1) + ' MB)';
			})()`))
		}
		search += searchDevices(br, "panda-0042", 1)
		eval[bool](br, `h.set('#page-devices input[type=search]', '')`)
		comment := fmt.Sprintf("comment %d", i)
		require.NoError(b, node.Client().SetComments(context.Background(), "panda-0003", comment))
		br.waitFor(30*time.Second, fmt.Sprintf(`h.cell('devices', 'panda-0003', 'comments') === %q`, comment), "the new comment")
		rebuild += eval[float64](br, `performance.getEntriesByName('mozpool:devices-table').at(-1).duration`)
	}
	b.StopTimer()
	runs := float64(b.N)
	b.ReportMetric(paint/runs, "first-paint-ms")
	b.ReportMetric(search/runs, "search-ms")
	b.ReportMetric(rebuild/runs, "rebuild-ms")
	b.ReportMetric(0, "ns/op") // the page's own timings are the figures
}
