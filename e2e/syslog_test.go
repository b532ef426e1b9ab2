package e2e

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/api"
	"github.com/mozpool/mozpool/lifeguard"
)

// logLine names a device log entry by its source and the start of its
// message.
type logLine struct{ source, prefix string }

func (w logLine) String() string { return w.source + " " + w.prefix }

func (w logLine) matches(e api.LogEntry) bool {
	return e.Source == w.source && strings.HasPrefix(e.Message, w.prefix)
}

// inTimeOrder reports whether want matches entries of log in this order,
// none earlier than the one before. log is oldest first, as the API
// returns it.
func inTimeOrder(t *testing.T, log []api.LogEntry, want ...logLine) bool {
	t.Helper()
	i := 0
	var last time.Time
	for _, e := range log {
		if i == len(want) {
			break
		}
		if !want[i].matches(e) {
			continue
		}
		at, err := api.ParseTime(e.Timestamp)
		require.NoError(t, err, "timestamp of %+v", e)
		if at.Before(last) {
			return false
		}
		last = at
		i++
	}
	return i == len(want)
}

// TestSyslog: each node advertises its syslog receiver in the cluster
// status; the simulated boards find it there and log their boot phases to
// it (u-boot, kernel, mobile-init, the second stage, the SUT agent), from
// their own addresses; and the node files the lines in the device log
// with source "device", on one time line with the state machine's
// entries, readable from any node.
func TestSyslog(t *testing.T) {
	skipShort(t)
	t.Parallel()
	l := startLab(t, labOptions{})
	// Rack 2's board: filed through node 2's receiver, read from node 1.
	const dev = "panda-21"

	for _, n := range l.cluster.Nodes {
		require.NotEmpty(t, n.Cluster.Self().SyslogAddr, "%s advertises its syslog receiver", n.Name)
	}
	st, err := l.logNode().Client().ClusterStatus(t.Context())
	require.NoError(t, err)
	for _, s := range st.Servers {
		require.NotEmpty(t, s.SyslogAddr, "the cluster status lists %s's syslog address", s.Name)
	}

	// The first self-test: a network boot into the self-test image.
	l.waitState(t, dev, lifeguard.StateReady, selfTestTimeout)
	// (The board's u-boot may start before the state machine has taken
	// the power cycle's result, so the time line starts with the PXE
	// file.)
	selfTest := []logLine{
		{"device", "u-boot: booting via PXE: selftest-second-stage"},
		{"device", "kernel: Linux version 3.2.0"},
		{"device", "mobile-init: fetching second stage selftest-second-stage.sh"},
		{"statemachine", enteringLine(lifeguard.StateMobileInitStarted)},
		{"statemachine", enteringLine(lifeguard.StateSelfTestRunning)},
		{"device", "self-test: self-test passed"},
		{"statemachine", enteringLine(lifeguard.StateReady)},
	}
	l.waitTimeLine(t, dev, 0, selfTest...)

	// A b2g imaging: each step's line comes just before the event that
	// moves the state machine on.
	mark := l.logMark(t, dev)
	require.Equal(t, http.StatusOK, event(t, l.nonOwner(t, dev), dev, lifeguard.EventPleaseImage, imageArgs("b2g", b2gBootConfig)))
	l.waitState(t, dev, lifeguard.StateReady, flowTimeout)
	imaging := []logLine{
		{"device", "u-boot: booting via PXE: b2g-second-stage"},
		{"device", "kernel: Linux version 3.2.0"},
		{"device", "mobile-init: fetching second stage b2g-second-stage.sh"},
		{"statemachine", enteringLine(lifeguard.StateMobileInitStarted)},
		{"device", "b2g-second-stage: downloading http://x"},
		{"statemachine", enteringLine(lifeguard.StateB2GDownloading)},
		{"device", "b2g-second-stage: extracting"},
		{"statemachine", enteringLine(lifeguard.StateB2GExtracting)},
		{"device", "b2g-second-stage: rebooting"},
		{"statemachine", enteringLine(lifeguard.StateSUTVerifying)},
	}
	l.waitTimeLine(t, dev, mark, imaging...)
	l.waitLogLine(t, dev, mark, "device", "kernel: mmcblk0: p1 p2", "sutagent: SUTAgent listening on "+strconv.Itoa(l.cluster.SUTPort()))
}

// waitTimeLine waits until dev's log after mark holds want in this order
// of time. Syslog lines are filed in batches, apart from the state
// machine's, so they may be readable a moment after the transitions that
// followed them.
func (l *lab) waitTimeLine(t *testing.T, dev string, mark int64, want ...logLine) {
	t.Helper()
	var log []api.LogEntry
	require.Eventually(t, func() bool {
		log = l.logSince(dev, mark)
		return inTimeOrder(t, log, want...)
	}, 10*time.Second, poll, "%s: want %v in this order of time; log:\n%s", dev, want, lazy(func() string {
		var b strings.Builder
		for _, e := range log {
			if slices.ContainsFunc(want, func(w logLine) bool { return w.source == e.Source }) {
				fmt.Fprintf(&b, "  %s %-12s %s\n", e.Timestamp, e.Source, e.Message)
			}
		}
		return b.String()
	}))
}
