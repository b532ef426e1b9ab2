package syslog

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

func TestParse(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	ts := func(s string) time.Time {
		t.Helper()
		v, err := time.Parse(time.RFC3339Nano, s)
		require.NoError(t, err)
		return v
	}
	tests := []struct {
		name string
		in   string
		now  time.Time // default: now
		loc  *time.Location
		want message
		err  error
	}{
		{
			name: "rfc3164 kernel line",
			in:   "<134>Mar  1 11:59:58 panda-0001 kernel: [   12.345] usb 1-1: new device",
			want: message{at: ts("2026-03-01T11:59:58Z"), hostname: "panda-0001", text: "kernel: [   12.345] usb 1-1: new device"},
		},
		{
			name: "rfc3164 with pid and trailing newline",
			in:   "<134>Mar  1 11:59:58 panda-0001 sutagent[123]: listening on 20701\n",
			want: message{at: ts("2026-03-01T11:59:58Z"), hostname: "panda-0001", text: "sutagent[123]: listening on 20701"},
		},
		{
			name: "rfc3164 trailing NUL",
			in:   "<134>Mar  1 11:59:58 panda-0001 init: done\x00",
			want: message{at: ts("2026-03-01T11:59:58Z"), hostname: "panda-0001", text: "init: done"},
		},
		{
			name: "rfc3164 embedded newline becomes a space",
			in:   "<134>Mar  1 11:59:58 panda-0001 kernel: line one\nline two",
			want: message{at: ts("2026-03-01T11:59:58Z"), hostname: "panda-0001", text: "kernel: line one line two"},
		},
		{
			name: "rfc3164 without a tag",
			in:   "<134>Mar  1 11:59:58 panda-0001 just words here",
			want: message{at: ts("2026-03-01T11:59:58Z"), hostname: "panda-0001", text: "just words here"},
		},
		{
			name: "rfc3164 with rsyslog's rfc3339 timestamp",
			in:   "<134>2026-03-01T12:59:58.123456+01:00 panda-0001 sutagent[7]: up",
			want: message{at: ts("2026-03-01T11:59:58.123456Z"), hostname: "panda-0001", text: "sutagent[7]: up"},
		},
		{
			name: "rfc3164 stamp in the board's time zone",
			in:   "<134>Mar  1 13:59:58 panda-0001 kernel: hello",
			loc:  time.FixedZone("CEST", 2*3600),
			want: message{at: ts("2026-03-01T11:59:58Z"), hostname: "panda-0001", text: "kernel: hello"},
		},
		{
			name: "rfc3164 stamp from last year",
			in:   "<134>Dec 31 23:59:59 panda-0001 kernel: late",
			now:  time.Date(2026, 1, 1, 0, 0, 5, 0, time.UTC),
			want: message{at: ts("2025-12-31T23:59:59Z"), hostname: "panda-0001", text: "kernel: late"},
		},
		{
			name: "rfc3164 without a header is all message",
			in:   "<13>mobile_init_started",
			want: message{text: "mobile_init_started"},
		},
		{
			name: "rfc3164 invalid date is all message",
			in:   "<13>Feb 30 22:14:15 panda-0001 x: y",
			want: message{text: "Feb 30 22:14:15 panda-0001 x: y"},
		},
		{
			name: "invalid utf-8 is replaced",
			in:   "<134>Mar  1 11:59:58 panda-0001 kernel: bad \xff\xfe bytes",
			want: message{at: ts("2026-03-01T11:59:58Z"), hostname: "panda-0001", text: "kernel: bad \uFFFD bytes"},
		},
		{
			name: "rfc5424",
			in:   "<134>1 2026-03-01T11:59:58.5Z panda-0002.lab sutagent 42 ID7 - hello 5424",
			want: message{at: ts("2026-03-01T11:59:58.5Z"), hostname: "panda-0002.lab", text: "sutagent[42]: hello 5424"},
		},
		{
			name: "rfc5424 with structured data and a BOM",
			in:   "<134>1 2026-03-01T11:59:58Z panda-0002 b2g - - [meta@1 phase=\"extract\"] \xef\xbb\xbfextracting",
			want: message{at: ts("2026-03-01T11:59:58Z"), hostname: "panda-0002", text: "b2g: extracting"},
		},
		{
			name: "rfc5424 with nil fields",
			in:   "<134>1 - panda-0002 - - - - rebooting",
			want: message{hostname: "panda-0002", text: "rebooting"},
		},
		{
			name: "broken rfc5424 header is all message",
			in:   "<134>1 garbage here",
			want: message{text: "1 garbage here"},
		},
		{name: "not syslog", in: "hello", err: errNoPriority},
		{name: "empty", in: "", err: errNoPriority},
		{name: "priority out of range", in: "<192>Mar  1 11:59:58 h a: b", err: errNoPriority},
		{name: "priority too long", in: "<1234>x", err: errNoPriority},
		{name: "empty priority", in: "<>x", err: errNoPriority},
		{name: "priority only", in: "<134>", err: errEmpty},
		{name: "rfc5424 without a message", in: "<134>1 - - - - - -", err: errEmpty},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n, loc := tc.now, tc.loc
			if n.IsZero() {
				n = now
			}
			if loc == nil {
				loc = time.UTC
			}
			got, err := parse([]byte(tc.in), n, loc, 2048)
			if tc.err != nil {
				require.ErrorIs(t, err, tc.err, "parse(%q)", tc.in)
				return
			}
			require.NoError(t, err, "parse(%q)", tc.in)
			require.True(t, got.at.Equal(tc.want.at), "parse(%q).at = %s, want %s", tc.in, got.at, tc.want.at)
			got.at, tc.want.at = time.Time{}, time.Time{}
			require.Equal(t, tc.want, got, "parse(%q)", tc.in)
		})
	}
}

func TestParse_Truncates(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	// "é" is two bytes, so some cut points fall inside a character.
	for maxLen := minMessage; maxLen < minMessage+8; maxLen++ {
		in := "<134>Mar  1 11:59:58 panda-0001 app: " + strings.Repeat("é", 100)
		got, err := parse([]byte(in), now, time.UTC, maxLen)
		require.NoError(t, err)
		require.LessOrEqual(t, len(got.text), maxLen, "len(parse(...).text) with max %d", maxLen)
		require.True(t, utf8.ValidString(got.text), "parse(...).text = %q, want valid UTF-8", got.text)
		require.True(t, strings.HasSuffix(got.text, "…"), "parse(...).text = %q, want it to end in …", got.text)
		require.True(t, strings.HasPrefix(got.text, "app: é"), "parse(...).text = %q", got.text)
	}
	got, err := parse([]byte("<134>Mar  1 11:59:58 panda-0001 app: short"), now, time.UTC, minMessage)
	require.NoError(t, err)
	require.Equal(t, "app: short", got.text, "a message that fits is kept whole")
}

func TestSkipPriority(t *testing.T) {
	tests := []struct {
		in   string
		rest string
		ok   bool
	}{
		{"<0>x", "x", true},
		{"<191>x", "x", true},
		{"<13>", "", true},
		{"<192>x", "", false},
		{"<1234>x", "", false},
		{"<a>x", "", false},
		{"<>x", "", false},
		{"<13", "", false},
		{"13>x", "", false},
		{"", "", false},
	}
	for _, tc := range tests {
		rest, ok := skipPriority([]byte(tc.in))
		require.Equal(t, tc.ok, ok, "skipPriority(%q) ok = %v, want %v", tc.in, ok, tc.ok)
		if ok {
			require.Equal(t, tc.rest, string(rest), "skipPriority(%q) rest", tc.in)
		}
	}
}
