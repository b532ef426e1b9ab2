package sut_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/bmm/sut"
)

const agentPrompt = "$>\x00"

// scriptedAgent is a SUT agent on a loopback port that answers with a
// script: on connect it sends the script up to and including its first
// prompt, and after each command (line, plus the data of a push) the next
// part up to and including the next prompt. What is left when no prompt
// remains is sent whole, and the connection closed. The dialogue is thus
// the same whatever the timing.
type scriptedAgent struct {
	ln     net.Listener
	mu     sync.Mutex
	script []byte
}

func newScriptedAgent(tb testing.TB) *scriptedAgent {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(tb, err)
	a := &scriptedAgent{ln: ln}
	tb.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			a.mu.Lock()
			script := a.script
			a.mu.Unlock()
			go serveScript(conn, script)
		}
	}()
	return a
}

func (a *scriptedAgent) set(script []byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.script = script
}

func serveScript(conn net.Conn, script []byte) {
	defer conn.Close()
	r := bufio.NewReader(conn)
	for {
		part := script
		if i := bytes.Index(script, []byte(agentPrompt)); i >= 0 {
			part = script[:i+len(agentPrompt)]
		}
		script = script[len(part):]
		if _, err := conn.Write(part); err != nil || !bytes.HasSuffix(part, []byte(agentPrompt)) {
			return
		}
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		if f := strings.Fields(line); len(f) == 3 && f[0] == "push" {
			n, err := strconv.Atoi(f[2])
			if err != nil || n < 0 {
				return
			}
			if _, err := io.CopyN(io.Discard, r, int64(n)); err != nil {
				return
			}
		}
	}
}

// FuzzAgentReplies runs Verify and CheckSDCard against an agent that
// answers with arbitrary bytes, and checks that they never panic and that
// every failure is one of the package's protocol errors, never a timeout:
// the agent always answers or hangs up. Run it with
//
//	go test -run '^$' -fuzz FuzzAgentReplies ./bmm/sut/
func FuzzAgentReplies(f *testing.F) {
	p := agentPrompt
	good := p + "/mnt/sdcard\n" + p + "##AGENT-WARNING## no such dir" + p + "" + p + "TRUE\n" + p +
		"d548a4ba2f0d8ff52af7ce43e241f7da\n" + p + "" + p
	for _, s := range []string{
		good,
		strings.Replace(good, "d548a4ba2f0d8ff52af7ce43e241f7da", "D548A4BA2F0D8FF52AF7CE43E241F7DA", 1),
		p + "/mnt/sdcard\n" + p,
		p + "##AGENT-WARNING## boom" + p,
		p + "  \r\n\t##AGENT-WARNING##" + p,
		p + "\n" + p,
		p + "a\nb" + p,
		p + "/root" + p + "" + p + "" + p + "FALSE" + p,
		p + "/root" + p + p + p + "TRUE" + p + "00" + p,
		p + "/root" + p + "extra",
		p, "", "$>", "$>\x00$>\x00", "\x00$>",
		"greeting without prompt",
		p + strings.Repeat("x", 70<<10) + p,
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	a := newScriptedAgent(f)
	c, err := sut.New(sut.Config{CommandTimeout: time.Minute})
	require.NoError(f, err)
	f.Fuzz(func(t *testing.T, script []byte, sdcard bool) {
		a.set(script)
		check := c.Verify
		if sdcard {
			check = c.CheckSDCard
		}
		err := check(context.Background(), a.ln.Addr().String())
		if string(script) == good {
			require.NoError(t, err, "a well-behaved agent")
		}
		if err == nil {
			return
		}
		require.NotErrorIs(t, err, sut.ErrTimeout)
		require.True(t, errors.Is(err, sut.ErrProtocol) || errors.Is(err, sut.ErrAgentWarning) ||
			errors.Is(err, sut.ErrMismatch) || isConnReset(err), "script %q: %v", script, err)
	})
}

// isConnReset reports a write to a connection the agent had already
// closed: the agent hangs up when its script ends.
func isConnReset(err error) bool {
	s := err.Error()
	return strings.Contains(s, "connection reset") || strings.Contains(s, "broken pipe")
}
