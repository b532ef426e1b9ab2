package lifeguard

import (
	"fmt"
	"hash/fnv"
	"time"

	"github.com/mozpool/mozpool/fsm"
)

// Action is the hardware work a state asks for on entry. Actions run on
// the device's owning imaging server, outside Apply (executor.go); their
// results come back as events tagged with the generation of the entry.
type Action int

const (
	// ActionNone: nothing to do on the hardware.
	ActionNone Action = iota
	// ActionHealthCheck: unless a request holds the device, verify the
	// SUT agent (if the current image has one) or ping; failure → "failed".
	ActionHealthCheck
	// ActionPowerCycle: remove the PXE file, power-cycle the relay →
	// "power_cycle_ok" (failure: wait for the timeout).
	ActionPowerCycle
	// ActionPXEPowerCycle: write the PXE file for the next image,
	// power-cycle the relay → "power_cycle_ok".
	ActionPXEPowerCycle
	// ActionRelayPowerCycle: power-cycle the relay only → "power_cycle_ok".
	ActionRelayPowerCycle
	// ActionPing: ping → "ping_ok" (failure: wait for the timeout).
	ActionPing
	// ActionClearPXE: remove the PXE file so the next boot uses the SD card.
	ActionClearPXE
	// ActionSUTVerify: verify the SUT agent → "sut_verify_ok".
	ActionSUTVerify
	// ActionCheckSDCard: SD card check → "sut_sdcard_ok" or "sut_sdcard_failed".
	ActionCheckSDCard
)

var actionNames = [...]string{"none", "health_check", "power_cycle", "pxe_power_cycle", "relay_power_cycle", "ping", "clear_pxe", "sut_verify", "check_sdcard"}

func (a Action) String() string { return actionNames[a] }

// please says which please_* events a state accepts.
type please int

const (
	pleaseNone  please = iota
	pleaseBasic        // please_self_test, please_start_maintenance
	pleaseFull         // basic + please_power_cycle, please_image
)

// noTimeout marks a state without a deadline (TIMEOUT 0 means "due at once",
// not "never": the original's bug 964960).
const noTimeout = time.Duration(-1)

// transition handles one event in one state.
type transition func(m *fsm.DeviceTx, args fsm.EventArgs) error

// stateSpec is one row of the device state table.
type stateSpec struct {
	// Timeout is how long the state may last (noTimeout: forever). The
	// cluster's time scale applies.
	Timeout time.Duration
	// Action is performed by the owner's executor on entry.
	Action Action
	// OnEntry runs inside Apply right after entering (it may move on at
	// once, e.g. start_* states).
	OnEntry func(m *fsm.DeviceTx)
	// OnTimeout runs inside Apply when the deadline passes.
	OnTimeout func(m *fsm.DeviceTx)
	// Please is the set of please_* events accepted.
	Please please
	// Events are the other accepted events.
	Events map[Event]transition
	// Failed marks failed_* states; AutoSelfTest those that bounce into a
	// self-test at once, as in Mozpool.
	Failed       bool
	AutoSelfTest bool
	// Spread shortens each entry's timeout by up to this fraction, by an
	// amount drawn from the device's name and generation (the same on
	// every node): the periodic health checks of boards that entered
	// ready together drift apart instead of all coming in the same
	// second, period after period.
	Spread float64
}

// healthCheckSpread is the Spread of ready and probation: a period is
// 80-100% of its timeout.
const healthCheckSpread = 0.2

// Budgets. "limit N" means: increment, then fail when the new value is > N
// (the (N+1)-th failure trips it), as in the original.
const (
	// The relay is retried for a long time: a busy board (14 devices on
	// one board ≈ 42 s of queue) must not retire devices.
	powerCycleLimit = 200
	// 12 pings ≈ 2 minutes for the OS to come up before trying a new
	// power cycle.
	pingLimit = 12
	// New: the pc_power_cycling ↔ pc_pinging loop had no exit; after this
	// many rounds of power cycles that never lead to a ping the device
	// is retired to failed_power_cycling.
	pingRoundsLimit = 5
	pxeBootLimit    = 30
	mobileInitLimit = 10
	downloadLimit   = 3
	extractLimit    = 10
	sutVerifyLimit  = 30
	// Every 10 failed SUT verifications the device is power-cycled,
	// at most 3 times.
	sutVerifyCycleEvery = 10
	sutPowerCycleLimit  = 3
	sdcardLimit         = 2
	// An image whose kernel panics is written again this many times.
	kernelPanicLimit = 3
	// A self-test that hangs is power-cycled and run again this many
	// times before the device fails.
	selfTestHangLimit = 1
)

// Counter names. Most count the failures of one state and bear its name.
const (
	counterPingRounds = "pc_ping_rounds"
	counterPowerCycle = "power_cycling"

	counterPCPinging           = string(StatePCPinging)
	counterPXEBooting          = string(StatePXEBooting)
	counterMobileInitStarted   = string(StateMobileInitStarted)
	counterAndroidDownloading  = string(StateAndroidDownloading)
	counterAndroidExtracting   = string(StateAndroidExtracting)
	counterB2GDownloading      = string(StateB2GDownloading)
	counterB2GExtracting       = string(StateB2GExtracting)
	counterSUTVerifying        = string(StateSUTVerifying)
	counterSUTVerifyPowerCycle = string(StateSUTVerifyPowerCycle)
	counterSUTSDCardVerifying  = string(StateSUTSDCardVerifying)
	counterSelfTestRunning     = string(StateSelfTestRunning)
	counterKernelPanic         = "kernel_panic"
)

// deviceStates is the device state table. The reasons come from Mozpool.
// It is filled in init because its entries refer to enter, which reads it.
var deviceStates map[State]stateSpec

func init() { deviceStates = stateTable() }

func stateTable() map[State]stateSpec {
	return map[State]stateSpec{
		// new: a device just added by inventory sync self-tests on the next
		// tick.
		StateNew: {Timeout: 0, Please: pleaseFull, OnTimeout: gotoState(StateStartSelfTest)},
		// locked_out: frozen by an operator; only a forced change leaves it.
		StateLockedOut: {Timeout: noTimeout},
		// troubleshooting: parked by an operator, still accepts please_*.
		StateTroubleshooting: {Timeout: noTimeout, Please: pleaseFull},
		// ready: health-checked every 10 minutes ("to keep load reasonable")
		// unless a request holds it; each period is up to a fifth shorter
		// (healthCheckSpread), so that a lab's checks spread out.
		StateReady: {Timeout: 600 * time.Second, Spread: healthCheckSpread, Action: ActionHealthCheck, Please: pleaseFull,
			OnEntry: imageInAdvance, OnTimeout: readyTimeout,
			Events: map[Event]transition{EventFailed: healthCheckFailed}},
		// probation: a device whose self-test passed right after a failure
		// is health-checked every 2 minutes; probationChecks clean checks
		// make it ready (health.go).
		// relay_wait: the device's operation failed behind a suspect
		// relay board; it is retried every 5 minutes, and at once when
		// the relay board works again (health.go).
		StateRelayWait: {Timeout: relayWaitPeriod, Please: pleaseBasic, OnTimeout: resume},
		// pxe_wait: the device's boot loader could not fetch its PXE file
		// from its imaging server's suspect TFTP; it is retried every 5
		// minutes, and at once when a board of the server net-boots
		// (health.go).
		StatePXEWait: {Timeout: relayWaitPeriod, Please: pleaseBasic, OnTimeout: resume},
		StateProbation: {Timeout: probationPeriod, Spread: healthCheckSpread, Action: ActionHealthCheck, Please: pleaseBasic,
			OnTimeout: probationTimeout,
			Events:    map[Event]transition{EventFailed: healthCheckFailed}},

		// pc_power_cycling: plain reboot; the relay cycle takes ≈ 1–3 s, so
		// 60 s, retried up to 200 times. Time spent waiting for the relay
		// board does not count: power_cycle_started re-arms the deadline
		// when the cycle leaves the board's queue (as in every relay state).
		StatePCPowerCycling: {Timeout: 60 * time.Second, Action: ActionPowerCycle,
			OnEntry:   enterPowerCycling(false),
			OnTimeout: powerCycleFailed,
			Events: map[Event]transition{
				EventPowerCycleOK:      clearThen(counterPowerCycle, StatePCRebooting),
				EventPowerCycleFailed:  func(m *fsm.DeviceTx, _ fsm.EventArgs) error { powerCycleFailed(m); return nil },
				EventPowerCycleStarted: rearm,
			}},
		// pc_rebooting: wait so u-boot's own ping replies are not taken for
		// the OS coming up.
		StatePCRebooting: {Timeout: 120 * time.Second, OnTimeout: gotoState(StatePCPinging)},
		// pc_sut_rebooting: unreachable since SUT reboots were dropped; kept
		// so a stored state still means something.
		StatePCSUTRebooting: {Timeout: 10 * time.Second, OnTimeout: gotoState(StateSUTVerifying)},
		// pc_pinging: ping every 10 s, 12 times, then power-cycle again —
		// at most pingRoundsLimit rounds.
		StatePCPinging: {Timeout: 10 * time.Second, Action: ActionPing, OnTimeout: pingTimeout,
			Events: map[Event]transition{EventPingOK: func(m *fsm.DeviceTx, _ fsm.EventArgs) error {
				record(m, opPing, "")
				relayWorks(m)
				m.ClearCounter(counterPCPinging)
				m.ClearCounter(counterPingRounds)
				enter(m, StateOperationComplete)
				return nil
			}}},

		StateStartPXEBoot: {Timeout: noTimeout, OnEntry: func(m *fsm.DeviceTx) {
			m.ClearCounters()
			enter(m, StatePXEPowerCycling)
		}},
		// start_self_test: net-boot the self-test image when this hardware
		// has a PXE config for it, else a plain reboot and ping.
		StateStartSelfTest: {Timeout: noTimeout, OnEntry: func(m *fsm.DeviceTx) {
			m.ClearCounters()
			if m.PXEConfigFor("self-test") != "" {
				d := m.Device()
				d.NextImage, d.NextBootConfig = "self-test", ""
				enter(m, StatePXEPowerCycling)
				return
			}
			enter(m, StatePCPowerCycling)
		}},
		// start_maintenance: the original stuck here forever when the
		// maintenance image or its PXE config was missing; now it fails.
		StateStartMaintenance: {Timeout: noTimeout, OnEntry: func(m *fsm.DeviceTx) {
			m.ClearCounters()
			if !m.ImageExists("maintenance") || m.PXEConfigFor("maintenance") == "" {
				m.Log("statemachine", "cannot start maintenance: no maintenance image or PXE config for this hardware")
				enter(m, StateFailedPXEBooting)
				return
			}
			d := m.Device()
			d.NextImage, d.NextBootConfig = "maintenance", ""
			enter(m, StatePXEPowerCycling)
		}},
		// pxe_power_cycling: write the PXE file for the next image, then
		// power-cycle. Without a PXE config the device fails at once, and
		// (unlike the original) is not power-cycled afterwards.
		StatePXEPowerCycling: {Timeout: 60 * time.Second, Action: ActionPXEPowerCycle,
			OnEntry:   enterPowerCycling(true),
			OnTimeout: powerCycleFailed,
			Events: map[Event]transition{
				EventPowerCycleOK:      clearThen(counterPowerCycle, StatePXEBooting),
				EventPowerCycleFailed:  func(m *fsm.DeviceTx, _ fsm.EventArgs) error { powerCycleFailed(m); return nil },
				EventPowerCycleStarted: rearm,
			}},
		// pxe_booting: a panda net-boots in ≈ 90 s; twice that, 30 tries.
		StatePXEBooting: {Timeout: 180 * time.Second, OnTimeout: unlessShared(retryPXE(counterPXEBooting, pxeBootLimit, StateFailedPXEBooting)),
			Events: map[Event]transition{EventMobileInitStarted: func(m *fsm.DeviceTx, args fsm.EventArgs) error {
				record(m, opBoot, "")
				relayWorks(m)
				tftpWorks(m)
				return clearThen(counterPXEBooting, StateMobileInitStarted)(m, args)
			},
				// The boot loader ran, so the relay switched: a hang is the
				// board's, not the relay board's.
				EventBootHung: func(m *fsm.DeviceTx, _ fsm.EventArgs) error {
					m.Log("statemachine", "the boot loader hung (syslog): retrying the net boot now")
					relayWorks(m)
					retryPXE(counterPXEBooting, pxeBootLimit, StateFailedPXEBooting)(m)
					return nil
				},
				EventPXEFetchFailed: pxeFetchFailed,
			}},
		// mobile_init_started: the live image is up; the PXE file goes so a
		// reboot uses the SD card; the second stage reports within 10 s.
		StateMobileInitStarted: {Timeout: 10 * time.Second, Action: ActionClearPXE,
			OnTimeout: retryPXE(counterMobileInitStarted, mobileInitLimit, StateFailedMobileInitStarted),
			Events: map[Event]transition{
				EventBoardRebooted:      failedEarly,
				EventAndroidDownloading: clearThen(counterMobileInitStarted, StateAndroidDownloading),
				EventB2GDownloading:     clearThen(counterMobileInitStarted, StateB2GDownloading),
				EventMaintMode: func(m *fsm.DeviceTx, _ fsm.EventArgs) error {
					m.ClearCounter(counterMobileInitStarted)
					m.Device().Image, m.Device().BootConfig = "", ""
					enter(m, StateMaintenanceMode)
					return nil
				},
				EventSelfTestRunning: func(m *fsm.DeviceTx, _ fsm.EventArgs) error {
					m.ClearCounter(counterMobileInitStarted)
					d := m.Device()
					d.Image, d.BootConfig, d.NextImage, d.NextBootConfig = "", "", "", ""
					enter(m, StateSelfTestRunning)
					return nil
				},
			}},
		StateAndroidDownloading: {Timeout: 180 * time.Second, Action: ActionClearPXE,
			OnTimeout: retryPXE(counterAndroidDownloading, downloadLimit, StateFailedAndroidDownloading),
			Events:    map[Event]transition{EventAndroidExtracting: clobberThen(counterAndroidDownloading, StateAndroidExtracting), EventBoardRebooted: failedEarly}},
		StateAndroidExtracting: {Timeout: 600 * time.Second,
			OnTimeout: retryPXE(counterAndroidExtracting, extractLimit, StateFailedAndroidExtracting),
			Events:    map[Event]transition{EventAndroidRebooting: clearThen(counterAndroidExtracting, StateSUTVerifying), EventBoardRebooted: failedEarly}},
		StateB2GDownloading: {Timeout: 180 * time.Second, Action: ActionClearPXE,
			OnTimeout: retryPXE(counterB2GDownloading, downloadLimit, StateFailedB2GDownloading),
			Events:    map[Event]transition{EventB2GExtracting: clobberThen(counterB2GDownloading, StateB2GExtracting), EventBoardRebooted: failedEarly}},
		StateB2GExtracting: {Timeout: 300 * time.Second,
			OnTimeout: retryPXE(counterB2GExtracting, extractLimit, StateFailedB2GExtracting),
			Events:    map[Event]transition{EventB2GRebooting: clearThen(counterB2GExtracting, StateSUTVerifying), EventBoardRebooted: failedEarly}},
		// sut_verifying: the agent gets 45 s per try; every 10th failure
		// power-cycles the board; 30 failures retire it.
		StateSUTVerifying: {Timeout: 45 * time.Second, Action: ActionSUTVerify,
			OnTimeout: func(m *fsm.DeviceTx) {
				switch c := m.Inc(counterSUTVerifying); {
				case c > sutVerifyLimit:
					enter(m, StateFailedSUTVerifying)
				case c%sutVerifyCycleEvery == 0:
					record(m, opImaging, StateSUTVerifying)
					enter(m, StateSUTVerifyPowerCycle)
				default:
					enter(m, StateSUTVerifying)
				}
			},
			Events: map[Event]transition{EventSUTVerifyOK: clearThen(counterSUTVerifying, StateSUTSDCardVerifying),
				EventKernelPanic: kernelPanic}},
		StateSUTVerifyPowerCycle: {Timeout: 60 * time.Second, Action: ActionRelayPowerCycle,
			OnTimeout: limitThen(counterSUTVerifyPowerCycle, sutPowerCycleLimit, StateFailedSUTVerifying, StateSUTVerifyPowerCycle),
			Events:    map[Event]transition{EventPowerCycleOK: on(StateSUTVerifying), EventPowerCycleStarted: rearm}},
		// sut_sdcard_verifying: the check can take minutes (13 commands × 15 s).
		StateSUTSDCardVerifying: {Timeout: 200 * time.Second, Action: ActionCheckSDCard,
			OnTimeout: sdcardFailed,
			Events: map[Event]transition{
				EventSUTSDCardOK: func(m *fsm.DeviceTx, args fsm.EventArgs) error {
					record(m, opImaging, "")
					return clearThen(counterSUTSDCardVerifying, StateOperationComplete)(m, args)
				},
				EventSUTSDCardFailed: func(m *fsm.DeviceTx, _ fsm.EventArgs) error { sdcardFailed(m); return nil },
			}},
		// operation_complete: what was being installed is now on the card.
		StateOperationComplete: {Timeout: 60 * time.Second, OnTimeout: gotoState(StateOperationComplete),
			OnEntry: func(m *fsm.DeviceTx) {
				d := m.Device()
				if d.NextImage != "" {
					d.Image, d.BootConfig = d.NextImage, d.NextBootConfig
					d.NextImage, d.NextBootConfig = "", ""
					d.Fresh = !m.Claimed() && proven(d.History)
				}
				if quarantined(m) {
					return // the failed state reports failed-bad-device
				}
				if m.ClaimedForAny() && hungRecently(d.History) {
					// The request takes another board; this one, free
					// again, proves itself while idle (imaging in
					// advance) or hangs again and is quarantined.
					m.Log("statemachine", "a net boot hung during this operation: not handed out; the request may take another device")
					m.ImagingResult(string(ResultFailedBadDevice))
					enter(m, StateReady)
					return
				}
				m.ImagingResult(string(ResultComplete))
				enter(m, StateReady)
			}},
		StateMaintenanceMode: {Timeout: noTimeout, Please: pleaseBasic},
		// self_test_running: the self-test gets an hour. A self-test that
		// reports nothing in that time hung: it is recorded and the
		// self-test is net-booted again, selfTestHangLimit times, before
		// the device fails (a hang is no verdict on the board).
		StateSelfTestRunning: {Timeout: 3600 * time.Second, Action: ActionClearPXE, Please: pleaseBasic,
			OnTimeout: selfTestHung,
			Events: map[Event]transition{
				EventSelfTestOK:     selfTestPassed,
				EventFailedSelfTest: on(StateFailedSelfTest),
			}},

		StateFailedPowerCycling:       failed(false),
		StateFailedPXEBooting:         failed(false),
		StateFailedMobileInitStarted:  failed(false),
		StateFailedSUTVerifying:       failed(true),
		StateFailedSUTSDCardVerifying: failed(true),
		StateFailedAndroidDownloading: failed(true),
		StateFailedAndroidExtracting:  failed(true),
		StateFailedAndroidPinging:     failed(true),
		StateFailedB2GDownloading:     failed(true),
		StateFailedB2GExtracting:      failed(true),
		StateFailedB2GPinging:         failed(true),
		StateFailedSelfTest:           failed(false),
		StateFailedHealthChecks:       failed(false),
		StateFailedFlapping:           failed(false),
	}
}

// unknownState is how a stored state the table does not know behaves: no
// timeout, all please_* accepted, as in Mozpool, so it can be rescued.
var unknownState = stateSpec{Timeout: noTimeout, Please: pleaseFull}

func failed(autoSelfTest bool) stateSpec {
	return stateSpec{Timeout: noTimeout, Please: pleaseBasic, Failed: true, AutoSelfTest: autoSelfTest,
		OnEntry: func(m *fsm.DeviceTx) {
			m.Log("statemachine", "device has failed: %s", m.State())
			if s := State(m.State()); s != StateFailedHealthChecks && s != StateFailedFlapping {
				record(m, failureOp(s), s)
			}
			m.ImagingResult(string(ResultFailedBadDevice))
			if autoSelfTest {
				enter(m, StateStartSelfTest)
			}
		}}
}

// enter moves the device into state and runs the state's entry.
func enter(m *fsm.DeviceTx, state State) {
	spec, ok := deviceStates[state]
	if !ok {
		spec = unknownState
	}
	m.Goto(string(state), spread(m.Device(), spec))
	if state != StateReady && state != StateOperationComplete {
		m.Device().Fresh = false // used, or being written
	}
	if spec.OnEntry != nil {
		spec.OnEntry(m)
	}
}

// spread is the timeout of an entry into spec for d, which is about to
// enter it: spec.Timeout less up to spec.Spread of it (see Spread).
func spread(d *fsm.Device, spec stateSpec) time.Duration {
	if spec.Spread <= 0 || spec.Timeout <= 0 {
		return spec.Timeout
	}
	h := fnv.New64a()
	fmt.Fprintf(h, "%s/%d", d.Name, d.Generation)
	frac := float64(h.Sum64()>>11) / (1 << 53)
	return spec.Timeout - time.Duration(frac*spec.Spread*float64(spec.Timeout))
}

func gotoState(state State) func(m *fsm.DeviceTx) {
	return func(m *fsm.DeviceTx) { enter(m, state) }
}

func on(state State) transition {
	return func(m *fsm.DeviceTx, _ fsm.EventArgs) error { enter(m, state); return nil }
}

// clearThen clears a counter and enters state.
func clearThen(counter string, state State) transition {
	return func(m *fsm.DeviceTx, _ fsm.EventArgs) error {
		m.ClearCounter(counter)
		enter(m, state)
		return nil
	}
}

// clobberThen is clearThen for the step that starts writing the SD card:
// from then on the card holds no usable image.
func clobberThen(counter string, state State) transition {
	return func(m *fsm.DeviceTx, _ fsm.EventArgs) error {
		m.ClearCounter(counter)
		m.Device().Image, m.Device().BootConfig = "", ""
		enter(m, state)
		return nil
	}
}

// limitThen increments counter; past limit it enters failedState, else
// retryState.
func limitThen(counter string, limit int, failedState, retryState State) func(m *fsm.DeviceTx) {
	return func(m *fsm.DeviceTx) {
		if m.Inc(counter) > limit {
			enter(m, failedState)
			return
		}
		enter(m, retryState)
	}
}

// unlessShared runs f unless the failure is laid at a suspect relay
// board's door (sharedFault).
func unlessShared(f func(m *fsm.DeviceTx)) func(m *fsm.DeviceTx) {
	return func(m *fsm.DeviceTx) {
		if !sharedFault(m) {
			f(m)
		}
	}
}

// retryPXE is the timeout of an imaging step: retry the PXE boot, up to
// limit times.
func retryPXE(counter string, limit int, failedState State) func(m *fsm.DeviceTx) {
	retry := limitThen(counter, limit, failedState, StatePXEPowerCycling)
	return func(m *fsm.DeviceTx) {
		// The failed state records the last one itself.
		if s := State(m.State()); m.Device().Counters[counter] < limit {
			record(m, failureOp(s), s)
		}
		retry(m)
	}
}

// enterPowerCycling checks what a power cycle needs; the executor does the
// rest. A plain power cycle also drops a stale next image, so that a reboot
// after a failed imaging does not record an image that was never written.
func enterPowerCycling(pxe bool) func(m *fsm.DeviceTx) {
	return func(m *fsm.DeviceTx) {
		d := m.Device()
		if d.RelayInfo == "" {
			m.Log("statemachine", "no relay_info: cannot power-cycle")
			enter(m, StateFailedPowerCycling)
			return
		}
		if !pxe {
			d.NextImage, d.NextBootConfig = "", ""
			return
		}
		if m.PXEConfigFor(d.NextImage) == "" {
			m.Log("statemachine", "no PXE config for image %q on %s", d.NextImage, d.HardwareType)
			enter(m, StateFailedPXEBooting)
		}
	}
}

// rearm handles power_cycle_started: the relay operation of the current
// entry, which waited for its board, has started; the state's timeout
// counts again from now (the command's time), with the same generation so
// that the operation's result still applies.
func rearm(m *fsm.DeviceTx, _ fsm.EventArgs) error {
	m.Rearm(spec(State(m.State())).Timeout)
	m.Log("statemachine", "power cycle started after waiting for the relay board; timeout counts from now")
	return nil
}

func powerCycleFailed(m *fsm.DeviceTx) {
	if sharedFault(m) {
		return
	}
	if m.Inc(counterPowerCycle) > powerCycleLimit {
		enter(m, StateFailedPowerCycling)
		return
	}
	enter(m, State(m.State()))
}

func pingTimeout(m *fsm.DeviceTx) {
	if m.Inc(counterPCPinging) <= pingLimit {
		enter(m, StatePCPinging)
		return
	}
	m.ClearCounter(counterPCPinging)
	if sharedFault(m) {
		return
	}
	record(m, opPing, StatePCPinging)
	if m.Inc(counterPingRounds) > pingRoundsLimit {
		m.Log("statemachine", "no ping after %d power cycles", pingRoundsLimit)
		enter(m, StateFailedPowerCycling)
		return
	}
	enter(m, StatePCPowerCycling)
}

func sdcardFailed(m *fsm.DeviceTx) {
	if m.Device().Counters[counterSUTSDCardVerifying] < sdcardLimit {
		record(m, opImaging, StateSUTSDCardVerifying)
	}
	if m.Inc(counterSUTSDCardVerifying) > sdcardLimit {
		enter(m, StateFailedSUTSDCardVerifying)
		return
	}
	enter(m, StateSUTSDCardVerifying)
}

// selfTestHung is the timeout of self_test_running: the self-test never
// reported. Up to selfTestHangLimit times the hang is recorded and the
// self-test net-booted again; then the device fails.
func selfTestHung(m *fsm.DeviceTx) {
	if m.Inc(counterSelfTestRunning) > selfTestHangLimit {
		enter(m, StateFailedSelfTest)
		return
	}
	record(m, opSelfTest, StateSelfTestRunning)
	m.Log("statemachine", "self-test hung: power-cycling and running it again")
	d := m.Device()
	d.NextImage, d.NextBootConfig = "self-test", ""
	enter(m, StatePXEPowerCycling)
}

// failedEarly handles a board's syslog saying that the current step has
// failed (it reset in the middle of it): the step's timeout runs now
// rather than when it would have passed.
func failedEarly(m *fsm.DeviceTx, _ fsm.EventArgs) error {
	m.Log("statemachine", "the board reset during %s (syslog): the step failed; not waiting for its timeout", m.State())
	spec(State(m.State())).OnTimeout(m)
	return nil
}

// kernelPanic handles the kernel of the image just written panicking:
// the card does not hold a bootable image, so the image is written again
// (kernelPanicLimit times) rather than waiting for a SUT agent that will
// never answer.
func kernelPanic(m *fsm.DeviceTx, _ fsm.EventArgs) error {
	d := m.Device()
	if d.NextImage == "" {
		return fsm.ErrIgnored // not right after an imaging
	}
	m.Log("statemachine", "the new image's kernel panicked (syslog): imaging again")
	if m.Device().Counters[counterKernelPanic] < kernelPanicLimit {
		// Its own kind: an imaging that did not take, not a board that
		// does not answer (kindOf).
		record(m, opImaging, failKernelPanic)
	}
	limitThen(counterKernelPanic, kernelPanicLimit, StateFailedSUTVerifying, StatePXEPowerCycling)(m)
	return nil
}
