package ping

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

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

func tcpPinger(t *testing.T) *Pinger {
	t.Helper()
	p, err := New(Config{Mode: ModeTCP, Logger: testlog.New(t)})
	require.NoError(t, err)
	return p
}

// listen returns a loopback listener that accepts and closes connections
// until the test ends.
func listen(t *testing.T) net.Listener {
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
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
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

func TestTCPDown(t *testing.T) {
	addr := closedPort(t)
	start := time.Now()
	up, err := tcpPinger(t).Ping(context.Background(), addr)
	elapsed := time.Since(start)
	require.NoError(t, err)
	require.False(t, up, "Ping(%s) = true, want false", addr)
	require.Less(t, elapsed, 1500*time.Millisecond, "a down host took too long")
	// All five attempts were made, 200 ms apart.
	require.GreaterOrEqual(t, elapsed, 800*time.Millisecond, "gave up before the last attempt")
}

func TestPingContext(t *testing.T) {
	addr := closedPort(t)
	p := tcpPinger(t)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	up, err := p.Ping(ctx, addr)
	require.False(t, up)
	require.ErrorIs(t, err, context.Canceled)

	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	up, err = p.Ping(ctx, addr)
	require.False(t, up)
	require.ErrorIs(t, err, context.Canceled)
	require.Less(t, time.Since(start), 500*time.Millisecond, "Ping ignored cancellation")

	// A caller deadline shorter than Config.Timeout ends the Ping too.
	ctx, cancel = context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err = p.Ping(ctx, addr)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, time.Since(start), 500*time.Millisecond)
}

func TestEmptyHost(t *testing.T) {
	for _, host := range []string{"", "  "} {
		_, err := tcpPinger(t).Ping(context.Background(), host)
		require.ErrorIs(t, err, ErrEmptyHost)
	}
}

// icmpPinger returns an ICMP Pinger, or skips the test if this environment
// does not allow the kind of ICMP socket asked for.
func icmpPinger(t *testing.T, privileged bool) *Pinger {
	t.Helper()
	p, err := New(Config{Mode: ModeICMP, Privileged: privileged, Logger: testlog.New(t)})
	if errors.Is(err, ErrICMPNotPermitted) {
		// The refusal must say what to fix.
		if privileged {
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
			p := icmpPinger(t, privileged)
			ctx := context.Background()

			start := time.Now()
			up, err := p.Ping(ctx, "127.0.0.1")
			require.NoError(t, err)
			require.True(t, up, "Ping(127.0.0.1) = false, want true")
			require.Less(t, time.Since(start), 500*time.Millisecond, "Ping did not stop at the first reply")

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
		})
	}
}
