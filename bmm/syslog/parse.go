package syslog

import (
	"bytes"
	"errors"
	"strings"
	"time"
	"unicode/utf8"

	gosyslog "github.com/influxdata/go-syslog/v3"
	"github.com/influxdata/go-syslog/v3/rfc3164"
	"github.com/influxdata/go-syslog/v3/rfc5424"
)

var (
	// errNoPriority: the datagram does not start with a valid "<PRI>"
	// (a number from 0 to 191 in angle brackets), so it is not syslog.
	errNoPriority = errors.New("no valid priority")
	// errEmpty: the message has neither a text nor an app name, so there
	// is nothing to file.
	errEmpty = errors.New("empty message")
)

// message is what a datagram says, reduced to what a device log needs.
type message struct {
	// at is the sender's timestamp; zero when it gave none that could be
	// read.
	at time.Time
	// hostname is the HOSTNAME field ("" when absent).
	hostname string
	// text is "<app>[<procid>]: <msg>", "<app>: <msg>" or "<msg>": one
	// line of valid UTF-8, at most maxLen bytes.
	text string
}

// parse reads one syslog datagram, RFC 5424 or RFC 3164, and never panics.
// now is when it was received; loc is the time zone of RFC 3164 timestamps.
//
// The two formats share the "<PRI>" prefix; RFC 5424 follows it with the
// version "1 ". The parsers are github.com/influxdata/go-syslog/v3's, each
// made per datagram so parse keeps no state. Where they are too strict for
// what real senders emit, parse is lenient in the way RFC 3164 §4.3 asks of
// a relay: a datagram with a valid priority but no readable header is
// filed with its whole remainder as the message.
func parse(b []byte, now time.Time, loc *time.Location, maxLen int) (message, error) {
	b = clean(b)
	rest, ok := skipPriority(b)
	if !ok {
		return message{}, errNoPriority
	}
	var m message
	var err error
	if bytes.HasPrefix(rest, []byte("1 ")) {
		m, err = parse5424(b)
	}
	if !bytes.HasPrefix(rest, []byte("1 ")) || err != nil {
		m = parse3164(b, rest, now, loc)
	}
	if m.text == "" {
		return message{}, errEmpty
	}
	m.text = truncate(m.text, maxLen)
	return m, nil
}

// parse5424 parses an RFC 5424 message; any error sends the caller to the
// RFC 3164 path, which files what it can.
func parse5424(b []byte) (message, error) {
	p := rfc5424.NewParser()
	msg, err := p.Parse(b)
	if err != nil {
		return message{}, err
	}
	sm, ok := msg.(*rfc5424.SyslogMessage)
	if !ok || !sm.Valid() {
		return message{}, errNoPriority
	}
	body := strings.TrimPrefix(deref(sm.Message), "\ufeff") // RFC 5424 §6.4: MSG may start with a BOM
	return fromBase(&sm.Base, body), nil
}

// parse3164 parses an RFC 3164 message. rest is b after the priority.
//
// Two things real senders do that the library does not accept are handled
// here: an RFC 3339 timestamp with a fraction or offset in place of the
// "Mmm dd hh:mm:ss" stamp (rsyslog's forwarding format) is rewritten as a
// stamp for the parser and its precise value kept; and a header that does
// not parse at all makes the whole remainder the message.
func parse3164(b, rest []byte, now time.Time, loc *time.Location) message {
	year := now.In(loc).Year()
	var precise time.Time
	if ts, after, ok := cutRFC3339(rest); ok {
		precise = ts
		year = ts.In(loc).Year()
		stamped := make([]byte, 0, len(b))
		stamped = append(stamped, b[:len(b)-len(rest)]...)
		stamped = ts.In(loc).AppendFormat(stamped, time.Stamp)
		b = append(append(stamped, ' '), after...)
	}
	// Not rfc3164.WithTimezone: it converts the parsed time to loc rather
	// than reading the stamp in loc, so inLocation does that here.
	p := rfc3164.NewParser(rfc3164.WithBestEffort(), rfc3164.WithYear(rfc3164.Year{YYYY: year}))
	msg, err := p.Parse(b)
	sm, _ := msg.(*rfc3164.SyslogMessage)
	if err != nil || sm == nil {
		// Not a header we can read: file the remainder as the message,
		// with the timestamp if that much was read.
		m := message{text: sanitize(string(rest))}
		if !precise.IsZero() {
			m.at = precise
		} else if sm != nil && sm.Timestamp != nil {
			m.at = nearestYear(inLocation(*sm.Timestamp, loc), now)
		}
		return m
	}
	m := fromBase(&sm.Base, deref(sm.Message))
	switch {
	case !precise.IsZero():
		m.at = precise
	case !m.at.IsZero():
		m.at = nearestYear(inLocation(m.at, loc), now)
	}
	return m
}

// fromBase builds a message from the parsed fields common to both formats.
func fromBase(base *gosyslog.Base, body string) message {
	var m message
	if base.Timestamp != nil {
		m.at = *base.Timestamp
	}
	m.hostname = sanitize(deref(base.Hostname))
	app, pid, body := sanitize(deref(base.Appname)), sanitize(deref(base.ProcID)), sanitize(body)
	switch {
	case app != "" && pid != "":
		m.text = strings.TrimSpace(app + "[" + pid + "]: " + body)
	case app != "":
		m.text = strings.TrimSpace(app + ": " + body)
	default:
		m.text = body
	}
	return m
}

// clean returns a copy of b without trailing whitespace and NULs (many
// senders end a datagram with "\n" or "\x00") and with every other control
// character replaced by a space: a device log entry is one line, and the
// RFC 3164 parser drops a message that contains a newline.
func clean(b []byte) []byte {
	b = bytes.TrimRight(b, " \t\r\n\x00")
	out := make([]byte, len(b))
	for i, c := range b {
		if c < 0x20 || c == 0x7f {
			c = ' '
		}
		out[i] = c
	}
	return out
}

// skipPriority returns b after a leading "<PRI>", where PRI is one to
// three digits with a value of at most 191 (RFC 5424 §6.2.1).
func skipPriority(b []byte) ([]byte, bool) {
	if len(b) < 3 || b[0] != '<' {
		return nil, false
	}
	pri := 0
	for i := 1; i < len(b) && i <= 4; i++ {
		c := b[i]
		switch {
		case c == '>' && i > 1:
			return b[i+1:], pri <= 191
		case c < '0' || c > '9' || i == 4:
			return nil, false
		}
		pri = pri*10 + int(c-'0')
	}
	return nil, false
}

// cutRFC3339 reads an RFC 3339 timestamp at the start of b, followed by a
// space, and returns it and what follows the space.
func cutRFC3339(b []byte) (time.Time, []byte, bool) {
	tok, after, found := bytes.Cut(b, []byte(" "))
	// The shortest RFC 3339 time is "2006-01-02T15:04:05Z".
	if !found || len(tok) < len("2006-01-02T15:04:05Z") || tok[4] != '-' {
		return time.Time{}, nil, false
	}
	ts, err := time.Parse(time.RFC3339Nano, string(tok))
	if err != nil {
		return time.Time{}, nil, false
	}
	return ts, after, true
}

// inLocation reads the wall-clock time of t as a time in loc.
func inLocation(t time.Time, loc *time.Location) time.Time {
	return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), loc)
}

// nearestYear moves an RFC 3164 timestamp, which has no year and was given
// the receive year, to the year before or after when that is nearer to
// now: a line stamped Dec 31 23:59:59 that arrives on Jan 1 is from last
// year.
func nearestYear(t, now time.Time) time.Time {
	best := t
	for _, c := range []time.Time{t.AddDate(-1, 0, 0), t.AddDate(1, 0, 0)} {
		if c.Sub(now).Abs() < best.Sub(now).Abs() {
			best = c
		}
	}
	return best
}

// sanitize makes s valid UTF-8 and trims surrounding spaces.
func sanitize(s string) string {
	return strings.TrimSpace(strings.ToValidUTF8(s, "\uFFFD"))
}

// truncate cuts s to at most maxLen bytes at a character boundary, ending
// in "…" when anything was cut.
func truncate(s string, maxLen int) string {
	if len(s) <= maxLen {
		return s
	}
	const ellipsis = "…"
	cut := maxLen - len(ellipsis)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + ellipsis
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
