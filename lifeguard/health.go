package lifeguard

import (
	"maps"
	"slices"
	"time"

	"github.com/mozpool/mozpool/fsm"
)

// Board history (fsm.Outcome) and what the machine decides from it.
//
// The machine records an outcome for each operation that ends: a net boot
// that reaches the live image or times out, an imaging step that times
// out, an imaging or self-test that completes, a health check, a failed
// ping round or power cycle, and every failed_* state. Two rules read it:
//
//   - quarantine: a device whose last flapWindow outcomes since the last
//     reset hold enough episodes of the same kind of failure (runs of
//     it, each ended by a recovery; flapEpisodesFor says how many) keeps failing and recovering. Before
//     it can be handed out again it is retired to failed_health_checks
//     (the failures are health checks) or failed_flapping (anything
//     else), which says why.
//   - probation: a device whose self-test passed right after a failure is
//     not ready yet: it is health-checked every probationPeriod and
//     becomes ready after probationChecks clean checks.
//
// An operator's please_self_test or forced state change out of a failed
// state leaves a reset marker: the rules then look only at what follows.
const (
	flapWindow = 16
	// Episodes that quarantine: see flapEpisodesFor.
	flapEpisodes       = 4
	flapBootEpisodes   = 2
	flapHealthEpisodes = 3
	probationChecks    = 2
	probationPeriod    = 120 * time.Second
	// counterProbation counts the clean checks of probation.
	counterProbation = "probation"
)

// Operations of the history.
const (
	opBoot        = "boot"
	opImaging     = "imaging"
	opSelfTest    = "self_test"
	opHealthCheck = "health_check"
	opPing        = "ping"
	opPowerCycle  = "power_cycle"
	// failHealthCheck is the failure kind of a failed health check.
	failHealthCheck = "health_check"
	// failPXEFetch is the failure kind of a net boot whose boot loader
	// could not fetch the PXE file.
	failPXEFetch = "pxe_fetch"
	// failKernelPanic is the failure kind of an image whose kernel
	// panicked on its first boot.
	failKernelPanic = "kernel_panic"
)

// record appends one outcome (fail "" for a success).
func record(m *fsm.DeviceTx, op string, fail State) { m.Record(op, string(fail)) }

// failureOp is the operation a failed state (or a timed-out state)
// belongs to.
func failureOp(s State) string {
	switch s {
	case StatePXEBooting, StateMobileInitStarted, StateFailedPXEBooting, StateFailedMobileInitStarted, failPXEFetch:
		return opBoot
	case StateSelfTestRunning, StateFailedSelfTest:
		return opSelfTest
	case StatePCPowerCycling, StatePXEPowerCycling, StateFailedPowerCycling:
		return opPowerCycle
	case StatePCPinging:
		return opPing
	case failHealthCheck, StateFailedHealthChecks:
		return opHealthCheck
	}
	return opImaging
}

// quarantine returns the failed state the device's history sends it to,
// or "" when it may be handed out. It depends on the history alone.
func quarantine(h []fsm.Outcome) State {
	h = fsm.SinceReset(h)
	if len(h) > flapWindow {
		h = h[len(h)-flapWindow:]
	}
	// Episodes of each kind of failure: runs of it ended by a recovery,
	// a success of the same operation or of a whole one (anything but a
	// boot: the retries of a failing imaging step boot fine in between).
	// A long outage (a relay board that does not switch) is one episode;
	// a board that fails one boot in three has many.
	episodes := map[string]int{}
	failing := map[string]bool{}
	for _, o := range h {
		if o.OK() {
			for k := range failing {
				if o.Op != opBoot || failureOp(State(k)) == opBoot {
					delete(failing, k)
				}
			}
			continue
		}
		if k := kindOf(o.Fail); !failing[k] {
			failing[k] = true
			episodes[k]++
		}
	}
	// Kinds in a fixed order, so that the verdict depends on the history
	// alone.
	kinds := slices.Sorted(maps.Keys(episodes))
	for _, k := range kinds {
		if episodes[k] < flapEpisodesFor(k) {
			continue
		}
		if k == failHealthCheck {
			return StateFailedHealthChecks
		}
		return StateFailedFlapping
	}
	return ""
}

// kindOf groups failures that say the same of a board: a failed health
// check, a SUT agent that never answers after imaging and a board that
// never answers ping after a power cycle all mean it does not answer, and
// count as failed health checks.
func kindOf(fail string) string {
	switch State(fail) {
	case StateSUTVerifying, StateFailedSUTVerifying, StatePCPinging:
		return failHealthCheck
	}
	return fail
}

// flapEpisodesFor is how many episodes of a kind of failure quarantine a
// board: flapBootEpisodes for a net boot that never reaches the live image
// (a healthy board's boot fails by resetting itself, which retries at once
// and is never seen; only a board that hangs, or a shared part, makes
// pxe_booting time out; mobile_init_started's 10 s, though, a busy
// imaging server can overrun), flapHealthEpisodes for a board that does
// not answer (kindOf), flapEpisodes for the imaging steps, which fail now and then on
// any board.
func flapEpisodesFor(kind string) int {
	switch s := State(kind); {
	case s == StatePXEBooting || s == StateFailedPXEBooting:
		return flapBootEpisodes
	case failureOp(s) == opHealthCheck:
		return flapHealthEpisodes
	}
	return flapEpisodes
}

// quarantined enters the quarantine state if the history calls for it and
// reports whether it did.
func quarantined(m *fsm.DeviceTx) bool {
	q := quarantine(m.Device().History)
	if q == "" {
		return false
	}
	m.Log("statemachine", "quarantined: keeps failing and recovering (health score %d)", fsm.HealthScore(m.Device().History))
	enter(m, q)
	return true
}

// handOut makes the device ready unless its history quarantines it.
func handOut(m *fsm.DeviceTx) {
	if !quarantined(m) {
		enter(m, StateReady)
	}
}

// healthCheckFailed handles a failed health check in ready or probation:
// record it, quarantine or self-test.
func healthCheckFailed(m *fsm.DeviceTx, _ fsm.EventArgs) error {
	record(m, opHealthCheck, failHealthCheck)
	if !quarantined(m) {
		enter(m, StateStartSelfTest)
	}
	return nil
}

// selfTestPassed: a self-test that follows a failure leads to probation,
// any other to ready (quarantine permitting).
func selfTestPassed(m *fsm.DeviceTx, _ fsm.EventArgs) error {
	// The self-test's own boot does not count.
	afterFailure := false
	h := fsm.SinceReset(m.Device().History)
	for i := len(h) - 1; i >= 0; i-- {
		if h[i].Op != opBoot {
			afterFailure = !h[i].OK()
			break
		}
	}
	record(m, opSelfTest, "")
	switch {
	case quarantined(m):
	case afterFailure:
		m.ClearCounter(counterProbation)
		enter(m, StateProbation)
	default:
		enter(m, StateReady)
	}
	return nil
}

// probationTimeout is a clean check in probation.
func probationTimeout(m *fsm.DeviceTx) {
	if m.Claimed() {
		enter(m, StateProbation)
		return
	}
	record(m, opHealthCheck, "")
	if m.Inc(counterProbation) >= probationChecks {
		m.ClearCounter(counterProbation)
		m.Log("statemachine", "%d clean health checks after a self-test", probationChecks)
		handOut(m)
		return
	}
	enter(m, StateProbation)
}

// Imaging in advance, for images that allow it (in_advance in the
// catalog; off by default, as in Mozpool). A request that has to image its board waits the whole
// imaging; one handed a board already imaged with what it asks for (and
// unused since) waits for nothing. So an idle ready board is imaged with
// what requests for its hardware last asked for (fsm.Wanted) as soon as
// it is idle and does not carry that, fresh: when it enters ready
// unclaimed, and at the end of each health-check period (a board returned
// by its request stays in ready). Its Fresh mark goes as soon as it is
// used or written again, and a request gets it (fsm's queue prefers it)
// only for exactly the image and boot config written: images that may
// not be reused are never handed out used.
func imageInAdvance(m *fsm.DeviceTx) {
	d := m.Device()
	if m.Claimed() {
		return
	}
	w, ok := m.Wanted()
	if !ok || !m.ImageInAdvance(w.Image) || d.Fresh && d.Image == w.Image && d.BootConfig == w.BootConfig || m.PXEConfigFor(w.Image) == "" {
		return
	}
	if !answered(d.History) {
		return // health-checked first: see answered
	}
	m.Log("statemachine", "idle: imaging with %s in advance, as requests last asked", w.Image)
	d.NextImage, d.NextBootConfig = w.Image, w.BootConfig
	enter(m, StateStartPXEBoot)
}

// provenBoots is how many net boots in a row, since its last reset, a
// board must have made before it counts as proven; one that has hung (a
// net boot that never reached the live image) needs hungProvenBoots in a
// row since that hang. Proven boards are preferred by the queue for
// requests (trust), and only a proven board imaged in advance
// counts as fresh: until then it is imaged again while idle. A board that
// hangs now and then shows it while nobody waits for it: one that hangs
// one boot in three never gets there, and its second hang quarantines it
// before it is handed out. A board that hangs more rarely than that is
// caught by the longer run asked of it once it has hung.
const (
	provenBoots     = 4
	hungProvenBoots = 2 * provenBoots
)

// proven reports whether the history shows provenBoots successful net
// boots since the last reset, and hungProvenBoots since the last hung one.
func proven(h []fsm.Outcome) bool { return trust(h) == provenBoots }

// trust grades a history for the queue, which prefers the highest among
// free boards: provenBoots for a proven board, else the clean net boots
// it has made since its last reset (fewer than provenBoots), and 0 for one
// that hung and has not made hungProvenBoots clean ones since. In a lab
// that has just started, when no board is proven yet, requests get the
// boards that have booted most; and a flaky board is less likely to be
// handed out before it first shows itself.
func trust(h []fsm.Outcome) int {
	clean, hung := lastBoots(h)
	if hung {
		return 0
	}
	return min(clean, provenBoots)
}

// lastBoots reads the device's net boots since its last reset, newest
// first, until hungProvenBoots clean ones: clean counts those it read, and
// hung reports whether it met a hung boot before them.
func lastBoots(h []fsm.Outcome) (clean int, hung bool) {
	h = fsm.SinceReset(h)
	for i := len(h) - 1; i >= 0 && clean < hungProvenBoots; i-- {
		o := h[i]
		switch {
		case o.Op != opBoot:
		case o.OK():
			clean++
		case flapEpisodesFor(kindOf(o.Fail)) == flapBootEpisodes:
			return clean, true
		}
	}
	return clean, false
}

// answered reports whether the device has answered since its last reset:
// a health check, a ping or a whole imaging (whose SUT agent answered)
// succeeded. A board fresh from its first self-test has not; it is
// health-checked in ready before it is imaged in advance, so that a board
// that never answers fails its check at once rather than 30 SUT
// verifications after an imaging.
func answered(h []fsm.Outcome) bool {
	for _, o := range fsm.SinceReset(h) {
		if o.OK() && (o.Op == opHealthCheck || o.Op == opPing || o.Op == opImaging) {
			return true
		}
	}
	return false
}

// hungRecently reports whether one of the device's net boots hung and
// fewer than hungProvenBoots clean ones followed. A board that hung while
// a request for any device waited for it, or not long before, is not
// handed to that request even if a retry then succeeded: the request goes
// on to another board (a board that hangs one boot in three would
// otherwise be handed out between its hangs).
func hungRecently(h []fsm.Outcome) bool {
	_, hung := lastBoots(h)
	return hung
}

// readyTimeout is the end of a health-check period in ready: the check
// made on entry did not fail.
func readyTimeout(m *fsm.DeviceTx) {
	if !m.Claimed() {
		record(m, opHealthCheck, "")
	}
	enter(m, StateReady)
}

// resetHistory leaves the reset marker of an operator's rescue of a
// failed device.
func resetHistory(m *fsm.DeviceTx) {
	if State(m.State()).Failed() {
		m.Record(fsm.OpReset, "")
	}
}

// Shared faults (fsm/relayhealth.go). A board that does not boot after a
// power cycle, or whose relay cannot be switched, may have a bad relay
// board rather than be bad itself. Such a failure is reported to the FSM's
// tally; once SharedFaultBoards boards behind the same relay board have
// failed the same way within the window, the relay board is suspect and
// its boards' failures of that kind are neither counted against their
// budgets nor written in their histories: they wait in relay_wait, retried
// every relayWaitPeriod, and at once when a board behind the relay board
// boots again (the relay board works).
const relayWaitPeriod = 5 * time.Minute

// sharedFault reports a failure in the current state that the relay board
// may have caused; when the relay board is suspect the device waits in
// relay_wait and sharedFault returns true: the caller counts nothing.
func sharedFault(m *fsm.DeviceTx) bool {
	s := State(m.State())
	if !m.SharedFault(string(s)) {
		return false
	}
	m.Log("statemachine", "%s failed behind a suspect relay board: not counted, waiting for the relay board", s)
	enter(m, StateRelayWait)
	return true
}

// relayWorks is a board booting after a power cycle: its relay board
// works; boards waiting behind it are retried.
func relayWorks(m *fsm.DeviceTx) { m.SharedOK(string(StateRelayWait), resume) }

// resume retries the operation of a device in relay_wait: a net boot when
// it has a next image, else a plain power cycle.
func resume(m *fsm.DeviceTx) {
	if m.Device().NextImage != "" {
		enter(m, StatePXEPowerCycling)
		return
	}
	enter(m, StatePCPowerCycling)
}

// PXE/TFTP faults (fsm/relayhealth.go, TFTPFault). A board whose boot
// loader cannot fetch its PXE file (its syslog says so: EventPXEFetchFailed)
// may have a bad imaging server rather than be bad itself. The failure is
// reported to the server's tally; once SharedFaultBoards of its boards
// have failed so within the window, its PXE/TFTP is suspect and such
// failures are neither counted nor recorded: the board waits in pxe_wait,
// retried every relayWaitPeriod, and at once when a board of the server
// fetches and boots its PXE file (TFTP serves again). Before that a fetch
// failure counts against the net boot's budget and is recorded as
// failPXEFetch, a kind that quarantines only after flapEpisodes episodes:
// it says little about the board.
func pxeFetchFailed(m *fsm.DeviceTx, _ fsm.EventArgs) error {
	// The boot loader ran: the relay switched.
	relayWorks(m)
	if m.TFTPFault(failPXEFetch) {
		m.Log("statemachine", "the PXE file could not be fetched from a suspect PXE/TFTP: not counted, waiting for it")
		enter(m, StatePXEWait)
		return nil
	}
	m.Log("statemachine", "the boot loader could not fetch the PXE file (syslog): retrying the net boot now")
	if m.Inc(counterPXEBooting) > pxeBootLimit {
		enter(m, StateFailedPXEBooting)
		return nil
	}
	record(m, opBoot, failPXEFetch)
	enter(m, StatePXEPowerCycling)
	return nil
}

// tftpWorks is a board fetching and booting its PXE file: its imaging
// server's PXE/TFTP works; boards waiting for it are retried.
func tftpWorks(m *fsm.DeviceTx) { m.TFTPOK(string(StatePXEWait), resume) }
