package sut_test

import (
	"context"
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
)

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

func TestVerify(t *testing.T) {
	a := testAgent(t, suttest.AgentOptions{})
	require.NoError(t, testClient(t, 2*time.Second).Verify(context.Background(), a.Addr()))
	require.Equal(t, []string{"testroot"}, a.Commands())
}

func TestVerifyDefaultPort(t *testing.T) {
	// A host without a port uses Config.Port.
	a := testAgent(t, suttest.AgentOptions{})
	_, portStr, err := net.SplitHostPort(a.Addr())
	require.NoError(t, err)
	port, err := strconv.Atoi(portStr)
	require.NoError(t, err)
	c, err := sut.New(sut.Config{Port: port, CommandTimeout: 2 * time.Second, Logger: testlog.New(t)})
	require.NoError(t, err)
	require.NoError(t, c.Verify(context.Background(), "127.0.0.1"))
}

func TestCheckSDCard(t *testing.T) {
	for _, root := range []string{"", "/data/local"} {
		t.Run("root "+root, func(t *testing.T) {
			a := testAgent(t, suttest.AgentOptions{Root: root})
			require.NoError(t, testClient(t, 2*time.Second).CheckSDCard(context.Background(), a.Addr()))

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
	c := testClient(t, 2*time.Second)
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
			c := testClient(t, 2*time.Second)
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

func TestSilentAgentTimesOut(t *testing.T) {
	a := testAgent(t, suttest.AgentOptions{Silent: true})

	// CommandTimeout bounds the wait for the greeting.
	start := time.Now()
	err := testClient(t, 200*time.Millisecond).Verify(context.Background(), a.Addr())
	require.ErrorIs(t, err, sut.ErrTimeout)
	require.Less(t, time.Since(start), time.Second)

	// So does a context deadline shorter than CommandTimeout.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start = time.Now()
	err = testClient(t, 10*time.Second).CheckSDCard(ctx, a.Addr())
	require.ErrorIs(t, err, sut.ErrTimeout)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, time.Since(start), time.Second)
}

func TestSilentMidSession(t *testing.T) {
	// The agent answers testroot, then stops answering.
	a := testAgent(t, suttest.AgentOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := testClient(t, 300*time.Millisecond)
	require.NoError(t, c.Verify(ctx, a.Addr()))
	a.SetSilent(true)
	start := time.Now()
	err := c.Verify(ctx, a.Addr())
	require.ErrorIs(t, err, sut.ErrTimeout)
	require.Less(t, time.Since(start), time.Second)
}

func TestCancel(t *testing.T) {
	a := testAgent(t, suttest.AgentOptions{Silent: true})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	err := testClient(t, 10*time.Second).Verify(ctx, a.Addr())
	require.ErrorIs(t, err, context.Canceled)
	require.NotErrorIs(t, err, sut.ErrTimeout)
	require.Less(t, time.Since(start), time.Second)
}

func TestConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())

	start := time.Now()
	err = testClient(t, 10*time.Second).Verify(context.Background(), addr)
	require.ErrorIs(t, err, sut.ErrConnect)
	require.ErrorIs(t, err, syscall.ECONNREFUSED)
	require.Less(t, time.Since(start), time.Second)
}

func TestOfflineAgent(t *testing.T) {
	a := testAgent(t, suttest.AgentOptions{})
	a.SetOffline(true)
	start := time.Now()
	err := testClient(t, 10*time.Second).CheckSDCard(context.Background(), a.Addr())
	require.Error(t, err)
	require.Less(t, time.Since(start), time.Second)
}

func TestEmptyHost(t *testing.T) {
	c := testClient(t, time.Second)
	require.ErrorIs(t, c.Verify(context.Background(), ""), sut.ErrEmptyHost)
	require.ErrorIs(t, c.CheckSDCard(context.Background(), " "), sut.ErrEmptyHost)
}

// rawAgent serves each connection with handle, for protocol violations the
// fake agent does not produce.
func rawAgent(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
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
			handle(c)
			c.Close()
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
			err := testClient(t, 2*time.Second).CheckSDCard(context.Background(), addr)
			require.ErrorIs(t, err, sut.ErrProtocol)
		})
	}
}

func TestConcurrentChecks(t *testing.T) {
	a := testAgent(t, suttest.AgentOptions{})
	c := testClient(t, 2*time.Second)
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
