package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/api"
	"github.com/mozpool/mozpool/client"
	"github.com/mozpool/mozpool/daemon/daemontest"
	"github.com/mozpool/mozpool/fsm"
	"github.com/mozpool/mozpool/lifeguard"
	"github.com/mozpool/mozpool/requests"
)

// Request timers are time-scaled like lifeguard's: a pending poll every
// 60 s becomes 1.2 s, the default max_wait of 10 minutes 12 s. Expiry is
// not: it is a wall-clock time. searchEvery, the original's search
// interval scaled, is how long tests watch for a wrong claim.
var (
	searchEvery = scaled(10 * time.Second)
	pendingPoll = scaled(60 * time.Second)
)

// hung is a state the device table does not know: a device forced into it
// has no timeout and reports nothing, as a lifeguard that went silent.
const hung lifeguard.State = "hung"

// TestRequests proves the Mozpool request machine
// (docs/design.md#the-request-machine) end to end, over HTTP against a
// 3-node cluster driving the simulated lab. The request scenarios run in
// parallel on boards of their own: each gives its boards an environment
// nobody else uses and asks for that environment (or names its board), so
// that no request can claim another scenario's board. The concurrency scenario, which asks for any
// board anywhere, then has the lab to itself.
//
// Boards: rack r is served by node r (mobile-imaging-00r).
//
//	panda-11 Lifecycle (8–17)          panda-21 Environment, odd (21)
//	panda-12 Expiry (18)               panda-22 Environment, even
//	panda-13 Reuse (19, 20)            panda-23 SpecificDevice (22, 23, 29, 30)
//	panda-14 Reuse                     panda-24 TakenOver (26)
//	panda-31 TakenOver                 panda-32 PendingResults (27)
//	panda-33 PendingResults            panda-34 SilentLifeguard (29)
//	(none)   NoDevice (24)
//
// Concurrency (31) then runs on panda-11..14 and panda-21, the others
// locked out.
func TestRequests(t *testing.T) {
	skipShort(t)
	t.Parallel()
	l := startLab(t, labOptions{})

	t.Run("BoardsReady", func(t *testing.T) {
		for _, dev := range l.boards() {
			l.waitState(t, dev, lifeguard.StateReady, selfTestTimeout)
		}
	})
	if t.Failed() {
		t.FailNow() // every scenario starts from ready boards
	}
	t.Run("Scenarios", func(t *testing.T) {
		t.Run("Lifecycle", func(t *testing.T) { t.Parallel(); testRequestLifecycle(t, l, "panda-11") })
		t.Run("Expiry", func(t *testing.T) { t.Parallel(); testRequestExpiry(t, l, "panda-12") })
		t.Run("Reuse", func(t *testing.T) { t.Parallel(); testRequestReuse(t, l, "panda-13", "panda-14") })
		t.Run("Environment", func(t *testing.T) { t.Parallel(); testRequestEnvironment(t, l, "panda-21", "panda-22") })
		t.Run("SpecificDevice", func(t *testing.T) { t.Parallel(); testRequestSpecificDevice(t, l, "panda-23") })
		t.Run("TakenOver", func(t *testing.T) { t.Parallel(); testRequestTakenOver(t, l, "panda-24", "panda-31") })
		t.Run("PendingResults", func(t *testing.T) { t.Parallel(); testRequestPendingResults(t, l, "panda-32", "panda-33") })
		t.Run("SilentLifeguard", func(t *testing.T) { t.Parallel(); testRequestSilentLifeguard(t, l, "panda-34") })
		t.Run("NoDevice", func(t *testing.T) { t.Parallel(); testRequestNoDevice(t, l) })
	})
	t.Run("Concurrency", func(t *testing.T) {
		testConcurrentRequests(t, l, "panda-11", "panda-12", "panda-13", "panda-14", "panda-21")
	})
}

// without returns a copy of body without key.
func without(body map[string]any, key string) map[string]any {
	out := maps.Clone(body)
	delete(out, key)
	return out
}

// otherThan returns the one of a and b that is not x.
func otherThan(x, a, b string) string {
	if x == a {
		return b
	}
	return a
}

// b2gFlow is what a b2g imaging shows in the device's log.
var b2gFlow = []lifeguard.State{
	lifeguard.StatePXEPowerCycling, lifeguard.StatePXEBooting, lifeguard.StateMobileInitStarted,
	lifeguard.StateB2GDownloading, lifeguard.StateB2GExtracting, lifeguard.StateSUTVerifying,
	lifeguard.StateSUTSDCardVerifying, lifeguard.StateOperationComplete, lifeguard.StateReady,
}

// testRequestLifecycle goes through a follower's API: the
// validation of a creation, then one b2g request for any board of its
// environment from creation to return, seen through every node, the
// device's log, the board, and the owner's TFTP root.
func testRequestLifecycle(t *testing.T, l *lab, dev string) {
	const env, nobody = "lifecycle", "lifecycle-nobody"
	l.setEnvironment(t, dev, env)
	followers := l.cluster.Followers()
	require.NotEmpty(t, followers)
	f := followers[0]

	// Assignee, duration and image are required; duration is an
	// integer, possibly in a string.
	valid := requestBody("b2g", env, 60)
	for _, tc := range []struct {
		name string
		body map[string]any
	}{
		{"empty body", map[string]any{}},
		{"no duration", without(valid, "duration")},
		{"duration abc", requestBody("b2g", env, "abc")},
		{"no assignee", without(valid, "assignee")},
		{"no image", without(valid, "image")},
	} {
		status, _, raw := postRequest(t, f, "any", tc.body)
		require.Equal(t, http.StatusBadRequest, status, "%s: %s", tc.name, raw)
	}
	// (In an environment nobody has: it holds no board.)
	q60 := l.createRequest(t, f, "any", requestBody("b2g", nobody, "60"))
	requireExpiresIn(t, q60.Expires, time.Minute)
	require.Empty(t, q60.AssignedDevice)

	// An unknown image, or device, is a 404.
	status, _, raw := postRequest(t, f, "any", requestBody("nosuch", env, 60))
	require.Equal(t, http.StatusNotFound, status, "unknown image: %s", raw)
	status, _, raw = postRequest(t, f, "nosuch", requestBody("b2g", env, 60))
	require.Equal(t, http.StatusNotFound, status, "unknown device: %s", raw)

	// Every boot-config key of the image is required; other keys are
	// dropped. The image has no PXE config, so no board can take it.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := f.Client().UpsertImage(ctx, fsm.ImageSpec{Name: "two-keys", BootConfigKeys: []string{"aa", "bb"}})
	require.NoError(t, err)
	twoKeys := map[string]any{"assignee": "e2e", "duration": 60, "image": "two-keys", "environment": nobody, "aa": nil}
	status, _, raw = postRequest(t, f, "any", twoKeys)
	require.Equal(t, http.StatusBadRequest, status, "bb missing: %s", raw)
	status, _, raw = postRequest(t, f, "any", without(valid, "b2gbase"))
	require.Equal(t, http.StatusBadRequest, status, "b2gbase missing: %s", raw)
	twoKeys["bb"], twoKeys["cc"] = "two", true
	qKeys := l.createRequest(t, f, "any", twoKeys)
	require.JSONEq(t, `{"aa": null, "bb": "two"}`, qKeys.BootConfig)

	// A request for any board of the environment claims it and
	// sends it please_image in the same command: the answer names it.
	mark := l.logMark(t, dev)
	before := l.sim.Board(dev)
	stopPXE := l.watchPXE(t, dev)
	defer stopPXE()
	start := time.Now()
	q := l.createRequest(t, f, "any", requestBody("b2g", env, 3600))
	require.Equal(t, dev, q.AssignedDevice)
	require.Equal(t, fmt.Sprintf("%s/api/request/%d/", f.URL, q.ID), q.URL)
	require.Equal(t, "any", q.RequestedDevice)
	require.Equal(t, env, q.Environment)
	require.Equal(t, "b2g", q.Image)
	require.Equal(t, "e2e", q.Assignee)
	require.JSONEq(t, `{"b2gbase": "`+b2gBase+`"}`, q.BootConfig)
	requireExpiresIn(t, q.Expires, time.Hour)
	require.Equal(t, requests.StatePending, requestStateOn(f, q.ID), "claimed and contacted in one command")

	// While it is imaging, bootconfig/ serves the request's boot
	// config, from every node.
	for _, n := range l.cluster.Live() {
		var body []byte
		require.Eventually(t, func() bool {
			status, body = do(t, http.MethodGet, n.URL+"/api/device/"+dev+"/bootconfig/", nil)
			return status == http.StatusOK && string(body) == q.BootConfig
		}, 5*time.Second, poll, "bootconfig/ of %s via %s: %d %s, want %s", dev, n.Name,
			lazy(func() string { return fmt.Sprint(status) }), lazy(func() string { return string(body) }), q.BootConfig)
	}

	// Its url works on every node (status/, details/ and the rest
	// are relative to it); the device names the request.
	path := strings.TrimPrefix(q.URL, f.URL)
	for _, n := range l.cluster.Live() {
		var got api.Request
		require.Eventually(t, func() bool {
			status, raw = do(t, http.MethodGet, n.URL+path+"details/", nil)
			return status == http.StatusOK && json.Unmarshal(raw, &got) == nil && got.ID == q.ID
		}, 5*time.Second, poll, "details/ via %s", n.Name)
		// Each node names itself in the url it shows; details/ adds
		// the claim history.
		require.Equal(t, n.URL+path, got.URL)
		got.URL = q.URL
		require.Len(t, got.Claims, 1, "details/ via %s", n.Name)
		require.Equal(t, q.AssignedDevice, got.Claims[0].Device, "details/ via %s", n.Name)
		got.Claims = nil
		require.Equal(t, q, got, "details/ via %s", n.Name)
		status, raw = do(t, http.MethodGet, n.URL+path+"status/", nil)
		require.Equal(t, http.StatusOK, status, "status/ via %s: %s", n.Name, raw)
	}
	l.waitHolder(t, dev, q.ID, 5*time.Second)

	// details/ is the request unwrapped; a bad id is a 400, an
	// unknown one a 404.
	status, raw = do(t, http.MethodGet, q.URL+"details/", nil)
	require.Equal(t, http.StatusOK, status)
	var keys map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(raw, &keys))
	require.ElementsMatch(t, []string{"id", "requested_device", "assignee", "expires", "environment", "image",
		"boot_config", "assigned_device", "url", "claims"}, slices.Collect(maps.Keys(keys)))
	status, _ = do(t, http.MethodGet, f.URL+"/api/request/xyz/details/", nil)
	require.Equal(t, http.StatusBadRequest, status)
	status, _ = do(t, http.MethodGet, f.URL+"/api/request/99999/details/", nil)
	require.Equal(t, http.StatusNotFound, status)

	// The list shows open requests with their device's state; closed
	// ones only with include_closed.
	require.Equal(t, http.StatusNoContent, returnRequest(t, f, q60.ID))
	list := func(includeClosed bool) map[int64]api.RequestSummary {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		rows, err := f.Client().Requests(ctx, includeClosed)
		require.NoError(t, err)
		out := map[int64]api.RequestSummary{}
		for _, r := range rows {
			out[r.ID] = r
		}
		return out
	}
	open := list(false)
	require.NotContains(t, open, q60.ID, "a closed request is not listed")
	require.Contains(t, open, q.ID)
	require.Equal(t, dev, open[q.ID].AssignedDevice)
	require.NotEmpty(t, open[q.ID].DeviceState, "the assigned device's state")
	require.Contains(t, open, qKeys.ID)
	require.Equal(t, string(requests.StateFindingDevice), open[qKeys.ID].State)
	require.Empty(t, open[qKeys.ID].DeviceState, "no device, no device state")
	all := list(true)
	require.Contains(t, all, q60.ID)
	require.Equal(t, string(requests.StateClosed), all[q60.ID].State)
	require.Empty(t, all[q60.ID].AssignedDevice)
	require.Empty(t, all[q60.ID].DeviceState)

	// The request is ready once the board is imaged and verified.
	l.waitRequestState(t, q.ID, requests.StateReady, flowTimeout)
	log := l.waitFlow(t, dev, mark, flowTimeout, b2gFlow...)
	require.True(t, logHas(log, "mozpool", fmt.Sprintf("claimed by request %d", q.ID)), "the device's log names the request")
	l.waitRequestLog(t, q.ID, "mozpool", claimedLine(dev, lifeguard.EventPleaseImage))
	l.waitRequestLog(t, q.ID, "lifeguard", fmt.Sprintf("device %s finished: %s", dev, lifeguard.ResultComplete))
	require.Eventually(t, func() bool {
		d := l.details(dev)
		return ptrString(d.Image) == "b2g" && d.BootConfig != nil && *d.BootConfig == q.BootConfig &&
			d.RequestID != nil && *d.RequestID == q.ID
	}, 5*time.Second, poll, "%s is b2g with the request's boot config, held by request %d", dev, q.ID)
	require.Equal(t, "b2g", l.sim.Board(dev).SDImage)

	// The board fetched the PXE file over TFTP and ran the b2g second
	// stage it names; the file was gone once the live image was up.
	seen := stopPXE()
	after := l.sim.Board(dev)
	require.Greater(t, after.TFTPFetches, before.TFTPFetches, "the board fetched its PXE file over TFTP")
	initAt := postedAt(t, l, dev, lifeguard.EventMobileInitStarted, start)
	require.False(t, initAt.IsZero(), "the board posted %s", lifeguard.EventMobileInitStarted)
	require.False(t, postedAt(t, l, dev, lifeguard.EventB2GDownloading, start).IsZero(), "the board ran the b2g second stage")
	require.False(t, l.pxeFileExists(t, dev), "the PXE file is removed")
	if seen.Seen.IsZero() {
		// The file lives a few hundred milliseconds at this scale; the
		// board's fetch above is the proof that it existed.
		t.Logf("the PXE file of %s came and went between two looks", dev)
	} else {
		require.Contains(t, seen.Contents, "b2g-second-stage.sh")
		require.NotContains(t, seen.Contents, "%IPADDRESS%", "the server's address is filled in")
		require.False(t, seen.Gone.IsZero(), "the PXE file went away")
		require.True(t, seen.Gone.After(initAt), "the PXE file went away after mobile_init_started (gone %s, posted %s)",
			seen.Gone.Format(time.StampMicro), initAt.Format(time.StampMicro))
	}

	// Renew through another node sets expires to now + duration, also
	// without the trailing slash (no 303 for renew).
	var other *daemontest.Node
	for _, n := range l.cluster.Live() {
		if n.Name != f.Name {
			other = n
		}
	}
	status, raw = do(t, http.MethodPost, other.URL+requestPath(q.ID, "renew"), map[string]int{"duration": 7200})
	require.Equal(t, http.StatusNoContent, status, "%s", raw)
	require.Empty(t, raw)
	requireExpiresIn(t, requestOn(t, other, q.ID).Expires, 2*time.Hour)
	status, raw = do(t, http.MethodPost, other.URL+strings.TrimSuffix(requestPath(q.ID, "renew"), "/"), map[string]int{"duration": 7300})
	require.Equal(t, http.StatusNoContent, status, "%s", raw)
	requireExpiresIn(t, requestOn(t, other, q.ID).Expires, 7300*time.Second)
	require.Equal(t, requests.StateReady, requestStateOn(other, q.ID), "a renewal changes only expires")

	// Return closes the request and releases the board, which stays
	// ready: it is not rebooted. A second return is a 204 too.
	a0 := l.actuations(t, dev)
	mark = l.logMark(t, dev)
	require.Equal(t, http.StatusNoContent, returnRequest(t, f, q.ID))
	require.Equal(t, requests.StateClosed, requestStateOn(f, q.ID))
	l.waitRequestState(t, q.ID, requests.StateClosed, 10*time.Second)
	l.waitHolder(t, dev, 0, 10*time.Second)
	require.Never(t, func() bool { return l.leftState(dev, lifeguard.StateReady) || l.actuations(t, dev) != a0 },
		quiet, poll, "the returned board moved or its relay was used")
	require.Empty(t, enteredStates(l.logAfter(t, dev, mark)))
	require.True(t, logHas(l.logAfter(t, dev, mark), "mozpool", fmt.Sprintf("released by request %d (%s)", q.ID, requests.StateClosed)))
	require.Equal(t, http.StatusNoContent, returnRequest(t, other, q.ID))
	require.Equal(t, requests.StateClosed, requestStateOn(other, q.ID))
}

// testRequestExpiry: expiry is wall-clock time. A request
// of one second expires while its board is still imaging: the board
// finishes with no request, and both logs say so; a request that never
// found a board expires as well.
func testRequestExpiry(t *testing.T, l *lab, dev string) {
	const env = "expiry"
	l.setEnvironment(t, dev, env)
	n := l.node()
	mark := l.logMark(t, dev)
	q := l.createRequest(t, n, "any", requestBody("b2g", env, 1))
	require.Equal(t, dev, q.AssignedDevice)
	requireExpiresIn(t, q.Expires, time.Second)

	l.waitRequestState(t, q.ID, requests.StateClosed, 10*time.Second)
	l.waitHolder(t, dev, 0, 5*time.Second)
	log := l.waitFlow(t, dev, mark, flowTimeout, b2gFlow...)
	require.True(t, logHas(log, "mozpool", fmt.Sprintf("released by request %d (%s) in state", q.ID, requests.StateClosed)) &&
		logHas(log, "mozpool", "the device goes on without a request"), "the device's log tells of the release mid-operation")
	rlog := l.requestLog(t, q.ID)
	require.True(t, logHas(rlog, "mozpool", "released device "+dev+" in state") &&
		logHas(rlog, "mozpool", "the device goes on without a request"), "the request's log tells of the release mid-operation")
	require.False(t, logHas(rlog, "lifeguard", "finished"), "the finished board told no request")
	require.NotContains(t, requestStates(rlog), requests.StateReady)
	require.Equal(t, requests.StateClosed, requestStateOn(n, q.ID))
	l.waitHolder(t, dev, 0, 5*time.Second)
	require.Equal(t, "b2g", l.image(t, dev), "the board finished its imaging")

	q2 := l.createRequest(t, n, "any", requestBody("b2g", "expiry-nobody", 1))
	require.Empty(t, q2.AssignedDevice)
	l.waitRequestState(t, q2.ID, requests.StateClosed, 10*time.Second)
}

// testRequestReuse: a board that already carries a
// reusable image with an equal (empty) boot config is only power-cycled —
// no PXE file — and it is preferred, every time, over a board used less
// recently.
func testRequestReuse(t *testing.T, l *lab, a, b string) {
	const env = "reuse"
	l.setEnvironment(t, a, env)
	l.setEnvironment(t, b, env)

	q := l.createRequest(t, l.node(), "any", requestBody("android", env, 3600))
	x := q.AssignedDevice
	require.Contains(t, []string{a, b}, x)
	y := otherThan(x, a, b)
	l.waitRequestLog(t, q.ID, "mozpool", claimedLine(x, lifeguard.EventPleaseImage))
	l.waitRequestState(t, q.ID, requests.StateReady, flowTimeout)
	require.Equal(t, http.StatusNoContent, returnRequest(t, l.node(), q.ID))
	l.waitHolder(t, x, 0, 10*time.Second)
	require.Equal(t, "android", l.image(t, x))

	first := l.logMark(t, x)
	yActs := l.actuations(t, y)
	for round := range 3 {
		mark := l.logMark(t, x)
		fetches := l.sim.Board(x).TFTPFetches
		q := l.createRequest(t, l.node(), "any", requestBody("android", env, 3600))
		require.Equal(t, x, q.AssignedDevice, "round %d: the board with the image wins over %s, used less recently", round, y)
		l.waitRequestLog(t, q.ID, "mozpool", claimedLine(x, lifeguard.EventPleasePowerCycle))
		l.waitRequestState(t, q.ID, requests.StateReady, flowTimeout)
		log := l.waitFlow(t, x, mark, flowTimeout, lifeguard.StatePCPowerCycling, lifeguard.StatePCRebooting,
			lifeguard.StatePCPinging, lifeguard.StateOperationComplete, lifeguard.StateReady)
		require.NotContains(t, enteredStates(log), lifeguard.StatePXEPowerCycling)
		require.Equal(t, fetches, l.sim.Board(x).TFTPFetches, "round %d: no PXE file: the board booted its SD card", round)
		require.Equal(t, http.StatusNoContent, returnRequest(t, l.node(), q.ID))
		l.waitHolder(t, x, 0, 10*time.Second)
	}
	// The hardware log lines are filed in batches: wait for the last
	// clearing before looking for a write.
	require.Eventually(t, func() bool {
		n := 0
		for _, e := range l.logSince(x, first) {
			if e.Source == "bmm" && strings.Contains(e.Message, "clearing pxe config succeeded") {
				n++
			}
		}
		return n >= 3
	}, 10*time.Second, poll, "each power cycle cleared the PXE file")
	require.False(t, logHas(l.logAfter(t, x, first), "bmm", "writing pxe config"), "no PXE file was written")
	require.Equal(t, "android", l.sim.Board(x).SDImage)
	require.Equal(t, yActs, l.actuations(t, y), "%s was left alone", y)
	require.Equal(t, lifeguard.StateReady, l.state(y))
}

// testRequestEnvironment: a request for an environment only
// ever gets a board of that environment, even while another is ready.
func testRequestEnvironment(t *testing.T, l *lab, odd, even string) {
	l.setEnvironment(t, odd, "odd")
	l.setEnvironment(t, even, "even")
	var names []string
	require.Eventually(t, func() bool {
		status, raw := do(t, http.MethodGet, l.node().URL+"/api/environment/list/", nil)
		var envs struct {
			Environments []*string `json:"environments"`
		}
		if status != http.StatusOK || json.Unmarshal(raw, &envs) != nil {
			return false
		}
		names = names[:0]
		for _, e := range envs.Environments {
			names = append(names, ptrString(e))
		}
		return slices.Contains(names, "odd") && slices.Contains(names, "even")
	}, 5*time.Second, poll, "the environment list shows odd and even: %v", lazy(func() string { return fmt.Sprint(names) }))

	n := l.node()
	q1 := l.createRequest(t, n, "any", requestBody("b2g", "odd", 3600))
	require.Equal(t, odd, q1.AssignedDevice)
	q2 := l.createRequest(t, n, "any", requestBody("b2g", "odd", 3600))
	require.Empty(t, q2.AssignedDevice)
	require.Never(t, func() bool {
		r, ok := l.requestRow(q2.ID)
		return ok && r.AssignedDevice != ""
	}, 5*searchEvery, poll, "an odd request took a board of another environment")
	require.Equal(t, requests.StateFindingDevice, requestStateOn(n, q2.ID))
	l.waitHolder(t, even, 0, 10*time.Second)
	require.Equal(t, lifeguard.StateReady, l.state(even), "the even board was there for the taking")

	q3 := l.createRequest(t, n, "any", requestBody("b2g", "even", 3600))
	require.Equal(t, even, q3.AssignedDevice)
}

// testRequestSpecificDevice runs named-device requests on one board: a
// named board in a failed state fails the request at once; a named board
// held by another request fails it as busy; a named board that goes silent
// is waited for; failed requests ignore return and expiry.
func testRequestSpecificDevice(t *testing.T, l *lab, dev string) {
	n := l.node()

	// A named board in a failed state.
	require.Equal(t, http.StatusOK, stateChange(t, n, dev, lifeguard.StateReady, lifeguard.StateFailedSelfTest))
	bad := l.createRequest(t, n, dev, requestBody("b2g", "any", 3600))
	require.Equal(t, dev, bad.RequestedDevice)
	require.Empty(t, bad.AssignedDevice)
	require.Equal(t, requests.StateFailedBadDevice, requestStateOn(n, bad.ID), "failed at the first search")
	// Return is a 204 and changes nothing.
	require.Equal(t, http.StatusNoContent, returnRequest(t, n, bad.ID))
	require.Equal(t, requests.StateFailedBadDevice, requestStateOn(n, bad.ID))
	require.Equal(t, http.StatusOK, stateChange(t, n, dev, lifeguard.StateFailedSelfTest, lifeguard.StateReady))
	l.waitState(t, dev, lifeguard.StateReady, 10*time.Second)

	// The board is held; a second request for it waits in the queue
	// and fails as busy at its max_wait (1 s, scaled), and the first
	// keeps it.
	held := l.createRequest(t, n, dev, requestBody("b2g", "any", 3600))
	require.Equal(t, dev, held.AssignedDevice)
	busyBody := requestBody("b2g", "any", 2)
	busyBody["max_wait"] = 1
	busy := l.createRequest(t, n, dev, busyBody)
	require.Empty(t, busy.AssignedDevice)
	// Waiting, or already given up: its max_wait is short on a busy
	// machine's clock.
	require.Contains(t, []requests.State{requests.StateFindingDevice, requests.StateFailedDeviceBusy}, requestStateOn(n, busy.ID))
	// A named board goes silent mid-imaging (before it can
	// finish); the request waits for it poll after poll.
	l.force(t, dev, hung)
	l.waitRequestState(t, busy.ID, requests.StateFailedDeviceBusy, 10*time.Second)
	require.Equal(t, http.StatusNoContent, returnRequest(t, n, busy.ID))

	// Meanwhile the busy request's expiry passes and, like the
	// return, changes nothing.
	require.Never(t, func() bool {
		h, ok1 := l.requestRow(held.ID)
		b, ok2 := l.requestRow(busy.ID)
		return ok1 && ok2 && (requests.State(h.State) != requests.StatePending || h.AssignedDevice != dev ||
			requests.State(b.State) != requests.StateFailedDeviceBusy)
	}, 5*pendingPoll, poll, "the held request left pending or the failed one moved")
	require.True(t, time.Now().UTC().After(parseWireTime(t, busy.Expires)), "the failed request has expired")
	require.Equal(t, requests.StateFailedDeviceBusy, requestStateOn(n, busy.ID))
	l.waitHolder(t, dev, held.ID, 10*time.Second)
	rlog := l.requestLog(t, held.ID)
	require.False(t, logHas(rlog, "mozpool", "not imaging"))
	require.Equal(t, []requests.State{requests.StateFindingDevice, requests.StatePending}, requestStates(rlog))
}

// testRequestTakenOver: an operator locks out the claimed
// board mid-imaging; at the next pending poll the request searches again
// and claims the other board of its environment.
func testRequestTakenOver(t *testing.T, l *lab, a, b string) {
	const env = "takeover"
	l.setEnvironment(t, a, env)
	l.setEnvironment(t, b, env)
	q := l.createRequest(t, l.node(), "any", requestBody("b2g", env, 3600))
	x := q.AssignedDevice
	require.Contains(t, []string{a, b}, x)
	y := otherThan(x, a, b)

	l.force(t, x, lifeguard.StateLockedOut)
	l.waitHolding(t, q.ID, requests.StatePending, y, 10*pendingPoll)
	l.waitHolder(t, x, 0, 5*time.Second)
	l.waitHolder(t, y, q.ID, 5*time.Second)
	l.waitRequestLog(t, q.ID, "mozpool", fmt.Sprintf("device %s is %s, not imaging", x, lifeguard.StateLockedOut))
	l.waitRequestLog(t, q.ID, "mozpool", claimedLine(y, lifeguard.EventPleaseImage))
	require.True(t, inOrder(l.requestEntered(t, q.ID), requests.StatePending, requests.StateFindingDevice, requests.StatePending))

	l.waitRequestState(t, q.ID, requests.StateReady, flowTimeout)
	require.Equal(t, lifeguard.StateLockedOut, l.state(x), "the locked-out board stays locked out")
}

// testRequestPendingResults: imaging results delivered by
// lifeguard_finished events through the API.
func testRequestPendingResults(t *testing.T, l *lab, a, b string) {
	const env = "results"
	l.setEnvironment(t, a, env)
	l.setEnvironment(t, b, env)
	n := l.node()
	result := func(id int64, r lifeguard.Result) {
		t.Helper()
		status, body := requestEvent(t, n, http.MethodPost, id, requests.EventLifeguardFinished, map[string]string{"imaging_result": string(r)})
		require.Equal(t, http.StatusOK, status, "%s", body)
		require.JSONEq(t, `{}`, string(body))
	}

	// failed-bad-device on "any": the request moves to another board.
	q := l.createRequest(t, n, "any", requestBody("b2g", env, 3600))
	c := q.AssignedDevice
	require.Contains(t, []string{a, b}, c)
	d := otherThan(c, a, b)
	result(q.ID, lifeguard.ResultFailedBadDevice)
	require.Equal(t, requests.StatePending, requestStateOn(n, q.ID))
	l.waitHolding(t, q.ID, requests.StatePending, d, 5*time.Second)
	l.waitHolder(t, c, 0, 5*time.Second)

	// complete: ready (whatever the board is doing).
	result(q.ID, lifeguard.ResultComplete)
	require.Equal(t, requests.StateReady, requestStateOn(n, q.ID))
	l.waitHolder(t, d, q.ID, 5*time.Second)
	// A GET delivers an event without arguments; ready ignores
	// lifeguard_finished, and nobody knows xyz: both are 200 {}.
	for _, ev := range []requests.Event{requests.EventLifeguardFinished, "xyz"} {
		status, body := requestEvent(t, n, http.MethodGet, q.ID, ev, nil)
		require.Equal(t, http.StatusOK, status, "%s: %s", ev, body)
		require.JSONEq(t, `{}`, string(body))
		l.waitRequestLog(t, q.ID, "statemachine", ignoredLine(ev, requests.StateReady))
	}
	require.Equal(t, requests.StateReady, requestStateOn(n, q.ID))
	require.Equal(t, http.StatusNoContent, returnRequest(t, n, q.ID))

	// failed-bad-device on a named board fails the request.
	l.waitState(t, c, lifeguard.StateReady, flowTimeout)
	q2 := l.createRequest(t, n, c, requestBody("b2g", "any", 3600))
	require.Equal(t, c, q2.AssignedDevice)
	result(q2.ID, lifeguard.ResultFailedBadDevice)
	require.Equal(t, requests.StateFailedBadDevice, requestStateOn(n, q2.ID))
	l.waitHolder(t, c, 0, 5*time.Second)

	// failed-bad-image on two boards fails the request (both ready, so
	// that the second search finds the other one).
	for _, dev := range []string{c, d} {
		l.waitState(t, dev, lifeguard.StateReady, flowTimeout)
		l.waitHolder(t, dev, 0, 5*time.Second)
	}
	// Which one comes first is the queue's choice (trust, then least
	// recently used); the request goes on to the other.
	q3 := l.createRequest(t, n, "any", requestBody("b2g", env, 3600))
	first := q3.AssignedDevice
	require.Contains(t, []string{c, d}, first)
	second := otherThan(first, c, d)
	result(q3.ID, lifeguard.ResultFailedBadImage)
	require.Equal(t, requests.StatePending, requestStateOn(n, q3.ID))
	l.waitHolding(t, q3.ID, requests.StatePending, second, 5*time.Second)
	result(q3.ID, lifeguard.ResultFailedBadImage)
	require.Equal(t, requests.StateFailedBadImage, requestStateOn(n, q3.ID))
	l.waitHolder(t, second, 0, 5*time.Second)
	l.waitHolder(t, d, 0, 5*time.Second)
}

// testRequestSilentLifeguard, for "any": the claimed board
// goes silent; after 20 pending polls the request gives it up and searches
// again, leaving the board as it is.
func testRequestSilentLifeguard(t *testing.T, l *lab, dev string) {
	const env = "silent"
	l.setEnvironment(t, dev, env)
	start := time.Now()
	q := l.createRequest(t, l.node(), "any", requestBody("b2g", env, 3600))
	require.Equal(t, dev, q.AssignedDevice)
	l.force(t, dev, hung)

	budget := 20 * pendingPoll
	l.waitRequest(t, q.ID, budget+30*time.Second, "searching again", func(r api.RequestSummary) bool {
		s := requests.State(r.State)
		return r.AssignedDevice == "" && (s == requests.StateFindingDevice || s == requests.StateFailedDeviceNotFound)
	})
	require.GreaterOrEqual(t, time.Since(start), budget-50*time.Millisecond, "it waited out 20 polls")
	require.True(t, inOrder(l.requestEntered(t, q.ID), requests.StatePending, requests.StateFindingDevice))
	require.False(t, logHas(l.requestLog(t, q.ID), "mozpool", "not imaging"), "it gave up on silence, not on a takeover")
	l.waitHolder(t, dev, 0, 5*time.Second)
	require.Equal(t, hung, l.state(dev), "the board is left as it is")
}

// testRequestNoDevice: a request for an environment no board is in waits
// in the queue for its default max_wait (10 minutes, scaled) — as long as
// the original's 60 searches 10 s apart — and fails failed_device_not_found.
func testRequestNoDevice(t *testing.T, l *lab) {
	n := l.node()
	start := time.Now()
	q := l.createRequest(t, n, "any", requestBody("b2g", "nobody-has-it", 3600))
	require.Empty(t, q.AssignedDevice)
	require.Equal(t, requests.StateFindingDevice, requestStateOn(n, q.ID))
	l.waitRequestState(t, q.ID, requests.StateFailedDeviceNotFound, 60*time.Second)
	require.GreaterOrEqual(t, time.Since(start), 59*searchEvery-50*time.Millisecond, "max_wait: 10 minutes (scaled)")
	require.Equal(t, []requests.State{requests.StateFindingDevice, requests.StateFailedDeviceNotFound}, l.requestEntered(t, q.ID))
}

// holdWatch checks, every 50 ms through a different node each time, that
// no board is ever held by two requests, that no request holds two boards,
// and that only the free boards are held.
type holdWatch struct {
	free       map[string]bool
	stopCh     chan struct{}
	done       chan struct{}
	polls      int
	maxHeld    int
	violations []string
}

func (l *lab) watchHolds(free map[string]bool) *holdWatch {
	w := &holdWatch{free: free, stopCh: make(chan struct{}), done: make(chan struct{})}
	nodes := l.cluster.Live()
	// Exits when stop closes stopCh.
	go func() {
		defer close(w.done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			w.check(nodes[i%len(nodes)])
			select {
			case <-w.stopCh:
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

func (w *holdWatch) violate(format string, args ...any) {
	if len(w.violations) < 20 {
		w.violations = append(w.violations, fmt.Sprintf(format, args...))
	}
}

func (w *holdWatch) check(n *daemontest.Node) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rows, err := n.Client().Requests(ctx, true)
	if err != nil {
		return
	}
	devs, err := n.Client().DeviceDetails(ctx)
	if err != nil {
		return
	}
	w.polls++
	held := map[string]int64{}
	for _, r := range rows {
		if r.AssignedDevice == "" {
			continue
		}
		if s := requests.State(r.State); s == requests.StateClosed || s.Failed() {
			w.violate("%s: request %d is %s but holds %s", n.Name, r.ID, r.State, r.AssignedDevice)
		}
		if other, ok := held[r.AssignedDevice]; ok {
			w.violate("%s: %s held by requests %d and %d", n.Name, r.AssignedDevice, other, r.ID)
		}
		held[r.AssignedDevice] = r.ID
		if !w.free[r.AssignedDevice] {
			w.violate("%s: request %d holds %s, which was locked out", n.Name, r.ID, r.AssignedDevice)
		}
	}
	w.maxHeld = max(w.maxHeld, len(held))
	byRequest := map[int64]string{}
	for _, d := range devs {
		if d.RequestID == nil {
			continue
		}
		id := *d.RequestID
		if other, ok := byRequest[id]; ok {
			w.violate("%s: request %d holds %s and %s", n.Name, id, other, d.Name)
		}
		byRequest[id] = d.Name
		if !w.free[d.Name] {
			w.violate("%s: %s, locked out, is held by request %d", n.Name, d.Name, id)
		}
	}
}

// stop stops the watch; its results may be read afterwards.
func (w *holdWatch) stop() {
	select {
	case <-w.stopCh:
	default:
		close(w.stopCh)
	}
	<-w.done
}

// testConcurrentRequests: 20 requests for any board, posted
// at once through the three nodes, with only the free boards ready; a
// watch looks through the API every 50 ms for a board held twice.
func testConcurrentRequests(t *testing.T, l *lab, free ...string) {
	isFree := map[string]bool{}
	for _, dev := range free {
		isFree[dev] = true
	}
	for _, dev := range l.boards() {
		if isFree[dev] {
			l.waitState(t, dev, lifeguard.StateReady, flowTimeout)
			l.waitHolder(t, dev, 0, 10*time.Second)
		} else {
			l.force(t, dev, lifeguard.StateLockedOut)
		}
	}

	w := l.watchHolds(isFree)
	defer w.stop()
	const count = 20
	ids := make([]int64, count)
	errs := make([]error, count)
	var wg sync.WaitGroup
	for i := range count {
		n := l.cluster.Nodes[i%len(l.cluster.Nodes)]
		wg.Add(1)
		// Exits when its POST is answered (or times out).
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			q, err := n.Client().CreateRequest(ctx, "any", client.RequestSpec{
				Assignee: fmt.Sprintf("e2e-%d", i), Duration: 10 * time.Minute, Image: "b2g",
				BootConfig: map[string]any{"b2gbase": b2gBase},
			})
			ids[i], errs[i] = q.ID, err
		}()
	}
	wg.Wait()
	mine := map[int64]bool{}
	for i, err := range errs {
		require.NoError(t, err, "request %d", i)
		mine[ids[i]] = true
		id := ids[i]
		t.Cleanup(func() { returnRequest(t, l.node(), id) })
	}
	require.Len(t, mine, count, "20 distinct requests")

	rowsOf := func() []api.RequestSummary {
		var out []api.RequestSummary
		for _, id := range ids {
			if r, ok := l.requestRow(id); ok {
				out = append(out, r)
			}
		}
		return out
	}
	// Each free board is claimed by one of them; the others search.
	holders := map[int64]string{}
	require.Eventually(t, func() bool {
		clear(holders)
		for _, r := range rowsOf() {
			if r.AssignedDevice != "" {
				holders[r.ID] = r.AssignedDevice
			}
		}
		return len(holders) == len(free)
	}, 10*time.Second, poll, "each free board is claimed: %v", lazy(func() string { return fmt.Sprint(holders) }))
	require.ElementsMatch(t, free, slices.Collect(maps.Values(holders)))

	// They are imaged; returning them frees the boards for requests that
	// are still searching (each searches 60 times, 12 s at this scale).
	for id := range holders {
		l.waitRequestState(t, id, requests.StateReady, flowTimeout)
	}
	i := 0
	for id := range holders {
		require.Equal(t, http.StatusNoContent, returnRequest(t, l.cluster.Nodes[i%len(l.cluster.Nodes)], id))
		i++
	}
	settled := func(states ...requests.State) func() bool {
		return func() bool {
			rows := rowsOf()
			for _, r := range rows {
				if s := requests.State(r.State); !slices.Contains(states, s) && !s.Failed() {
					return false
				}
			}
			return len(rows) == count
		}
	}
	require.Eventually(t, settled(requests.StateReady, requests.StateClosed), 2*flowTimeout, poll, "every request is ready, closed or failed")
	states := map[string]int{}
	for _, r := range rowsOf() {
		states[r.State]++
	}
	t.Logf("after the first %d were returned: %v", len(free), states)
	for _, id := range ids {
		require.Equal(t, http.StatusNoContent, returnRequest(t, l.node(), id))
	}
	require.Eventually(t, settled(requests.StateClosed), 10*time.Second, poll, "every request is closed or failed")
	for _, dev := range free {
		l.waitHolder(t, dev, 0, 10*time.Second)
	}

	w.stop()
	require.Empty(t, w.violations)
	require.Equal(t, len(free), w.maxHeld, "at most one request per free board, and all of them held at once")
	require.Greater(t, w.polls, 20, "the watch looked throughout")
	t.Logf("the watch looked %d times", w.polls)
}
