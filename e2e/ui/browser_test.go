// Package ui tests the web UI in headless Chromium against whole clusters:
// every page loads without console errors, a request is made and reaches
// ready on screen, a state is forced, a device log tails live while the
// board images, and the Devices page shows 10,000 devices with only the
// rows in view in the DOM. How fast that page paints is a benchmark
// (BenchmarkDevicesPage, make bench-ui), never a test: a test that
// asserts a time fails on a slower machine. Screenshots of each page go to
// screenshots/ at the repository root (git-ignored).
package ui

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// chromiumPath finds a Chromium binary ($MOZPOOL_CHROMIUM first), or skips
// the test: CI installs Debian's chromium (.ci/run), a laptop may not have
// one.
func chromiumPath(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("MOZPOOL_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no Chromium binary found (apt-get install chromium, or set MOZPOOL_CHROMIUM): skipping the browser tests")
	return ""
}

// browser is one headless Chromium tab that records console errors and
// uncaught exceptions.
type browser struct {
	t   testing.TB
	ctx context.Context

	mu sync.Mutex
	// problems are console.error calls and uncaught exceptions: the UI
	// must never cause one.
	problems []string
	// network are failed resource loads the browser logs; only the
	// deliberate conflicts a test provokes may cause them.
	network []string
}

// newBrowser starts Chromium with a fresh profile. The flags keep it off the
// network (this machine has none): no QUIC, background updates, sync or
// first-run traffic.
func newBrowser(t testing.TB) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		// The test nodes' certificates come from the test's own CA.
		chromedp.Flag("ignore-certificate-errors", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1440, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	b := &browser{t: t, ctx: ctx}
	require.NoError(t, chromedp.Listen(ctx, b.record))
	return b
}

func (b *browser) record(ev any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
			var parts []string
			for _, a := range ev.Args {
				if len(a.Value) > 0 {
					parts = append(parts, string(a.Value))
				} else {
					parts = append(parts, a.Description)
				}
			}
			b.problems = append(b.problems, "console."+ev.Type.String()+": "+strings.Join(parts, " "))
		}
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		msg := d.Text
		if d.Exception != nil {
			msg += " " + d.Exception.Description
		}
		b.problems = append(b.problems, fmt.Sprintf("exception at %s:%d: %s", d.URL, d.LineNumber+1, msg))
	case *log.EventEntryAdded:
		if ev.Entry.Level != log.EntryLevelError {
			return
		}
		line := fmt.Sprintf("%s: %s (%s)", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL)
		if ev.Entry.Source == log.EntrySourceNetwork {
			b.network = append(b.network, line)
		} else {
			b.problems = append(b.problems, line)
		}
	}
}

// use makes b report to t (a subtest) until the returned func runs.
func (b *browser) use(t *testing.T) (restore func()) {
	old := b.t
	b.t = t
	return func() { b.t = old }
}

// requireClean fails the test if the page logged an error; with network
// set, failed loads count too.
func (b *browser) requireClean(network bool) {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	require.Empty(b.t, b.problems, "console errors or exceptions")
	if network {
		require.Empty(b.t, b.network, "failed loads")
	}
}

// do runs actions with a deadline.
func (b *browser) do(timeout time.Duration, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, timeout)
	defer cancel()
	require.NoError(b.t, chromedp.Do(ctx, actions...))
}

// eval evaluates a JavaScript expression (promises are awaited).
func eval[T any](b *browser, js string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	require.NoError(b.t, err, "evaluate %s", js)
	return v
}

// waitFor polls a JavaScript condition until it is truthy; msg says what
// was awaited.
func (b *browser) waitFor(timeout time.Duration, cond, msg string) {
	b.t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for {
		ctx, cancel := context.WithTimeout(b.ctx, time.Until(deadline)+5*time.Second)
		_, err = chromedp.Run(ctx, chromedp.Poll[chromedp.Void](cond,
			chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(time.Until(deadline))))
		cancel()
		// A poll started just as a navigation replaced the page's
		// JavaScript context fails at once; it is started again in the
		// new one.
		if err == nil || !contextReplaced(err) || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		// Show what the page shows: the visible rows of the page in view.
		rows, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`[...document.querySelectorAll('.page:not([hidden]) .vt-row:not([hidden])')]
			.sort((a, b) => a.dataset.vi - b.dataset.vi).map(r => r.innerText.replace(/\s+/g, ' ')).join('\n')`))
		b.t.Logf("rows shown:\n%s", rows)
	}
	require.NoError(b.t, err, "waiting for %s: %s", msg, cond)
}

// contextReplaced reports whether err is Chromium's answer to an evaluation
// in a JavaScript context that a navigation has just destroyed.
func contextReplaced(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "Cannot find context with specified id") ||
		strings.Contains(msg, "Execution context was destroyed")
}

// helpersJS gives the tests a few page helpers: h.set fills a field as
// typing would (input and change events), h.click presses a visible button
// by its label, h.cell reads a table cell of a row shown on a page, h.logTime
// and h.logAfter find log lines shown and their times.
const helpersJS = `window.h = {
  visible: el => !!el && el.offsetParent !== null,
  set(sel, v) {
    const el = document.querySelector(sel);
    if (!el) throw new Error('no field ' + sel);
    el.value = v;
    el.dispatchEvent(new Event('input', {bubbles: true}));
    el.dispatchEvent(new Event('change', {bubbles: true}));
    return true;
  },
  button(scope, label) {
    return [...document.querySelectorAll(scope + ' button')].find(b => this.visible(b) && b.textContent.trim().startsWith(label));
  },
  click(scope, label) {
    const b = this.button(scope, label);
    if (!b) throw new Error('no button ' + label + ' in ' + scope);
    if (b.disabled) throw new Error('button disabled: ' + b.textContent);
    b.click();
    return true;
  },
  row(page, key) {
    return document.querySelector('#page-' + page + ' .vt-row[data-key="' + CSS.escape(key) + '"]:not([hidden])');
  },
  cell(page, key, col) {
    const r = this.row(page, key);
    return r ? r.querySelector('.c-' + col).textContent.trim() : null;
  },
  logLines() {
    if (document.querySelector('#page-log').hidden) return [];
    return [...document.querySelectorAll('#page-log .vt-row:not([hidden])')]
      .map(r => ({ time: r.querySelector('.c-time').textContent, message: r.querySelector('.c-message').textContent }));
  },
  // The audit suffix " (by <caller>)" of lines a write filed is not
  // part of the line looked for.
  bare: m => m.replace(/ \(by [^)]*\)$/, ''),
  logTime(line) {
    const e = this.logLines().find(e => this.bare(e.message) === line);
    return e ? e.time : '';
  },
  logAfter(time, line) {
    return this.logLines().some(e => e.time >= time && this.bare(e.message) === line);
  },
};
true`

// screenshot writes the viewport as screenshots/<name>.png at the
// repository root.
func (b *browser) screenshot(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	require.NoError(b.t, err)
	dir := filepath.Join(repoRoot(b.t), "screenshots")
	require.NoError(b.t, os.MkdirAll(dir, 0o755))
	p := filepath.Join(dir, name+".png")
	require.NoError(b.t, os.WriteFile(p, png, 0o644))
	b.t.Logf("screenshot %s", p)
}

// repoRoot is the directory holding go.mod above the test's directory.
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	require.NoError(t, err)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		require.NotEqual(t, dir, parent, "no go.mod above the test directory")
		dir = parent
	}
}
