package bmmtest_test

import (
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/bmm/bmmtest"
	"github.com/mozpool/mozpool/internal/testlog"
)

// newBoard starts a board with a short recovery pause unless opts sets one.
func newBoard(t *testing.T, opts bmmtest.RelayBoardOptions) *bmmtest.RelayBoard {
	t.Helper()
	if opts.Recovery == 0 {
		opts.Recovery = -1
	}
	opts.Logger = testlog.New(t)
	b, err := bmmtest.NewRelayBoard(opts)
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	return b
}

func dial(t *testing.T, b *bmmtest.RelayBoard) net.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", b.Addr(), 5*time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
	return conn
}

// exchange writes frame and returns the reply (nil when the board closed
// the connection instead).
func exchange(t *testing.T, conn net.Conn, frame ...byte) []byte {
	t.Helper()
	_, err := conn.Write(frame)
	require.NoError(t, err)
	buf := make([]byte, 1024)
	n, err := conn.Read(buf)
	if n == 0 {
		require.ErrorIs(t, err, io.EOF)
		return nil
	}
	return buf[:n]
}

func TestRelayBoardCommands(t *testing.T) {
	b := newBoard(t, bmmtest.RelayBoardOptions{})
	type change struct {
		bank, relay int
		powered     bool
	}
	var mu sync.Mutex
	var changes []change
	b.OnChange(func(bank, relay int, powered bool) {
		mu.Lock()
		defer mu.Unlock()
		changes = append(changes, change{bank, relay, powered})
	})

	for bank := 1; bank <= bmmtest.Banks; bank++ {
		for relay := 1; relay <= bmmtest.Relays; relay++ {
			require.False(t, b.Relay(bank, relay), "relays start off")
			require.True(t, b.DevicePowered(bank, relay), "devices start powered")
		}
	}

	conn := dial(t, b)
	steps := []struct {
		name      string
		frame     []byte
		want      []byte
		wantText  string
		energised bool // relay bank 2 relay 3 afterwards
	}{
		{"comms test", []byte{0xFE, 0x21}, []byte{0x55}, "test", false},
		{"read off", []byte{0xFE, 0x76, 0x02}, []byte{0}, "get bank2 relay3", false},
		{"device off", []byte{0xFE, 0x6E, 0x02}, []byte{0x55}, "set bank2 relay3 on", true},
		{"read on", []byte{0xFE, 0x76, 0x02}, []byte{1}, "get bank2 relay3", true},
		{"device off again", []byte{0xFE, 0x6E, 0x02}, []byte{0x55}, "set bank2 relay3 on", true},
		{"device on", []byte{0xFE, 0x66, 0x02}, []byte{0x55}, "set bank2 relay3 off", false},
		{"read off again", []byte{0xFE, 0x76, 0x02}, []byte{0}, "get bank2 relay3", false},
	}
	for _, st := range steps {
		got := exchange(t, conn, st.frame...)
		require.Equal(t, st.want, got, "%s: reply to % x", st.name, st.frame)
		cmds := b.Commands()
		require.Equal(t, st.wantText, cmds[len(cmds)-1].Text, st.name)
		require.False(t, cmds[len(cmds)-1].Failed, st.name)
		require.Equal(t, st.energised, b.Relay(2, 3), st.name)
		require.Equal(t, !st.energised, b.DevicePowered(2, 3), st.name)
	}
	require.Len(t, b.CommandTexts(), len(steps))

	mu.Lock()
	require.Equal(t, []change{{2, 3, false}, {2, 3, true}}, changes, "one callback per change, not per set")
	mu.Unlock()

	// Other relays are untouched; out-of-range queries are false.
	require.True(t, b.DevicePowered(2, 4))
	require.False(t, b.Relay(5, 1))
	require.False(t, b.DevicePowered(1, 9))
}

func TestRelayBoardUnknownCommandDropsConnection(t *testing.T) {
	cases := []struct {
		name  string
		frame []byte
		text  string
	}{
		{"unknown command", []byte{0xFE, 0x01, 0x01}, "unknown fe 01 01"},
		{"bank 0", []byte{0xFE, 0x66, 0x00}, "unknown fe 66 00"},
		{"bank 5", []byte{0xFE, 0x76, 0x05}, "unknown fe 76 05"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := newBoard(t, bmmtest.RelayBoardOptions{})
			require.Nil(t, exchange(t, dial(t, b), tc.frame...))
			cmds := b.Commands()
			require.Len(t, cmds, 1)
			require.Equal(t, tc.text, cmds[0].Text)
			require.True(t, cmds[0].Failed)
		})
	}
}

func TestRelayBoardFailFirst(t *testing.T) {
	t.Run("close", func(t *testing.T) {
		b := newBoard(t, bmmtest.RelayBoardOptions{FailFirst: 2})
		require.Nil(t, exchange(t, dial(t, b), 0xFE, 0x6E, 0x02), "first command: dropped")
		require.Nil(t, exchange(t, dial(t, b), 0xFE, 0x6E, 0x02), "second command: dropped")
		require.True(t, b.DevicePowered(2, 3), "failed sets change nothing")
		require.Equal(t, []byte{0x55}, exchange(t, dial(t, b), 0xFE, 0x6E, 0x02), "third command: served")
		require.False(t, b.DevicePowered(2, 3))

		cmds := b.Commands()
		require.Len(t, cmds, 3)
		for i, want := range []bool{true, true, false} {
			require.Equal(t, "set bank2 relay3 on", cmds[i].Text)
			require.Equal(t, want, cmds[i].Failed, "command %d", i)
		}
	})

	t.Run("garbage reply", func(t *testing.T) {
		b := newBoard(t, bmmtest.RelayBoardOptions{FailFirst: 1, FailReply: []byte{0x55, 0x55}})
		conn := dial(t, b)
		require.Equal(t, []byte{0x55, 0x55}, exchange(t, conn, 0xFE, 0x21))
		require.Equal(t, []byte{0x55}, exchange(t, conn, 0xFE, 0x21), "the connection stays open")
		require.Equal(t, []string{"test", "test"}, b.CommandTexts())
	})
}

func TestRelayBoardRecovery(t *testing.T) {
	const recovery = 200 * time.Millisecond
	b := newBoard(t, bmmtest.RelayBoardOptions{Recovery: recovery})

	first := dial(t, b)
	require.Equal(t, []byte{0x55}, exchange(t, first, 0xFE, 0x21))

	// A second connection made while the first is served is not refused:
	// it waits in the backlog and is served after the first closes and
	// the board has recovered.
	second := dial(t, b)
	_, err := second.Write([]byte{0xFE, 0x21})
	require.NoError(t, err)
	// Taken before the close: the board may see it and start its pause
	// before Close returns.
	closed := time.Now()
	require.NoError(t, first.Close())

	buf := make([]byte, 8)
	n, err := second.Read(buf)
	require.NoError(t, err)
	require.Equal(t, []byte{0x55}, buf[:n])
	require.GreaterOrEqual(t, time.Since(closed), recovery, "served only after the recovery pause")
	require.NoError(t, second.Close())

	require.Eventually(t, func() bool {
		conns := b.Connections()
		return len(conns) == 2 && !conns[1].Closed.IsZero()
	}, 5*time.Second, 10*time.Millisecond)
	conns := b.Connections()
	require.GreaterOrEqual(t, conns[1].Accepted.Sub(conns[0].Closed), recovery)
}

func TestRelayBoardDefaultRecovery(t *testing.T) {
	b, err := bmmtest.NewRelayBoard(bmmtest.RelayBoardOptions{Logger: testlog.New(t)})
	require.NoError(t, err)
	defer b.Close()

	first := dial(t, b)
	require.Equal(t, []byte{0x55}, exchange(t, first, 0xFE, 0x21))
	closed := time.Now() // before the close, which starts the pause
	require.NoError(t, first.Close())
	require.Equal(t, []byte{0x55}, exchange(t, dial(t, b), 0xFE, 0x21))
	require.GreaterOrEqual(t, time.Since(closed), bmmtest.DefaultRecovery)
}

func TestRelayBoardByteDelay(t *testing.T) {
	const delay = 50 * time.Millisecond
	b := newBoard(t, bmmtest.RelayBoardOptions{ByteDelay: delay})
	// Taken before the dial: the board starts the first byte's pause as
	// soon as it accepts, which may be before dial returns.
	start := time.Now()
	conn := dial(t, b)
	require.Equal(t, []byte{0x55}, exchange(t, conn, 0xFE, 0x21))
	require.GreaterOrEqual(t, time.Since(start), 2*delay, "two bytes, each delayed")
}

func TestRelayBoardRefuse(t *testing.T) {
	refused := func(t *testing.T, b *bmmtest.RelayBoard) {
		t.Helper()
		conn, err := net.DialTimeout("tcp", b.Addr(), 5*time.Second)
		if err == nil {
			conn.Close()
		}
		require.True(t, errors.Is(err, syscall.ECONNREFUSED), "dial: got %v, want connection refused", err)
	}

	b := newBoard(t, bmmtest.RelayBoardOptions{Refuse: true})
	refused(t, b)

	require.NoError(t, b.SetRefuse(false))
	conn := dial(t, b)
	require.Equal(t, []byte{0x55}, exchange(t, conn, 0xFE, 0x21))

	// Going down drops the connection being served too.
	require.NoError(t, b.SetRefuse(true))
	buf := make([]byte, 1)
	_, err := conn.Read(buf)
	require.Error(t, err)
	refused(t, b)

	require.NoError(t, b.SetRefuse(false))
	require.Equal(t, []byte{0x55}, exchange(t, dial(t, b), 0xFE, 0x21))
	require.Equal(t, []string{"test", "test"}, b.CommandTexts())
}

func TestRelayBoardClose(t *testing.T) {
	b := newBoard(t, bmmtest.RelayBoardOptions{ByteDelay: time.Hour})
	conn := dial(t, b)
	_, err := conn.Write([]byte{0xFE, 0x21})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(b.Connections()) == 1 }, 5*time.Second, 10*time.Millisecond)

	done := make(chan struct{})
	// Exits when Close returns, which must not wait for the hour-long delay.
	go func() { defer close(done); b.Close() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not interrupt a slow connection")
	}
	require.NoError(t, b.Close(), "Close twice")
	require.Error(t, b.SetRefuse(false), "no coming back after Close")
}

func TestRelayBoardStuck(t *testing.T) {
	b := newBoard(t, bmmtest.RelayBoardOptions{})
	b.SetStuck(true)
	require.True(t, b.Stuck())
	conn := dial(t, b)
	require.Equal(t, []byte{0x55}, exchange(t, conn, 0xFE, 0x6E, 0x02), "set answered as done")
	require.True(t, b.DevicePowered(2, 3), "a stuck relay does not switch")
	b.SetStuck(false)
	require.Equal(t, []byte{0x55}, exchange(t, conn, 0xFE, 0x6E, 0x02))
	require.False(t, b.DevicePowered(2, 3), "switches again once unstuck")
	cmds := b.Commands()
	require.Len(t, cmds, 2)
	require.True(t, cmds[0].Failed)
	require.False(t, cmds[1].Failed)
}
