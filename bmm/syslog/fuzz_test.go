package syslog

import (
	"net/netip"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

// FuzzHandle feeds arbitrary datagrams to the handler, from a board's
// address or from a stranger's, and checks that it never panics, counts
// every datagram exactly once, and queues only well-formed entries for this
// server's boards. Run it with
//
//	go test -run '^$' -fuzz FuzzHandle ./bmm/syslog/
func FuzzHandle(f *testing.F) {
	for _, seed := range []string{
		"<134>Mar  1 11:59:58 panda-0001 kernel: [   12.345] usb 1-1: new device",
		"<134>Mar  1 11:59:58 panda-0001 sutagent[123]: listening\n",
		"<134>2026-03-01T12:59:58.123456+01:00 panda-0001 sutagent[7]: up",
		"<134>1 2026-03-01T11:59:58.5Z panda-0002.lab sutagent 42 ID7 - hello",
		"<134>1 2026-03-01T11:59:58Z panda-0002 b2g - - [meta@1 phase=\"extract\\]\"] \xef\xbb\xbfextracting",
		"<134>1 - - - - - -",
		"<134>1 garbage",
		"<13>mobile_init_started",
		"<191>Dec 31 23:59:59 panda-0003 x: y",
		"<0>Feb 29 00:00:00 h a[: b",
		"<134>",
		"<>",
		"<999>x",
		"hello",
		"",
		"\x00\xff\xfe<134>",
		"<134>Mar  1 11:59:58 panda-0001 kernel: " + strings.Repeat("é", 1500),
	} {
		f.Add([]byte(seed), true)
		f.Add([]byte(seed), false)
	}
	l := newLab(f)
	cfg := testConfig(f, l)
	cfg.Logger = nil // the fuzzer runs millions of inputs
	r, err := New(cfg)
	require.NoError(f, err)
	boards := map[string]bool{"panda-0001": true, "panda-0002": true}
	known, stranger := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("192.0.2.7")

	f.Fuzz(func(t *testing.T, b []byte, fromBoard bool) {
		from := stranger
		if fromBoard {
			from = known
		}
		before := r.Stats()
		now := time.Now()
		r.handle(b, from, now)
		after := r.Stats()

		require.Equal(t, before.Received+1, after.Received)
		outcomes := (after.Malformed - before.Malformed) + (after.UnknownSender - before.UnknownSender) + (after.Dropped - before.Dropped)
		queued := len(r.queue)
		require.Equal(t, uint64(1), outcomes+uint64(queued), "handle(%q) must count or queue exactly once", b)
		if queued == 0 {
			return
		}
		e := <-r.queue
		require.True(t, boards[e.Name], "handle(%q) filed for %q, not one of this server's boards", b, e.Name)
		require.Equal(t, "device", e.Kind)
		require.Equal(t, Source, e.Source)
		require.NotEmpty(t, e.Message)
		require.LessOrEqual(t, len(e.Message), cfg.MaxMessage, "handle(%q) message length", b)
		require.True(t, utf8.ValidString(e.Message), "handle(%q) message %q is not valid UTF-8", b, e.Message)
		require.False(t, strings.ContainsAny(e.Message, "\n\r\x00"), "handle(%q) message %q spans lines", b, e.Message)
		require.Equal(t, time.UTC, e.At.Location(), "handle(%q) time zone", b)
		require.LessOrEqual(t, e.At.Sub(now).Abs(), clockSkew, "handle(%q) at %s, now %s", b, e.At, now)
	})
}
