package suttest

import (
	"bufio"
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/internal/testlog"
)

func testAgent(t *testing.T, opts AgentOptions) *Agent {
	t.Helper()
	opts.Logger = testlog.New(t)
	a, err := NewAgent(opts)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, a.Close()) })
	return a
}

// rawConn is a minimal protocol client for testing the fake on the wire.
type rawConn struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dial(t *testing.T, a *Agent) *rawConn {
	t.Helper()
	conn, err := net.Dial("tcp", a.Addr())
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	require.NoError(t, conn.SetDeadline(time.Now().Add(5*time.Second)))
	return &rawConn{t: t, conn: conn, r: bufio.NewReader(conn)}
}

// prompt reads up to the next prompt and returns what came before it.
func (c *rawConn) prompt() string {
	c.t.Helper()
	var got []byte
	for !bytes.HasSuffix(got, []byte(Prompt)) {
		b, err := c.r.ReadByte()
		require.NoError(c.t, err, "reading up to the prompt after %q", got)
		got = append(got, b)
	}
	return strings.TrimSuffix(strings.TrimSuffix(string(got), Prompt), "\n")
}

// cmd sends a command line (and data) and returns the response.
func (c *rawConn) cmd(line string, data ...byte) string {
	c.t.Helper()
	_, err := c.conn.Write(append([]byte(line+"\r\n"), data...))
	require.NoError(c.t, err)
	return c.prompt()
}

func TestAgentProtocol(t *testing.T) {
	a := testAgent(t, AgentOptions{})
	c := dial(t, a)
	require.Equal(t, "", c.prompt(), "greeting")

	sum := md5.Sum([]byte("hello\n"))
	steps := []struct {
		line string
		data string
		want string
	}{
		{"ver", "", Version},
		{"testroot", "", "/mnt/sdcard"},
		{"isdir /mnt/sdcard", "", "TRUE"},
		{"isdir /mnt", "", "TRUE"},
		{"isdir /mnt/sdcard/x", "", "FALSE"},
		{"mkdr /mnt/sdcard/x/y", "", "/mnt/sdcard/x/y successfully created"},
		{"isdir /mnt/sdcard/x", "", "TRUE"},
		{"push /mnt/sdcard/x/y/f 6", "hello\n", hex.EncodeToString(sum[:])},
		{"push /mnt/sdcard/nodir/f 2", "hi", WarningPrefix + " Could not create file /mnt/sdcard/nodir/f"},
		{"push /mnt/sdcard/x/y/empty 0", "", "d41d8cd98f00b204e9800998ecf8427e"},
		{"mkdr /mnt/sdcard/x/y/f", "", WarningPrefix + " Could not create directory /mnt/sdcard/x/y/f"},
		{"rmdr /mnt/sdcard/x", "", "Deleting file(s) from /mnt/sdcard/x"},
		{"isdir /mnt/sdcard/x/y", "", "FALSE"},
		{"rmdr /mnt/sdcard/x", "", WarningPrefix + " Unable to delete directory /mnt/sdcard/x: not a directory"},
		{"isdir relative", "", WarningPrefix + " isdir needs one absolute path"},
		{"push", "", WarningPrefix + " push needs a path and a size"},
		{"frob", "", WarningPrefix + " Unknown command: frob"},
		{"", "", ""},
	}
	for _, s := range steps {
		got := c.cmd(s.line, []byte(s.data)...)
		require.Equal(t, s.want, got, "response to %q", s.line)
		if s.line == "push /mnt/sdcard/x/y/f 6" {
			data, ok := a.File("/mnt/sdcard/x/y/f")
			require.True(t, ok)
			require.Equal(t, "hello\n", string(data))
		}
	}
	_, ok := a.File("/mnt/sdcard/x/y/f")
	require.False(t, ok, "rmdr left a file behind")

	// A bare "\n" line ending works too.
	_, err := c.conn.Write([]byte("testroot\n"))
	require.NoError(t, err)
	require.Equal(t, "/mnt/sdcard", c.prompt())

	// quit ends the connection.
	_, err = c.conn.Write([]byte("quit\r\n"))
	require.NoError(t, err)
	_, err = c.r.ReadByte()
	require.ErrorIs(t, err, io.EOF)

	want := []string{}
	for _, s := range steps {
		want = append(want, s.line)
	}
	want = append(want, "testroot", "quit")
	require.Equal(t, want, a.Commands())
}

func TestAgentFaults(t *testing.T) {
	t.Run("warn", func(t *testing.T) {
		a := testAgent(t, AgentOptions{Warn: map[string]bool{"push": true}})
		c := dial(t, a)
		c.prompt()
		require.Equal(t, WarningPrefix+" push failed (injected fault)", c.cmd("push /mnt/sdcard/f 3", 'a', 'b', 'c'))
		// The data was consumed: the stream is still in step.
		require.Equal(t, "/mnt/sdcard", c.cmd("testroot"))
		_, ok := a.File("/mnt/sdcard/f")
		require.False(t, ok)

		a.SetWarn("push", false)
		a.SetWarn("testroot", true)
		sum := md5.Sum([]byte("abc"))
		require.Equal(t, hex.EncodeToString(sum[:]), c.cmd("push /mnt/sdcard/f 3", 'a', 'b', 'c'))
		require.True(t, strings.HasPrefix(c.cmd("testroot"), WarningPrefix))
	})

	t.Run("broken sd card", func(t *testing.T) {
		a := testAgent(t, AgentOptions{BrokenSDCard: true})
		c := dial(t, a)
		c.prompt()
		sum := md5.Sum([]byte("abc"))
		got := c.cmd("push /mnt/sdcard/f 3", 'a', 'b', 'c')
		require.NotEqual(t, hex.EncodeToString(sum[:]), got)
		data, ok := a.File("/mnt/sdcard/f")
		require.True(t, ok)
		stored := md5.Sum(data)
		require.Equal(t, hex.EncodeToString(stored[:]), got, "the answer is the MD5 of what was stored")

		a.SetBrokenSDCard(false)
		require.Equal(t, hex.EncodeToString(sum[:]), c.cmd("push /mnt/sdcard/f 3", 'a', 'b', 'c'))
	})

	t.Run("silent", func(t *testing.T) {
		a := testAgent(t, AgentOptions{Silent: true})
		c := dial(t, a)
		_, err := c.conn.Write([]byte("push /mnt/sdcard/f 3\r\nabctestroot\r\n"))
		require.NoError(t, err)
		require.Eventually(t, func() bool { return len(a.Commands()) == 2 }, 5*time.Second, 10*time.Millisecond)
		require.Equal(t, []string{"push /mnt/sdcard/f 3", "testroot"}, a.Commands(), "push data was taken for a command")
		// Both commands went unanswered: once silence ends, the first
		// bytes on the wire are the answer to the next command, not a
		// greeting or an answer sent while silent.
		a.SetSilent(false)
		require.Equal(t, Version, c.cmd("ver"), "a silent agent sent something")
	})

	t.Run("offline", func(t *testing.T) {
		a := testAgent(t, AgentOptions{})
		c := dial(t, a)
		c.prompt()
		a.SetOffline(true)
		_, err := c.conn.Write([]byte("testroot\r\n"))
		require.NoError(t, err)
		_, err = c.r.ReadByte()
		require.Error(t, err, "an offline agent answered")

		// An offline agent resets new connections: the reset may reach the
		// dial itself or the first read.
		if conn, err := net.Dial("tcp", a.Addr()); err == nil {
			require.NoError(t, conn.SetDeadline(time.Now().Add(5*time.Second)))
			_, err = bufio.NewReader(conn).ReadByte()
			conn.Close()
			require.Error(t, err, "an offline agent greeted")
		}

		a.SetOffline(false)
		require.Equal(t, "", dial(t, a).prompt())
	})

	t.Run("bad push size", func(t *testing.T) {
		a := testAgent(t, AgentOptions{})
		c := dial(t, a)
		c.prompt()
		_, err := c.conn.Write([]byte("push /mnt/sdcard/f lots\r\n"))
		require.NoError(t, err)
		_, err = c.r.ReadByte()
		require.Error(t, err, "the agent went on after a push it cannot frame")
	})

	t.Run("overlong line", func(t *testing.T) {
		a := testAgent(t, AgentOptions{})
		c := dial(t, a)
		c.prompt()
		_, err := c.conn.Write([]byte(strings.Repeat("x", maxLine+10) + "\r\n"))
		if err == nil {
			_, err = c.r.ReadByte()
		}
		require.Error(t, err)
	})
}

func TestAgentCloseEndsConnections(t *testing.T) {
	a, err := NewAgent(AgentOptions{Silent: true})
	require.NoError(t, err)
	c := dial(t, a)
	require.Eventually(t, func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		return len(a.conns) == 1
	}, 5*time.Second, 10*time.Millisecond)

	require.NoError(t, a.Close())
	require.NoError(t, a.Close(), "a second Close")
	_, err = c.r.ReadByte()
	require.Error(t, err, "Close left a connection open")
	_, err = net.DialTimeout("tcp", a.Addr(), time.Second)
	require.Error(t, err, "Close left the listener open")
}

func TestAgentRoot(t *testing.T) {
	a := testAgent(t, AgentOptions{Root: "/data/local/"})
	require.Equal(t, "/data/local", a.Root())
	require.True(t, a.IsDir("/data"))
	c := dial(t, a)
	c.prompt()
	require.Equal(t, "/data/local", c.cmd("testroot"))
}

func TestNewAgentErrors(t *testing.T) {
	_, err := NewAgent(AgentOptions{Root: "relative"})
	require.Error(t, err)
	_, err = NewAgent(AgentOptions{Addr: "256.0.0.1:0"})
	require.Error(t, err)
}

func TestReadLine(t *testing.T) {
	r := bufio.NewReaderSize(strings.NewReader("a\r\nb\nc"), maxLine)
	for _, want := range []string{"a", "b"} {
		got, err := readLine(r)
		require.NoError(t, err)
		require.Equal(t, want, got)
	}
	_, err := readLine(r)
	require.True(t, errors.Is(err, io.EOF), "readLine at an unterminated end: %v", err)
}
