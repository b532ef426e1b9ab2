package sim_test

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/influxdata/go-syslog/v3/rfc5424"
	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/sim"
)

// syslogLine is one RFC 5424 datagram as the receiver sees it.
type syslogLine struct {
	From     netip.Addr
	Hostname string
	App      string
	Message  string
	At       time.Time
}

// syslogOf returns the lines the sink got with HOSTNAME host, parsed as
// RFC 5424; a datagram that does not parse fails the test.
func syslogOf(t *testing.T, s *syslogSink, host string) []syslogLine {
	t.Helper()
	var out []syslogLine
	for _, d := range s.datagrams() {
		m, err := rfc5424.NewParser().Parse([]byte(d.data))
		require.NoError(t, err, "RFC 5424: %q", d.data)
		sm := m.(*rfc5424.SyslogMessage)
		require.True(t, sm.Valid(), "%q", d.data)
		require.NotNil(t, sm.Hostname, "%q", d.data)
		if *sm.Hostname != host {
			continue
		}
		require.NotNil(t, sm.Appname, "%q", d.data)
		require.NotNil(t, sm.Message, "%q", d.data)
		require.NotNil(t, sm.Timestamp, "%q", d.data)
		require.Equal(t, uint8(16), *sm.Facility, "local0: %q", d.data)
		out = append(out, syslogLine{From: d.from, Hostname: *sm.Hostname, App: *sm.Appname, Message: *sm.Message, At: *sm.Timestamp})
	}
	return out
}

// appMessages lists "app: message" of lines.
func appMessages(lines []syslogLine) []string {
	var out []string
	for _, l := range lines {
		out = append(out, l.App+": "+l.Message)
	}
	return out
}

// subsequence reports whether want appears in got in this order, each
// want[i] a prefix of its match.
func subsequence(got []string, want ...string) bool {
	i := 0
	for _, s := range got {
		if i < len(want) && len(s) >= len(want[i]) && s[:len(want[i])] == want[i] {
			i++
		}
	}
	return i == len(want)
}

// TestBoardSyslog: a board logs every boot phase to its imaging server's
// syslog receiver (its syslog_addr in the cluster status), from its own
// address and with its name as HOSTNAME: a network boot into the
// self-test, and an SD-card boot when there is no PXE file.
func TestBoardSyslog(t *testing.T) {
	t.Parallel()
	api := newFakeAPI(t)
	subnet := testSubnet()
	inv := testInventory(subnet, 2)
	api.setPXE(inv.Devices[0].MAC, pxeSelfTest) // dev1 self-tests; dev2 boots its SD card
	l := startLab(t, testConfig(t, inv, api))

	waitPhase(t, l, "dev1", sim.PhaseSelfTestOK)
	want1 := []string{
		"u-boot: U-Boot 2012.07",
		"u-boot: pxe get pxelinux.cfg/01-00-16-3e-00-00-01",
		"u-boot: booting via PXE: selftest-second-stage",
		"kernel: Linux version 3.2.0",
		"kernel: mmcblk0: p1 p2",
		"mobile-init: fetching second stage selftest-second-stage.sh",
		"self-test: running self-test",
		"self-test: self-test passed",
	}
	var lines []syslogLine
	require.Eventually(t, func() bool {
		lines = syslogOf(t, api.syslog, "dev1")
		return subsequence(appMessages(lines), want1...)
	}, testWait, testPoll, "dev1's syslog: want %q in this order", want1)
	// The boot's lines come in the order they were sent, on one clock.
	require.True(t, slices.IsSortedFunc(lines, func(a, b syslogLine) int { return a.At.Compare(b.At) }), "%v", lines)
	for _, l := range lines {
		require.Equal(t, netip.MustParseAddr(subnet+".1"), l.From, "dev1 sends from its own address: %s: %s", l.App, l.Message)
		require.WithinDuration(t, time.Now(), l.At, time.Minute)
	}
	// A phase's lines are sent before the event that reports it. The
	// board records a post when the answer comes, after the API has seen
	// it: wait for the board's own record.
	waitEvents(t, api, "dev1", "mobile_init_started", "self_test_running", "self_test_ok")
	var posts []sim.EventPost
	require.Eventually(t, func() bool {
		posts = board(t, l, "dev1").Events
		return len(posts) > 0 && posts[len(posts)-1].Event == "self_test_ok"
	}, testWait, testPoll, "dev1 never recorded posting self_test_ok")
	passed := lines[slices.IndexFunc(lines, func(l syslogLine) bool { return l.Message == "self-test passed" })]
	require.False(t, passed.At.After(posts[len(posts)-1].At), "self-test passed at %s, self_test_ok posted at %s", passed.At, posts[len(posts)-1].At)

	waitPhase(t, l, "dev2", "running_android")
	want2 := []string{
		"u-boot: U-Boot 2012.07",
		"u-boot: no PXE file, booting from mmc",
		"kernel: Linux version 3.2.0",
		"sutagent: SUTAgent listening on 20701",
	}
	require.Eventually(t, func() bool {
		lines = syslogOf(t, api.syslog, "dev2")
		return subsequence(appMessages(lines), want2...)
	}, testWait, testPoll, "dev2's syslog: want %q in this order", want2)
	for _, l := range lines {
		require.Equal(t, netip.MustParseAddr(subnet+".2"), l.From, "dev2 sends from its own address")
	}
}

// TestBoardSyslogImaging: the b2g second stage logs its steps, naming
// the b2gbase of the board's boot config.
func TestBoardSyslogImaging(t *testing.T) {
	t.Parallel()
	api := newFakeAPI(t)
	inv := testInventory(testSubnet(), 1)
	api.setPXE(inv.Devices[0].MAC, pxeB2G)
	api.setBootConfig("dev1", `{"b2gbase":"http://pvtbuilds/b2g/panda"}`)
	l := startLab(t, testConfig(t, inv, api))

	waitPhase(t, l, "dev1", "running_b2g")
	want := []string{
		"mobile-init: fetching second stage b2g-second-stage.sh",
		"b2g-second-stage: downloading http://pvtbuilds/b2g/panda",
		"b2g-second-stage: extracting",
		"b2g-second-stage: rebooting",
		"kernel: Linux version 3.2.0",
		"sutagent: SUTAgent listening on 20701",
	}
	require.Eventually(t, func() bool {
		return subsequence(appMessages(syslogOf(t, api.syslog, "dev1")), want...)
	}, testWait, testPoll, "dev1's syslog: want %q in this order", want)
}

// TestBoardSyslogOff: with Config.Syslog off the boards send nothing.
func TestBoardSyslogOff(t *testing.T) {
	t.Parallel()
	api := newFakeAPI(t)
	inv := testInventory(testSubnet(), 1)
	api.setPXE(inv.Devices[0].MAC, pxeSelfTest)
	cfg := testConfig(t, inv, api)
	cfg.Syslog = false
	l := startLab(t, cfg)

	waitPhase(t, l, "dev1", sim.PhaseSelfTestOK)
	waitEvents(t, api, "dev1", "mobile_init_started", "self_test_running", "self_test_ok")
	require.Never(t, func() bool { return len(api.syslog.datagrams()) > 0 }, 200*time.Millisecond, testPoll,
		"no syslog with Config.Syslog off")
}
