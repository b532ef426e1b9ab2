package ui

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/daemon/daemontest"
	"github.com/mozpool/mozpool/fsm"
	"github.com/mozpool/mozpool/internal/testlog"
	"github.com/mozpool/mozpool/lifeguard"
	"github.com/mozpool/mozpool/requests"
	"github.com/mozpool/mozpool/sim"
)

// The simulated lab's time scale and size. Its addresses and ports are
// picked by each run (startLab), so that runs may share a machine.
const (
	timeScale       = 0.05
	boardsPerServer = 4
)

// skipShort skips browser tests under -short: each starts a cluster and a
// browser and runs for tens of seconds.
func skipShort(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("browser test with a 3-node cluster")
	}
}

// startLab starts a 3-node cluster at timeScale and a simulated lab of 12
// boards whose self-tests pass, and waits until every board is ready.
func startLab(t *testing.T) *daemontest.Cluster {
	t.Helper()
	// Free ping and SUT ports (daemontest's), random loopback networks.
	c := daemontest.New(t, 3, daemontest.Options{TimeScale: timeScale})
	// Devices must not enter their first states before the time scale
	// applies.
	for _, n := range c.Nodes {
		require.Eventually(t, func() bool {
			var s float64
			n.FSM.Read(func(st *fsm.State) { s = st.TimeScale })
			return s == timeScale
		}, 10*time.Second, 20*time.Millisecond, "%s never applied the time scale", n.Name)
	}
	nets := daemontest.LoopbackNets(2)
	inv, err := sim.GenerateInventory(sim.GenerateOptions{
		Servers:         []string{daemontest.NodeName(1), daemontest.NodeName(2), daemontest.NodeName(3)},
		BoardsPerServer: boardsPerServer, BoardNet: nets[0], RelayNet: nets[1], RelayPort: 0,
	})
	require.NoError(t, err)
	cfg := sim.DefaultConfig()
	cfg.Inventory, cfg.TimeScale, cfg.PingPort, cfg.SUTPort = inv, timeScale, c.PingPort(), c.SUTPort()
	cfg.RelayRecovery, cfg.Failures, cfg.BrokenFraction = 10*time.Millisecond, sim.Failures{SelfTestOK: 1}, 0
	cfg.Logger = testlog.New(t).Named("sim")
	cfg.TLS = daemontest.ClientTLS()
	for _, n := range c.Nodes {
		cfg.API = append(cfg.API, n.URL)
	}
	lab, err := sim.New(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		cancel()
		sctx, stop := context.WithTimeout(context.Background(), 10*time.Second)
		defer stop()
		lab.Shutdown(sctx)
	})
	require.NoError(t, lab.Start(ctx))
	c.LoadInventory(lab.Inventory())
	require.Eventually(t, func() bool {
		return len(devicesIn(c, lifeguard.StateReady)) == 3*boardsPerServer
	}, 3*time.Minute, 200*time.Millisecond, "boards did not finish their first self-tests")
	return c
}

// devicesIn lists the devices in state without a request, as the first
// node sees them.
func devicesIn(c *daemontest.Cluster, state lifeguard.State) []string {
	var out []string
	c.Nodes[0].FSM.Read(func(st *fsm.State) {
		for name, d := range st.Devices {
			if lifeguard.State(d.State) == state && d.RequestID == 0 {
				out = append(out, name)
			}
		}
	})
	return out
}

// entering is the state machines' log line of a device or request
// entering state.
func entering[S ~string](state S) string { return "entering state " + string(state) }

// TestUI drives every page of the UI served by a follower (so every write
// is forwarded to the leader and every hardware call proxied to the owner)
// against a simulated lab.
func TestUI(t *testing.T) {
	skipShort(t)
	chromiumPath(t)
	c := startLab(t)
	node := c.Followers()[0]
	b := newBrowser(t)
	t.Logf("UI served by %s at %s/ui/", node.Name, node.URL)

	// "/" sends a browser to the UI.
	b.do(30*time.Second, chromedp.Navigate(node.URL+"/"))
	require.True(t, eval[bool](b, `location.pathname === '/ui/'`), "/ did not lead to /ui/")
	eval[bool](b, helpersJS)
	eval[bool](b, `window.__loaded = true`) // gone if the page ever reloads

	// signIn signs in with tok through the header's form (signing out
	// first), as a person would; the header then names the token.
	signIn := func(tok, name string) {
		t.Helper()
		if eval[bool](b, `!document.querySelector('#signout-btn').hidden`) {
			b.do(10*time.Second, chromedp.Click(`#signout-btn`))
			b.waitFor(10*time.Second, `document.querySelector('#signout-btn').hidden`, "signed out")
		}
		b.do(10*time.Second, chromedp.SendKeys(`#token`, tok), chromedp.Click(`#signin-btn`))
		b.waitFor(10*time.Second, fmt.Sprintf(`document.querySelector('#who').textContent.startsWith(%q)`, name+" ("), "signed in as "+name)
		// The page shows what the role may do once the flags follow it.
		b.waitFor(10*time.Second, `(() => { const m = document.querySelector('#who').textContent.match(/\((\w+)\)/);
			return m && document.body.dataset.mayOperator === (['operator', 'admin'].includes(m[1]) ? 'yes' : 'no'); })()`, "the role's actions shown")
	}
	// The operator actions below need a token: the bootstrap admin's.
	signIn(daemontest.Token, "cluster-token")

	// goTo shows a page through its navigation link, as a person would.
	goTo := func(page, ready string) {
		t.Helper()
		b.do(10*time.Second, chromedp.Click(fmt.Sprintf(`header nav a[data-page=%q]`, page)))
		b.waitFor(20*time.Second, ready, page+" page")
	}

	t.Run("every page loads", func(t *testing.T) {
		defer b.use(t)()
		b.waitFor(20*time.Second, `document.querySelectorAll('#page-home table.racks tbody tr').length === 3`, "home: racks")
		require.Contains(t, eval[string](b, `document.querySelector('#page-home').textContent`), "failure tolerance")
		goTo("requests", `!!document.querySelector('#page-requests .vt-empty:not([hidden])') || !!document.querySelector('#page-requests .vt-row:not([hidden])')`)
		goTo("devices", `document.querySelectorAll('#page-devices .vt-row:not([hidden])').length === 12`)
		goTo("hardware", `document.querySelectorAll('#page-hardware .vt-row:not([hidden])').length === 12`)
		goTo("log", `!!document.querySelector('#page-log input[list=log-device-names]')`)
		goTo("home", `!document.querySelector('#page-home').hidden`)
		// The page follows the node's event stream rather than polling fast.
		b.waitFor(20*time.Second, `document.documentElement.dataset.events === 'open'`, "the event stream")
		b.screenshot("home")
		b.requireClean(true)
	})

	t.Run("shift-click selects a range", func(t *testing.T) {
		defer b.use(t)()
		goTo("devices", `document.querySelectorAll('#page-devices .vt-row:not([hidden])').length === 12`)
		rows, err := chromedp.Run(b.ctx, chromedp.Nodes(`#page-devices .vt-row:not([hidden]) .c-name`))
		require.NoError(t, err)
		require.GreaterOrEqual(t, len(rows), 5)
		first, fifth := rowAt(b, 0), rowAt(b, 4)
		b.do(10*time.Second,
			chromedp.Click(rowSel("devices", first)+" .c-image"),
			clickWith(rowSel("devices", fifth)+" .c-image", kb.ModifierShift))
		require.Equal(t, 5, eval[int](b, `document.querySelectorAll('#page-devices .vt-row.selected').length`))
		require.Contains(t, eval[string](b, `document.querySelector('#page-devices .vt-foot').textContent`), "5 selected")
		require.Contains(t, eval[string](b, `h.button('#page-devices', 'Send to').textContent`), "5 devices")
		b.do(10*time.Second, chromedp.Click(`#page-devices .vt-clear`))
		require.Equal(t, 0, eval[int](b, `document.querySelectorAll('#page-devices .vt-row.selected').length`))
	})

	t.Run("a request made in the UI reaches ready", func(t *testing.T) {
		defer b.use(t)()
		goTo("requests", `[...document.querySelectorAll('#page-requests form [name=image] option')].some(o => o.value === 'b2g')`)
		eval[bool](b, `h.set('#page-requests form [name=image]', 'b2g')`)
		b.waitFor(5*time.Second, `!!document.querySelector('#page-requests form [name=b2gbase]')`, "the image's boot-config field")
		b.do(10*time.Second,
			chromedp.SendKeys(`#page-requests form [name=b2gbase]`, "http://builds.lab/b2g/"),
			chromedp.SendKeys(`#page-requests form [name=assignee]`, "ui-test"),
			chromedp.Click(`#page-requests form button[type=submit]`))
		b.waitFor(90*time.Second, fmt.Sprintf(`[...document.querySelectorAll('#page-requests .vt-row:not([hidden])')].some(r =>
			r.querySelector('.c-assignee').textContent === 'ui-test' && r.querySelector('.c-state').textContent === %q)`, requests.StateReady),
			"the request to be ready on screen")
		require.Contains(t, eval[string](b, `document.querySelector('.jobs-indicator').textContent`), "no jobs queued")
		b.screenshot("requests")

		reqs, err := node.Client().Requests(context.Background(), false)
		require.NoError(t, err)
		require.Len(t, reqs, 1)
		id, dev := fmt.Sprint(reqs[0].ID), reqs[0].AssignedDevice

		// Its log, then merged with its device's log on one time line.
		b.do(10*time.Second, chromedp.Click(rowSel("requests", id)+" .c-links a"))
		b.waitFor(20*time.Second, fmt.Sprintf(`h.logTime(%q) !== ''`, entering(requests.StateReady)), "the request's log")
		b.do(10*time.Second, chromedp.Click(`#page-log .subject button.link`))
		b.waitFor(20*time.Second, fmt.Sprintf(`location.hash === '#/log?request=%s&device=%s'
			&& h.logLines().length > 0 && [...document.querySelectorAll('#page-log .vt-row:not([hidden]) .c-subject')].some(c => c.textContent === %q)`, id, dev, dev),
			"the device's lines merged in")
		b.screenshot("log-request")

		// Renew it for a day, then close it.
		goTo("requests", fmt.Sprintf(`!!h.row('requests', %q)`, id))
		b.do(10*time.Second, chromedp.Click(rowSel("requests", id)+" .c-assignee"))
		eval[bool](b, `[...document.querySelectorAll('#page-requests .tab')].find(t => t.textContent === 'Renew').click() ?? true`)
		eval[bool](b, `h.set('#page-requests select[aria-label="renew for"]', '86400')`)
		eval[bool](b, `h.click('#page-requests', 'Renew 1 request')`)
		b.waitFor(20*time.Second, fmt.Sprintf(`(h.cell('requests', %q, 'expires') || '').includes('in 23h')`, id), "the renewed expiry on screen")
		eval[bool](b, `[...document.querySelectorAll('#page-requests .tab')].find(t => t.textContent === 'Close').click() ?? true`)
		eval[bool](b, `h.click('#page-requests', 'Close 1 request')`)
		b.waitFor(20*time.Second, fmt.Sprintf(`!h.row('requests', %q)`, id), "the closed request to leave the open ones")
		b.do(10*time.Second, chromedp.Click(`#page-requests .page-head input[type=checkbox]`))
		b.waitFor(20*time.Second, fmt.Sprintf(`h.cell('requests', %q, 'state') === %q`, id, requests.StateClosed),
			"the closed request, closed requests included")
	})

	t.Run("a state is forced from the Devices page", func(t *testing.T) {
		defer b.use(t)()
		ready := devicesIn(c, lifeguard.StateReady)
		require.GreaterOrEqual(t, len(ready), 3)
		dev, moved := ready[0], ready[1]
		goTo("devices", fmt.Sprintf(`h.cell('devices', %q, 'state') === %q`, dev, lifeguard.StateReady))
		// Select it through the search box, then force it.
		b.do(10*time.Second, chromedp.SendKeys(`#page-devices input[type=search]`, dev))
		b.waitFor(5*time.Second, `document.querySelectorAll('#page-devices .vt-row:not([hidden])').length === 1`, "the search")
		b.do(10*time.Second, chromedp.Click(rowSel("devices", dev)+" .c-name"))
		eval[bool](b, `[...document.querySelectorAll('#page-devices .tab')].find(t => t.textContent === 'Force state').click() ?? true`)
		eval[bool](b, fmt.Sprintf(`h.set('#page-devices input[list=lifeguard-states]', %q)`, lifeguard.StateLockedOut))
		eval[bool](b, `h.click('#page-devices', 'Force 1 device')`)
		b.waitFor(20*time.Second, fmt.Sprintf(`h.cell('devices', %q, 'state') === %q`, dev, lifeguard.StateLockedOut),
			"locked_out on screen")
		state, err := node.Client().DeviceState(context.Background(), dev)
		require.NoError(t, err)
		require.Equal(t, lifeguard.StateLockedOut, lifeguard.State(state))

		// The displayed state is the expected one: a device that moved
		// meanwhile is refused with 409, and the queue says so. The page's
		// own fetch moves it, then the button is pressed in the same task,
		// before any poll can show the new state.
		eval[bool](b, fmt.Sprintf(`h.set('#page-devices input[type=search]', %q)`, moved))
		b.waitFor(5*time.Second, fmt.Sprintf(`h.cell('devices', %q, 'state') === %q`, moved, lifeguard.StateReady), "the second device")
		b.do(10*time.Second, chromedp.Click(`#page-devices .vt-clear`), chromedp.Click(rowSel("devices", moved)+" .c-name"))
		eval[bool](b, fmt.Sprintf(`fetch('../api/device/%s/state-change/%s/to/%s/', {method: 'POST', headers: {Authorization: 'Bearer ' + sessionStorage.getItem('mozpool-token')}})
			.then(r => r.ok && h.click('#page-devices', 'Force 1 device'))`, moved, lifeguard.StateReady, lifeguard.StateTroubleshooting))
		b.waitFor(20*time.Second, `!!document.querySelector('.jobs-panel:not([hidden]) .job-failed')`, "the failed job in the open queue")
		msg := eval[string](b, `document.querySelector('.jobs-panel .job-failed').textContent`)
		require.Contains(t, msg, "409", "the queue shows the conflict")
		require.Contains(t, eval[string](b, `document.querySelector('.jobs-indicator').textContent`), "1 failed")
		b.waitFor(10*time.Second, fmt.Sprintf(`h.cell('devices', %q, 'state') === %q`, moved, lifeguard.StateTroubleshooting),
			"the real state on screen")
		b.screenshot("jobs")
		b.do(10*time.Second, chromedp.Click(`.jobs-panel .icon`))
		eval[bool](b, `h.set('#page-devices input[type=search]', '')`)
		b.waitFor(5*time.Second, `document.querySelectorAll('#page-devices .vt-row:not([hidden])').length === 12`, "all devices again")
		b.screenshot("devices")
	})

	t.Run("a device log tails live while the board images", func(t *testing.T) {
		defer b.use(t)()
		// A board never imaged: its log has no imaging lines before ours.
		var dev string
		c.Nodes[0].FSM.Read(func(st *fsm.State) {
			for name, d := range st.Devices {
				if lifeguard.State(d.State) == lifeguard.StateReady && d.RequestID == 0 && d.Image == "" {
					dev = name
				}
			}
		})
		require.NotEmpty(t, dev, "no ready board that was never imaged")
		// Start the imaging from the Devices page.
		goTo("devices", fmt.Sprintf(`h.cell('devices', %q, 'state') === %q`, dev, lifeguard.StateReady))
		eval[bool](b, fmt.Sprintf(`h.set('#page-devices input[type=search]', %q)`, dev))
		b.waitFor(5*time.Second, `document.querySelectorAll('#page-devices .vt-row:not([hidden])').length === 1`, "the search")
		b.do(10*time.Second, chromedp.Click(`#page-devices .vt-clear`), chromedp.Click(rowSel("devices", dev)+" .c-name"))
		eval[bool](b, `[...document.querySelectorAll('#page-devices .tab')].find(t => t.textContent === 'Please…').click() ?? true`)
		eval[bool](b, fmt.Sprintf(`h.set('#page-devices .panel select[aria-label=event]', %q)`, lifeguard.EventPleaseImage))
		eval[bool](b, `h.set('#page-devices .panel select[aria-label=image]', 'b2g')`)
		eval[bool](b, `h.set('#page-devices .panel [name=b2gbase]', 'http://builds.lab/b2g/')`)
		eval[bool](b, `h.click('#page-devices', 'Send to 1 device')`)

		// Open its log through the row's link, then watch lines arrive.
		b.do(10*time.Second, chromedp.Click(rowSel("devices", dev)+" .c-links a"))
		b.waitFor(10*time.Second, fmt.Sprintf(`location.hash === '#/log?device=%s' && !document.querySelector('#page-log').hidden`, dev), "the log page")
		b.waitFor(20*time.Second, `h.logTime('imaging with b2g') !== ''`, "the imaging start in the log")
		start := eval[string](b, `h.logTime('imaging with b2g')`)
		lines := "parseInt(document.querySelector('#page-log .vt-count').textContent.replace(/,/g, ''))"
		before := eval[int](b, lines)
		// Follow keeps the newest lines in view, where they are looked for.
		b.waitFor(90*time.Second, fmt.Sprintf(`h.logAfter(%q, %q)`, start, entering(lifeguard.StateB2GDownloading)),
			"b2g_downloading to arrive in the log")
		b.waitFor(90*time.Second, fmt.Sprintf(`h.logAfter(%q, %q)`, start, entering(lifeguard.StateReady)),
			"the end of the imaging in the log")
		after := eval[int](b, lines)
		require.Greater(t, after, before, "new lines appeared")
		require.True(t, eval[bool](b, `window.__loaded === true`), "the page reloaded")
		require.True(t, eval[bool](b, `location.hash.startsWith('#/log?device=')`))
		// Sources are highlighted: statemachine and at least one other.
		sources := eval[[]string](b, `[...new Set([...document.querySelectorAll('#page-log .vt-row:not([hidden]) .src')].map(s => s.textContent))]`)
		require.Contains(t, sources, "statemachine")
		require.Greater(t, len(sources), 1, "sources %v", sources)
		// The follow mode keeps the newest line in view.
		require.True(t, eval[bool](b, `(s => s.scrollHeight - s.scrollTop - s.clientHeight < 40)(document.querySelector('#page-log .vt-scroll'))`))
		b.screenshot("log")

		// A source filter hides the others.
		eval[bool](b, `document.querySelector('#page-log .src-chip.src-statemachine').dispatchEvent(new MouseEvent('click', {bubbles: true, shiftKey: true}))`)
		b.waitFor(5*time.Second, `[...document.querySelectorAll('#page-log .vt-row:not([hidden]) .src')].every(s => s.textContent === 'statemachine')`, "only statemachine lines")
	})

	t.Run("hardware page", func(t *testing.T) {
		defer b.use(t)()
		goTo("hardware", `document.querySelectorAll('#page-hardware .vt-row:not([hidden])').length === 12`)
		dev := devicesIn(c, lifeguard.StateReady)[0]
		b.do(10*time.Second, chromedp.Click(rowSel("hardware", dev)+" .c-mac"))
		// Ping runs on the board's imaging server, proxied by this node.
		eval[bool](b, `h.click('#page-hardware', 'Ping')`)
		b.waitFor(20*time.Second, `[...document.querySelectorAll('.jobs-panel .job-done')].some(j => j.textContent.includes('ping'))
			|| document.querySelector('.jobs-indicator').textContent.includes('no jobs queued')`, "the ping job")
		b.screenshot("hardware")
	})

	t.Run("a reader and an operator see different actions", func(t *testing.T) {
		defer b.use(t)()
		ctx := context.Background()
		op, err := node.Client().CreateToken(ctx, "ui-operator", "operator")
		require.NoError(t, err)
		rd, err := node.Client().CreateToken(ctx, "ui-reader", "reader")
		require.NoError(t, err)
		visible := func(sel string) bool { return eval[bool](b, fmt.Sprintf(`h.visible(document.querySelector(%q))`, sel)) }

		signIn(rd.Secret, "ui-reader")
		goTo("devices", `!document.querySelector('#page-devices').hidden`)
		eval[bool](b, `h.set('#page-devices input[type=search]', '')`)
		b.waitFor(10*time.Second, `document.querySelectorAll('#page-devices .vt-row:not([hidden])').length === 12`, "all devices")
		require.False(t, visible(`#page-devices .actions-wrap`), "a reader sees no device actions")
		require.Contains(t, eval[string](b, `document.querySelector('#who').textContent`), "ui-reader (reader)")
		goTo("hardware", `document.querySelectorAll('#page-hardware .vt-row:not([hidden])').length === 12`)
		require.True(t, eval[bool](b, `[...document.querySelectorAll('#page-hardware [data-needs=operator]')].every(e => !h.visible(e))`),
			"a reader sees no power or PXE actions")
		b.waitFor(10*time.Second, `[...document.querySelectorAll('#page-hardware button')].some(e => h.visible(e) && e.textContent.startsWith('Ping'))`,
			"a reader may ping")
		goTo("requests", `!document.querySelector('#page-requests').hidden`)
		require.True(t, visible(`#page-requests [data-needs=user]`), "under the open policy anyone may make, renew and return requests")
		b.screenshot("signed-in-reader")

		signIn(op.Secret, "ui-operator")
		goTo("devices", `document.querySelectorAll('#page-devices .vt-row:not([hidden])').length === 12`)
		b.waitFor(10*time.Second, `h.visible(document.querySelector('#page-devices .actions-wrap'))`, "an operator sees the device actions")
		goTo("hardware", `document.querySelectorAll('#page-hardware .vt-row:not([hidden])').length === 12`)
		b.waitFor(10*time.Second, `[...document.querySelectorAll('#page-hardware button')].some(e => h.visible(e) && e.textContent.startsWith('Power cycle'))`,
			"an operator may power-cycle")
		b.screenshot("signed-in-operator")
		b.requireClean(false)
	})

	t.Run("dark mode", func(t *testing.T) {
		defer b.use(t)()
		_, err := chromedp.Call(b.ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}},
		})
		require.NoError(t, err)
		goTo("devices", `!document.querySelector('#page-devices').hidden`)
		eval[bool](b, `h.set('#page-devices input[type=search]', '')`)
		b.waitFor(5*time.Second, `document.querySelectorAll('#page-devices .vt-row:not([hidden])').length === 12`, "all devices")
		require.Equal(t, "rgb(20, 24, 29)", eval[string](b, `getComputedStyle(document.body).backgroundColor`))
		b.screenshot("devices-dark")
	})

	b.requireClean(false)
}

// rowAt is the key of the row shown at position i on the Devices page.
func rowAt(b *browser, i int) string {
	b.t.Helper()
	return eval[string](b, fmt.Sprintf(`[...document.querySelectorAll('#page-devices .vt-row:not([hidden])')].sort((a, b) => a.dataset.vi - b.dataset.vi)[%d].dataset.key`, i))
}

// rowSel selects the shown row of key on a page.
func rowSel(page, key string) string {
	return fmt.Sprintf(`#page-%s .vt-row[data-key=%q]:not([hidden])`, page, key)
}

// clickWith clicks the node sel with modifier keys held.
func clickWith(sel string, mods ...kb.Modifier) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		nodes, err := chromedp.Nodes(sel, chromedp.NodeVisible)(ctx, t)
		if err != nil {
			return err
		}
		if len(nodes) == 0 {
			return fmt.Errorf("no node %s", sel)
		}
		_, err = chromedp.MouseClickNode(nodes[0], chromedp.ButtonModifiers(mods...))(ctx, t)
		return err
	})
}
