package ping

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/internal/testlog"
)

func TestParseMode(t *testing.T) {
	tests := []struct {
		in      string
		want    Mode
		wantErr bool
	}{
		{"icmp", ModeICMP, false},
		{"ICMP", ModeICMP, false},
		{" tcp ", ModeTCP, false},
		{"", "", true},
		{"udp", "", true},
		{"fping", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseMode(tc.in)
			if tc.wantErr {
				require.ErrorIs(t, err, ErrBadMode, "ParseMode(%q)", tc.in)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got, "ParseMode(%q)", tc.in)
		})
	}
}

func TestConfigValidate(t *testing.T) {
	require.NoError(t, DefaultConfig().Validate())
	tests := []struct {
		name string
		edit func(*Config)
	}{
		{"bad mode", func(c *Config) { c.Mode = "udp" }},
		{"port too big", func(c *Config) { c.Port = 70000 }},
		{"negative port", func(c *Config) { c.Port = -1 }},
		{"negative attempts", func(c *Config) { c.Attempts = -1 }},
		{"negative interval", func(c *Config) { c.Interval = -time.Second }},
		{"negative timeout", func(c *Config) { c.Timeout = -time.Second }},
		{"attempts do not fit", func(c *Config) { c.Attempts, c.Interval, c.Timeout = 5, 300*time.Millisecond, time.Second }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.edit(&c)
			require.Error(t, c.Validate())
			_, err := New(c)
			require.Error(t, err)
		})
	}
}

// testWait bounds how long a test waits for a Ping that should end soon.
// The slow alternatives the tests tell apart take a minute or more, so no
// machine is too slow for it.
const testWait = 20 * time.Second

func tcpPinger(t testing.TB) *Pinger {
	t.Helper()
	p, err := New(Config{Mode: ModeTCP, Logger: testlog.New(t)})
	require.NoError(t, err)
	return p
}

// listen returns a loopback listener that accepts and closes connections
// until the test ends.
func listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	// Exits when the cleanup above closes ln.
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return ln
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// probes makes p count its TCP connection attempts, and signal each on the
// returned channel (without blocking, so a signal is dropped while one is
// pending). control, if not nil, runs in each attempt's socket setup, before
// the connect, with the attempt's context.
func probes(p *Pinger, control func(ctx context.Context) error) (*atomic.Int32, <-chan struct{}) {
	var n atomic.Int32
	probed := make(chan struct{}, 1)
	p.dialer.ControlContext = func(ctx context.Context, _, _ string, _ syscall.RawConn) error {
		n.Add(1)
		select {
		case probed <- struct{}{}:
		default:
		}
		if control != nil {
			return control(ctx)
		}
		return nil
	}
	return &n, probed
}

// pingWithin runs p.Ping(ctx, host) and returns its result, failing the
// test, with why, if Ping has not returned within testWait.
func pingWithin(t *testing.T, p *Pinger, ctx context.Context, host, why string) (bool, error) {
	t.Helper()
	type result struct {
		up  bool
		err error
	}
	done := make(chan result, 1)
	// Exits when Ping returns; if that is after testWait, the test has
	// already failed.
	go func() {
		up, err := p.Ping(ctx, host)
		done <- result{up, err}
	}()
	select {
	case r := <-done:
		return r.up, r.err
	case <-time.After(testWait):
		t.Fatalf("Ping(%s) still running after %s: %s", host, testWait, why)
		return false, nil
	}
}

func TestTCPUp(t *testing.T) {
	ln := listen(t)
	port := ln.Addr().(*net.TCPAddr).Port

	up, err := tcpPinger(t).Ping(context.Background(), ln.Addr().String())
	require.NoError(t, err)
	require.True(t, up, "Ping(%s) = false, want true", ln.Addr())

	// Host without a port: Config.Port is used.
	p, err := New(Config{Mode: ModeTCP, Port: port, Logger: testlog.New(t)})
	require.NoError(t, err)
	up, err = p.Ping(context.Background(), "127.0.0.1")
	require.NoError(t, err)
	require.True(t, up, "Ping(127.0.0.1) on port %d = false, want true", port)
}

// TestTCPDown proves that a refused host is down, (false, nil), only after
// every one of the default Attempts probes, each the default Interval after
// the one before; and that Ping returns after the last refusal instead of
// waiting out Config.Timeout, here a minute.
func TestTCPDown(t *testing.T) {
	addr := closedPort(t)
	p, err := New(Config{Mode: ModeTCP, Timeout: time.Minute, Logger: testlog.New(t)})
	require.NoError(t, err)
	dials, _ := probes(p, nil)

	start := time.Now()
	up, err := pingWithin(t, p, context.Background(), addr, "a refused host waited out the minute-long Timeout")
	elapsed := time.Since(start)
	require.NoError(t, err)
	require.False(t, up, "Ping(%s) = true, want false", addr)
	require.EqualValues(t, DefaultConfig().Attempts, dials.Load(), "probes made before giving up")
	// A lower bound: the refusals came at once, yet Ping waited for each
	// probe's slot.
	gaps := time.Duration(DefaultConfig().Attempts-1) * DefaultConfig().Interval
	require.GreaterOrEqual(t, elapsed, gaps, "probes were not Interval apart")
}

// TestTCPSilent proves that Config.Timeout bounds a Ping of a host that
// never answers (its connection attempt hangs until cancelled, as a SYN to
// a host that is off does): the only probe may take an Interval of an hour,
// yet Ping calls the host down, (false, nil), at the Timeout.
func TestTCPSilent(t *testing.T) {
	p, err := New(Config{Mode: ModeTCP, Attempts: 1, Interval: time.Hour, Timeout: time.Second, Logger: testlog.New(t)})
	require.NoError(t, err)
	dials, _ := probes(p, func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err()
	})

	up, err := pingWithin(t, p, context.Background(), closedPort(t), "Timeout did not cut the hanging probe")
	require.NoError(t, err)
	require.False(t, up)
	require.EqualValues(t, 1, dials.Load(), "probes made")
}

// lineWriter calls f for every log line that contains s.
type lineWriter struct {
	s string
	f func()
}

func (w lineWriter) Write(p []byte) (int, error) {
	if strings.Contains(string(p), w.s) {
		w.f()
	}
	return len(p), nil
}

// TestPingContext proves that Ping honours its ctx, reporting ctx's error
// rather than calling the host down: a cancelled ctx fails at once, a
// cancel during the last probe or during the wait between two probes ends
// the Ping with context.Canceled, and a caller deadline shorter than
// Config.Timeout ends it with context.DeadlineExceeded. Probes hang until
// cancelled or are an hour apart, so a Ping that ignored its ctx would not
// return within testWait.
func TestPingContext(t *testing.T) {
	addr := closedPort(t)
	cfg := Config{Mode: ModeTCP, Attempts: 2, Interval: time.Hour, Timeout: 2 * time.Hour, Logger: testlog.New(t)}
	p, err := New(cfg)
	require.NoError(t, err)
	dials, _ := probes(p, nil)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	up, err := p.Ping(ctx, addr)
	require.False(t, up)
	require.ErrorIs(t, err, context.Canceled)
	require.Zero(t, dials.Load(), "a cancelled ctx sends no probe")

	t.Run("cancel during the last probe", func(t *testing.T) {
		cfg := cfg
		cfg.Attempts = 1
		p, err := New(cfg)
		require.NoError(t, err)
		// The only probe hangs, as one to a silent host does, until
		// cancelled; the cancel is not a host that is down.
		dials, probed := probes(p, func(ctx context.Context) error {
			<-ctx.Done()
			return ctx.Err()
		})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		// Exits once the probe has started, or when the test ends.
		go func() {
			select {
			case <-probed:
				cancel()
			case <-ctx.Done():
			}
		}()
		up, err := pingWithin(t, p, ctx, addr, "Ping ignored a cancel during its last probe")
		require.False(t, up)
		require.ErrorIs(t, err, context.Canceled)
		require.EqualValues(t, 1, dials.Load(), "probes made")
	})

	t.Run("cancel between probes", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		// Cancelled as the first probe's refusal is logged, just before
		// Ping waits for the second probe's slot.
		cfg := cfg
		cfg.Logger = hclog.New(&hclog.LoggerOptions{Level: hclog.Trace, Output: lineWriter{s: "tcp probe failed", f: cancel}})
		p, err := New(cfg)
		require.NoError(t, err)
		dials, _ := probes(p, nil)
		up, err := pingWithin(t, p, ctx, addr,
			`Ping ignored a cancel while waiting for the next probe (or no longer logs "tcp probe failed" before the wait, which is what cancels it here)`)
		require.False(t, up)
		require.ErrorIs(t, err, context.Canceled)
		require.EqualValues(t, 1, dials.Load(), "probes made")
	})

	t.Run("caller deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_, err := pingWithin(t, p, ctx, addr, "Ping ignored the caller's deadline")
		require.ErrorIs(t, err, context.DeadlineExceeded)
	})
}

func TestEmptyHost(t *testing.T) {
	for _, host := range []string{"", "  "} {
		_, err := tcpPinger(t).Ping(context.Background(), host)
		require.ErrorIs(t, err, ErrEmptyHost)
	}
}

// icmpPinger returns an ICMP Pinger for cfg, or skips the test if this
// environment does not allow the kind of ICMP socket cfg asks for.
func icmpPinger(t testing.TB, cfg Config) *Pinger {
	t.Helper()
	cfg.Mode = ModeICMP
	p, err := New(cfg)
	if errors.Is(err, ErrICMPNotPermitted) {
		// The refusal must say what to fix.
		if cfg.Privileged {
			require.Contains(t, err.Error(), "CAP_NET_RAW")
		} else {
			require.Contains(t, err.Error(), "net.ipv4.ping_group_range")
		}
		t.Skipf("ICMP sockets not permitted here: %v", err)
	}
	require.NoError(t, err)
	return p
}

func TestICMP(t *testing.T) {
	for _, privileged := range []bool{false, true} {
		name := "unprivileged"
		if privileged {
			name = "privileged"
		}
		t.Run(name, func(t *testing.T) {
			p := icmpPinger(t, Config{Privileged: privileged, Logger: testlog.New(t)})
			ctx := context.Background()

			up, err := p.Ping(ctx, "127.0.0.1")
			require.NoError(t, err)
			require.True(t, up, "Ping(127.0.0.1) = false, want true")

			up, err = p.Ping(ctx, "localhost")
			require.NoError(t, err)
			require.True(t, up, "Ping(localhost) = false, want true")

			// RFC 2606: .invalid never resolves.
			up, err = p.Ping(ctx, "no-such-board.invalid")
			require.NoError(t, err)
			require.False(t, up)

			cctx, cancel := context.WithCancel(ctx)
			cancel()
			_, err = p.Ping(cctx, "127.0.0.1")
			require.ErrorIs(t, err, context.Canceled)

			// Ping stops at the first reply: with the second echo request
			// an hour after the first, a Ping that went on would not
			// return within testWait.
			slow := icmpPinger(t, Config{Privileged: privileged, Attempts: 2, Interval: time.Hour, Timeout: 2 * time.Hour, Logger: testlog.New(t)})
			up, err = pingWithin(t, slow, ctx, "127.0.0.1", "Ping did not stop at the first reply")
			require.NoError(t, err)
			require.True(t, up, "Ping(127.0.0.1) = false, want true")
		})
	}
}

// BenchmarkTCPUp reports the cost of a TCP Ping of a listening loopback
// host: one connect and close.
func BenchmarkTCPUp(b *testing.B) {
	addr := listen(b).Addr().String()
	p, err := New(Config{Mode: ModeTCP})
	require.NoError(b, err)
	ctx := context.Background()
	for b.Loop() {
		if up, err := p.Ping(ctx, addr); !up || err != nil {
			b.Fatalf("Ping(%s) = %v, %v", addr, up, err)
		}
	}
}

// BenchmarkTCPDown reports how long a TCP Ping with the default Config
// takes to call a refusing host down: Attempts probes, Interval apart.
func BenchmarkTCPDown(b *testing.B) {
	addr := closedPort(b)
	p, err := New(Config{Mode: ModeTCP})
	require.NoError(b, err)
	ctx := context.Background()
	for b.Loop() {
		if up, err := p.Ping(ctx, addr); up || err != nil {
			b.Fatalf("Ping(%s) = %v, %v", addr, up, err)
		}
	}
}

// BenchmarkICMP reports the round trip of an ICMP Ping of 127.0.0.1, with
// unprivileged or raw sockets, whichever this environment allows.
func BenchmarkICMP(b *testing.B) {
	for _, privileged := range []bool{false, true} {
		name := "unprivileged"
		if privileged {
			name = "privileged"
		}
		b.Run(name, func(b *testing.B) {
			p := icmpPinger(b, Config{Privileged: privileged})
			ctx := context.Background()
			for b.Loop() {
				if up, err := p.Ping(ctx, "127.0.0.1"); !up || err != nil {
					b.Fatalf("Ping(127.0.0.1) = %v, %v", up, err)
				}
			}
		})
	}
}
