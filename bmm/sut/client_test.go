package sut_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/bmm/sut"
	"github.com/mozpool/mozpool/bmm/suttest"
	"github.com/mozpool/mozpool/internal/testlog"
	"github.com/mozpool/mozpool/internal/testwait"
)

// testWait is the CommandTimeout of checks that should succeed, and bounds
// how long a test waits for a check that should end soon. The slow
// alternatives the tests tell apart take an hour (the CommandTimeout they
// set) or forever, or the default CommandTimeout of 15 s.
const testWait = 10 * time.Second

func testAgent(t *testing.T, opts suttest.AgentOptions) *suttest.Agent {
	t.Helper()
	opts.Logger = testlog.New(t)
	a, err := suttest.NewAgent(opts)
	require.NoError(t, err)
	t.Cleanup(func() { a.Close() })
	return a
}

func testClient(t *testing.T, timeout time.Duration) *sut.Client {
	t.Helper()
	c, err := sut.New(sut.Config{CommandTimeout: timeout, Logger: testlog.New(t)})
	require.NoError(t, err)
	return c
}

// within runs op and returns its error, failing the test, with why, if op
// has not returned within testWait.
func within(t *testing.T, why string, op func() error) error {
	t.Helper()
	return testwait.Within(t, testWait, why, op)
}

func TestVerify(t *testing.T) {
	a := testAgent(t, suttest.AgentOptions{})
	require.NoError(t, testClient(t, testWait).Verify(context.Background(), a.Addr()))
	require.Equal(t, []string{"testroot"}, a.Commands())
}

func TestVerifyDefaultPort(t *testing.T) {
	// A host without a port uses Config.Port.
	a := testAgent(t, suttest.AgentOptions{})
	_, portStr, err := net.SplitHostPort(a.Addr())
	require.NoError(t, err)
	port, err := strconv.Atoi(portStr)
	require.NoError(t, err)
	c, err := sut.New(sut.Config{Port: port, CommandTimeout: testWait, Logger: testlog.New(t)})
	require.NoError(t, err)
	require.NoError(t, c.Verify(context.Background(), "127.0.0.1"))
}

func TestCheckSDCard(t *testing.T) {
	for _, root := range []string{"", "/data/local"} {
		t.Run("root "+root, func(t *testing.T) {
			a := testAgent(t, suttest.AgentOptions{Root: root})
			require.NoError(t, testClient(t, testWait).CheckSDCard(context.Background(), a.Addr()))

			dir := a.Root() + "/sdcardtest"
			want := []string{
				"testroot",
				"rmdr " + dir,
				"mkdr " + dir,
				"isdir " + dir,
				"push " + dir + "/sdcard_check 15",
				"rmdr " + dir,
			}
			require.Equal(t, want, a.Commands(), "wire sequence")
			require.False(t, a.IsDir(dir), "%s left behind", dir)
		})
	}
}

func TestCheckSDCardLeftoverDirectory(t *testing.T) {
	ctx := context.Background()
	c := testClient(t, testWait)
	a := testAgent(t, suttest.AgentOptions{Warn: map[string]bool{"rmdr": true}})

	// rmdr fails: the first (cleanup) rmdr is tolerated, the last is not,
	// so the directory stays behind.
	err := c.CheckSDCard(ctx, a.Addr())
	require.ErrorIs(t, err, sut.ErrAgentWarning)
	require.True(t, a.IsDir(a.Root()+"/sdcardtest"))
	data, ok := a.File(a.Root() + "/sdcardtest/sdcard_check")
	require.True(t, ok)
	require.Equal(t, "autophone test\n", string(data))

	// The next check removes the leftover first and succeeds.
	a.SetWarn("rmdr", false)
	require.NoError(t, c.CheckSDCard(ctx, a.Addr()))
	require.False(t, a.IsDir(a.Root()+"/sdcardtest"))
}

func TestCheckFailures(t *testing.T) {
	tests := []struct {
		name   string
		opts   suttest.AgentOptions
		verify bool // run Verify rather than CheckSDCard
		want   error
	}{
		{"verify: testroot warning", suttest.AgentOptions{Warn: map[string]bool{"testroot": true}}, true, sut.ErrAgentWarning},
		{"sdcard: testroot warning", suttest.AgentOptions{Warn: map[string]bool{"testroot": true}}, false, sut.ErrAgentWarning},
		{"sdcard: mkdr warning", suttest.AgentOptions{Warn: map[string]bool{"mkdr": true}}, false, sut.ErrAgentWarning},
		{"sdcard: isdir warning", suttest.AgentOptions{Warn: map[string]bool{"isdir": true}}, false, sut.ErrAgentWarning},
		{"sdcard: push warning", suttest.AgentOptions{Warn: map[string]bool{"push": true}}, false, sut.ErrAgentWarning},
		{"sdcard: broken card", suttest.AgentOptions{BrokenSDCard: true}, false, sut.ErrMismatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := testAgent(t, tc.opts)
			c := testClient(t, testWait)
			var err error
			if tc.verify {
				err = c.Verify(context.Background(), a.Addr())
			} else {
				err = c.CheckSDCard(context.Background(), a.Addr())
			}
			if tc.want == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tc.want)
			require.Contains(t, err.Error(), a.Addr(), "the error names the agent")
		})
	}
}

// TestSilentAgentTimesOut proves that a check of a silent agent (it
// accepts the connection but never greets), which would otherwise wait
// forever, fails with ErrTimeout once CommandTimeout passes; and, with
// CommandTimeout an hour, once a shorter caller deadline passes (then
// wrapping context.DeadlineExceeded too).
func TestSilentAgentTimesOut(t *testing.T) {
	a := testAgent(t, suttest.AgentOptions{Silent: true})

	c := testClient(t, 200*time.Millisecond)
	err := within(t, "CommandTimeout did not bound the wait for the greeting", func() error {
		return c.Verify(context.Background(), a.Addr())
	})
	require.ErrorIs(t, err, sut.ErrTimeout)
	require.NotErrorIs(t, err, context.DeadlineExceeded, "CommandTimeout ended it, not a caller deadline")

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	c = testClient(t, time.Hour)
	err = within(t, "the caller's deadline did not bound the check", func() error {
		return c.CheckSDCard(ctx, a.Addr())
	})
	require.ErrorIs(t, err, sut.ErrTimeout)
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

// TestSilentMidSession proves that CommandTimeout bounds every step, not
// only the first: an agent that passed a Verify and then goes silent fails
// the next with ErrTimeout, and so does one that greets but never answers
// testroot, at that command.
func TestSilentMidSession(t *testing.T) {
	a := testAgent(t, suttest.AgentOptions{})
	require.NoError(t, testClient(t, testWait).Verify(context.Background(), a.Addr()))
	a.SetSilent(true)
	c := testClient(t, 300*time.Millisecond)
	err := within(t, "CommandTimeout did not bound a check of an agent gone silent", func() error {
		return c.Verify(context.Background(), a.Addr())
	})
	require.ErrorIs(t, err, sut.ErrTimeout)

	addr := rawAgent(t, func(c net.Conn) {
		c.Write([]byte("$>\x00"))
		io.Copy(io.Discard, c) // until the client hangs up
	})
	err = within(t, "CommandTimeout did not bound the testroot command", func() error {
		return c.Verify(context.Background(), addr)
	})
	require.ErrorIs(t, err, sut.ErrTimeout)
	require.ErrorContains(t, err, "testroot")
}

// TestCancel proves that cancelling the ctx ends a check waiting on an
// agent with context.Canceled, not ErrTimeout, although CommandTimeout is
// an hour: while it waits for the greeting (the cancel comes once the agent
// has accepted the connection), and while it waits for an answer (the
// cancel comes once the agent has read the command, so the client is
// blocked reading, past any check of ctx before it).
func TestCancel(t *testing.T) {
	tests := []struct {
		name string
		// serve runs the agent's side of the connection and calls ready
		// when the client should be cancelled.
		serve func(c net.Conn, ready func())
	}{
		{"waiting for the greeting", func(c net.Conn, ready func()) {
			ready()
		}},
		{"waiting for an answer", func(c net.Conn, ready func()) {
			c.Write([]byte("$>\x00"))
			if line, err := bufio.NewReader(c).ReadString('\n'); err == nil && line == "testroot\r\n" {
				ready()
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			addr := rawAgent(t, func(c net.Conn) {
				tc.serve(c, cancel)
				io.Copy(io.Discard, c) // answers nothing; until the client hangs up
			})
			c := testClient(t, time.Hour)
			err := within(t, "Verify ignored the cancel", func() error { return c.Verify(ctx, addr) })
			require.ErrorIs(t, err, context.Canceled)
			require.NotErrorIs(t, err, sut.ErrTimeout)
		})
	}
}

// TestConnectionRefused proves that a refused connection fails the check
// at once with ErrConnect: CommandTimeout is an hour, so a client that
// kept trying until it passed would not return within testWait.
func TestConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())

	c := testClient(t, time.Hour)
	err = within(t, "a refused connection waited for CommandTimeout", func() error {
		return c.Verify(context.Background(), addr)
	})
	require.ErrorIs(t, err, sut.ErrConnect)
	require.ErrorIs(t, err, syscall.ECONNREFUSED)
}

// TestOfflineAgent proves that an agent that resets every connection (a
// board that lost power) fails the check at once, not at CommandTimeout
// (an hour).
func TestOfflineAgent(t *testing.T) {
	a := testAgent(t, suttest.AgentOptions{})
	a.SetOffline(true)
	c := testClient(t, time.Hour)
	err := within(t, "a reset connection waited for CommandTimeout", func() error {
		return c.CheckSDCard(context.Background(), a.Addr())
	})
	require.Error(t, err)
	require.NotErrorIs(t, err, sut.ErrTimeout)
}

func TestEmptyHost(t *testing.T) {
	c := testClient(t, time.Second)
	require.ErrorIs(t, c.Verify(context.Background(), ""), sut.ErrEmptyHost)
	require.ErrorIs(t, c.CheckSDCard(context.Background(), " "), sut.ErrEmptyHost)
}

// rawAgent serves each connection with handle, one at a time, for
// protocol violations the fake agent does not produce. The cleanup closes
// the connection being served as well as the listener, so that a handler
// waiting for a client that never hangs up (when a test fails) cannot hang
// the test.
func rawAgent(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		serving net.Conn
		closed  bool
	)
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		closed = true
		if serving != nil {
			serving.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	// Exits when the cleanup closes ln.
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			if closed {
				mu.Unlock()
				c.Close()
				return
			}
			serving = c
			mu.Unlock()
			handle(c)
			c.Close()
			mu.Lock()
			serving = nil
			mu.Unlock()
		}
	}()
	return ln.Addr().String()
}

func TestProtocolErrors(t *testing.T) {
	tests := []struct {
		name   string
		handle func(net.Conn)
	}{
		{"closes before the greeting", func(c net.Conn) {}},
		{"closes mid-response", func(c net.Conn) {
			c.Write([]byte("$>\x00"))
			c.Read(make([]byte, 64))
			c.Write([]byte("/mnt/sd"))
		}},
		{"never sends a prompt", func(c net.Conn) {
			chunk := make([]byte, 4096)
			for range 32 {
				if _, err := c.Write(chunk); err != nil {
					return
				}
			}
		}},
		{"empty device root", func(c net.Conn) {
			c.Write([]byte("$>\x00"))
			c.Read(make([]byte, 64))
			c.Write([]byte("\n$>\x00"))
		}},
		{"unsolicited data", func(c net.Conn) {
			c.Write([]byte("$>\x00"))
			c.Read(make([]byte, 64))
			c.Write([]byte("/mnt/sdcard\n$>\x00extra"))
			c.Read(make([]byte, 64))
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			addr := rawAgent(t, tc.handle)
			err := testClient(t, testWait).CheckSDCard(context.Background(), addr)
			require.ErrorIs(t, err, sut.ErrProtocol)
		})
	}
}

func TestConcurrentChecks(t *testing.T) {
	a := testAgent(t, suttest.AgentOptions{})
	c := testClient(t, testWait)
	const n = 20
	errs := make(chan error, n)
	for range n {
		// Each exits after one Verify, bounded by CommandTimeout.
		go func() { errs <- c.Verify(context.Background(), a.Addr()) }()
	}
	for range n {
		require.NoError(t, <-errs)
	}
	require.Len(t, a.Commands(), n)
}

func TestConfigValidate(t *testing.T) {
	require.NoError(t, sut.DefaultConfig().Validate())
	for _, c := range []sut.Config{
		{Port: -1},
		{Port: 70000},
		{CommandTimeout: -time.Second},
	} {
		_, err := sut.New(c)
		require.Error(t, err, "New(%+v)", c)
	}
}

// benchAgent starts a fake agent and a client for it, both logging nothing.
func benchAgent(b *testing.B) (*suttest.Agent, *sut.Client) {
	b.Helper()
	a, err := suttest.NewAgent(suttest.AgentOptions{})
	require.NoError(b, err)
	b.Cleanup(func() { a.Close() })
	c, err := sut.New(sut.Config{CommandTimeout: testWait})
	require.NoError(b, err)
	return a, c
}

// BenchmarkVerify reports the round trip of a Verify against the fake agent
// on loopback: connect, greeting, testroot.
func BenchmarkVerify(b *testing.B) {
	a, c := benchAgent(b)
	ctx := context.Background()
	for b.Loop() {
		if err := c.Verify(ctx, a.Addr()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckSDCard reports the round trip of the SD-card check against
// the fake agent on loopback: six commands over one connection.
func BenchmarkCheckSDCard(b *testing.B) {
	a, c := benchAgent(b)
	ctx := context.Background()
	for b.Loop() {
		if err := c.CheckSDCard(ctx, a.Addr()); err != nil {
			b.Fatal(err)
		}
	}
}
