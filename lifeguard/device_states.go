package lifeguard

import (
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
	Events map[string]transition
	// Failed marks failed_* states; AutoSelfTest those that bounce into a
	// self-test at once, as in Mozpool.
	Failed       bool
	AutoSelfTest bool
}

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
)

// Counter names (they equal the state names unless stated).
const (
	counterPingRounds = "pc_ping_rounds"
	counterPowerCycle = "power_cycling"
)

// deviceStates is the device state table. The reasons come from Mozpool.
// It is filled in init because its entries refer to enter, which reads it.
var deviceStates map[string]stateSpec

func init() { deviceStates = stateTable() }

func stateTable() map[string]stateSpec {
	return map[string]stateSpec{
		// new: a device just added by inventory sync self-tests on the next
		// tick.
		"new": {Timeout: 0, Please: pleaseFull, OnTimeout: gotoState("start_self_test")},
		// locked_out: frozen by an operator; only a forced change leaves it.
		"locked_out": {Timeout: noTimeout},
		// troubleshooting: parked by an operator, still accepts please_*.
		"troubleshooting": {Timeout: noTimeout, Please: pleaseFull},
		// ready: health-checked every 10 minutes ("to keep load reasonable")
		// unless a request holds it.
		"ready": {Timeout: 600 * time.Second, Action: ActionHealthCheck, Please: pleaseFull,
			OnTimeout: gotoState("ready"),
			Events:    map[string]transition{"failed": on("start_self_test")}},

		// pc_power_cycling: plain reboot; the relay cycle takes ≈ 1–3 s plus
		// the board's queue, so 60 s, retried up to 200 times.
		"pc_power_cycling": {Timeout: 60 * time.Second, Action: ActionPowerCycle,
			OnEntry:   enterPowerCycling(false),
			OnTimeout: powerCycleFailed,
			Events: map[string]transition{
				"power_cycle_ok":     clearThen(counterPowerCycle, "pc_rebooting"),
				"power_cycle_failed": func(m *fsm.DeviceTx, _ fsm.EventArgs) error { powerCycleFailed(m); return nil },
			}},
		// pc_rebooting: wait so u-boot's own ping replies are not taken for
		// the OS coming up.
		"pc_rebooting": {Timeout: 120 * time.Second, OnTimeout: gotoState("pc_pinging")},
		// pc_sut_rebooting: unreachable since SUT reboots were dropped; kept
		// so a stored state still means something.
		"pc_sut_rebooting": {Timeout: 10 * time.Second, OnTimeout: gotoState("sut_verifying")},
		// pc_pinging: ping every 10 s, 12 times, then power-cycle again —
		// at most pingRoundsLimit rounds.
		"pc_pinging": {Timeout: 10 * time.Second, Action: ActionPing, OnTimeout: pingTimeout,
			Events: map[string]transition{"ping_ok": func(m *fsm.DeviceTx, _ fsm.EventArgs) error {
				m.ClearCounter("pc_pinging")
				m.ClearCounter(counterPingRounds)
				enter(m, "operation_complete")
				return nil
			}}},

		"start_pxe_boot": {Timeout: noTimeout, OnEntry: func(m *fsm.DeviceTx) {
			m.ClearCounters()
			enter(m, "pxe_power_cycling")
		}},
		// start_self_test: net-boot the self-test image when this hardware
		// has a PXE config for it, else a plain reboot and ping.
		"start_self_test": {Timeout: noTimeout, OnEntry: func(m *fsm.DeviceTx) {
			m.ClearCounters()
			if m.PXEConfigFor("self-test") != "" {
				d := m.Device()
				d.NextImage, d.NextBootConfig = "self-test", ""
				enter(m, "pxe_power_cycling")
				return
			}
			enter(m, "pc_power_cycling")
		}},
		// start_maintenance: the original stuck here forever when the
		// maintenance image or its PXE config was missing; now it fails.
		"start_maintenance": {Timeout: noTimeout, OnEntry: func(m *fsm.DeviceTx) {
			m.ClearCounters()
			if !m.ImageExists("maintenance") || m.PXEConfigFor("maintenance") == "" {
				m.Log("statemachine", "cannot start maintenance: no maintenance image or PXE config for this hardware")
				enter(m, "failed_pxe_booting")
				return
			}
			d := m.Device()
			d.NextImage, d.NextBootConfig = "maintenance", ""
			enter(m, "pxe_power_cycling")
		}},
		// pxe_power_cycling: write the PXE file for the next image, then
		// power-cycle. Without a PXE config the device fails at once, and
		// (unlike the original) is not power-cycled afterwards.
		"pxe_power_cycling": {Timeout: 60 * time.Second, Action: ActionPXEPowerCycle,
			OnEntry:   enterPowerCycling(true),
			OnTimeout: powerCycleFailed,
			Events: map[string]transition{
				"power_cycle_ok":     clearThen(counterPowerCycle, "pxe_booting"),
				"power_cycle_failed": func(m *fsm.DeviceTx, _ fsm.EventArgs) error { powerCycleFailed(m); return nil },
			}},
		// pxe_booting: a panda net-boots in ≈ 90 s; twice that, 30 tries.
		"pxe_booting": {Timeout: 180 * time.Second, OnTimeout: retryPXE("pxe_booting", pxeBootLimit, "failed_pxe_booting"),
			Events: map[string]transition{"mobile_init_started": clearThen("pxe_booting", "mobile_init_started")}},
		// mobile_init_started: the live image is up; the PXE file goes so a
		// reboot uses the SD card; the second stage reports within 10 s.
		"mobile_init_started": {Timeout: 10 * time.Second, Action: ActionClearPXE,
			OnTimeout: retryPXE("mobile_init_started", mobileInitLimit, "failed_mobile_init_started"),
			Events: map[string]transition{
				"android_downloading": clearThen("mobile_init_started", "android_downloading"),
				"b2g_downloading":     clearThen("mobile_init_started", "b2g_downloading"),
				"maint_mode": func(m *fsm.DeviceTx, _ fsm.EventArgs) error {
					m.ClearCounter("mobile_init_started")
					m.Device().Image, m.Device().BootConfig = "", ""
					enter(m, "maintenance_mode")
					return nil
				},
				"self_test_running": func(m *fsm.DeviceTx, _ fsm.EventArgs) error {
					m.ClearCounter("mobile_init_started")
					d := m.Device()
					d.Image, d.BootConfig, d.NextImage, d.NextBootConfig = "", "", "", ""
					enter(m, "self_test_running")
					return nil
				},
			}},
		"android_downloading": {Timeout: 180 * time.Second, Action: ActionClearPXE,
			OnTimeout: retryPXE("android_downloading", downloadLimit, "failed_android_downloading"),
			Events:    map[string]transition{"android_extracting": clobberThen("android_downloading", "android_extracting")}},
		"android_extracting": {Timeout: 600 * time.Second,
			OnTimeout: retryPXE("android_extracting", extractLimit, "failed_android_extracting"),
			Events:    map[string]transition{"android_rebooting": clearThen("android_extracting", "sut_verifying")}},
		"b2g_downloading": {Timeout: 180 * time.Second, Action: ActionClearPXE,
			OnTimeout: retryPXE("b2g_downloading", downloadLimit, "failed_b2g_downloading"),
			Events:    map[string]transition{"b2g_extracting": clobberThen("b2g_downloading", "b2g_extracting")}},
		"b2g_extracting": {Timeout: 300 * time.Second,
			OnTimeout: retryPXE("b2g_extracting", extractLimit, "failed_b2g_extracting"),
			Events:    map[string]transition{"b2g_rebooting": clearThen("b2g_extracting", "sut_verifying")}},
		// sut_verifying: the agent gets 45 s per try; every 10th failure
		// power-cycles the board; 30 failures retire it.
		"sut_verifying": {Timeout: 45 * time.Second, Action: ActionSUTVerify,
			OnTimeout: func(m *fsm.DeviceTx) {
				switch c := m.Inc("sut_verifying"); {
				case c > sutVerifyLimit:
					enter(m, "failed_sut_verifying")
				case c%sutVerifyCycleEvery == 0:
					enter(m, "sut_verify_power_cycle")
				default:
					enter(m, "sut_verifying")
				}
			},
			Events: map[string]transition{"sut_verify_ok": clearThen("sut_verifying", "sut_sdcard_verifying")}},
		"sut_verify_power_cycle": {Timeout: 60 * time.Second, Action: ActionRelayPowerCycle,
			OnTimeout: limitThen("sut_verify_power_cycle", sutPowerCycleLimit, "failed_sut_verifying", "sut_verify_power_cycle"),
			Events:    map[string]transition{"power_cycle_ok": on("sut_verifying")}},
		// sut_sdcard_verifying: the check can take minutes (13 commands × 15 s).
		"sut_sdcard_verifying": {Timeout: 200 * time.Second, Action: ActionCheckSDCard,
			OnTimeout: sdcardFailed,
			Events: map[string]transition{
				"sut_sdcard_ok":     clearThen("sut_sdcard_verifying", "operation_complete"),
				"sut_sdcard_failed": func(m *fsm.DeviceTx, _ fsm.EventArgs) error { sdcardFailed(m); return nil },
			}},
		// operation_complete: what was being installed is now on the card.
		"operation_complete": {Timeout: 60 * time.Second, OnTimeout: gotoState("operation_complete"),
			OnEntry: func(m *fsm.DeviceTx) {
				d := m.Device()
				if d.NextImage != "" {
					d.Image, d.BootConfig = d.NextImage, d.NextBootConfig
					d.NextImage, d.NextBootConfig = "", ""
				}
				m.ImagingResult("complete")
				enter(m, "ready")
			}},
		"maintenance_mode": {Timeout: noTimeout, Please: pleaseBasic},
		// self_test_running: the self-test gets an hour.
		"self_test_running": {Timeout: 3600 * time.Second, Action: ActionClearPXE, Please: pleaseBasic,
			OnTimeout: gotoState("failed_self_test"),
			Events: map[string]transition{
				"self_test_ok":     on("ready"),
				"failed_self_test": on("failed_self_test"),
			}},

		"failed_power_cycling":        failed(false),
		"failed_pxe_booting":          failed(false),
		"failed_mobile_init_started":  failed(false),
		"failed_sut_verifying":        failed(true),
		"failed_sut_sdcard_verifying": failed(true),
		"failed_android_downloading":  failed(true),
		"failed_android_extracting":   failed(true),
		"failed_android_pinging":      failed(true),
		"failed_b2g_downloading":      failed(true),
		"failed_b2g_extracting":       failed(true),
		"failed_b2g_pinging":          failed(true),
		"failed_self_test":            failed(false),
	}
}

// unknownState is how a stored state the table does not know behaves: no
// timeout, all please_* accepted, as in Mozpool, so it can be rescued.
var unknownState = stateSpec{Timeout: noTimeout, Please: pleaseFull}

func failed(autoSelfTest bool) stateSpec {
	return stateSpec{Timeout: noTimeout, Please: pleaseBasic, Failed: true, AutoSelfTest: autoSelfTest,
		OnEntry: func(m *fsm.DeviceTx) {
			m.Log("statemachine", "device has failed: %s", m.State())
			m.ImagingResult("failed-bad-device")
			if autoSelfTest {
				enter(m, "start_self_test")
			}
		}}
}

// enter moves the device into state and runs the state's entry.
func enter(m *fsm.DeviceTx, state string) {
	spec, ok := deviceStates[state]
	if !ok {
		spec = unknownState
	}
	m.Goto(state, spec.Timeout)
	if spec.OnEntry != nil {
		spec.OnEntry(m)
	}
}

func gotoState(state string) func(m *fsm.DeviceTx) {
	return func(m *fsm.DeviceTx) { enter(m, state) }
}

func on(state string) transition {
	return func(m *fsm.DeviceTx, _ fsm.EventArgs) error { enter(m, state); return nil }
}

// clearThen clears a counter and enters state.
func clearThen(counter, state string) transition {
	return func(m *fsm.DeviceTx, _ fsm.EventArgs) error {
		m.ClearCounter(counter)
		enter(m, state)
		return nil
	}
}

// clobberThen is clearThen for the step that starts writing the SD card:
// from then on the card holds no usable image.
func clobberThen(counter, state string) transition {
	return func(m *fsm.DeviceTx, _ fsm.EventArgs) error {
		m.ClearCounter(counter)
		m.Device().Image, m.Device().BootConfig = "", ""
		enter(m, state)
		return nil
	}
}

// limitThen increments counter; past limit it enters failedState, else
// retryState.
func limitThen(counter string, limit int, failedState, retryState string) func(m *fsm.DeviceTx) {
	return func(m *fsm.DeviceTx) {
		if m.Inc(counter) > limit {
			enter(m, failedState)
			return
		}
		enter(m, retryState)
	}
}

// retryPXE is the timeout of an imaging step: retry the PXE boot, up to
// limit times.
func retryPXE(counter string, limit int, failedState string) func(m *fsm.DeviceTx) {
	return limitThen(counter, limit, failedState, "pxe_power_cycling")
}

// enterPowerCycling checks what a power cycle needs; the executor does the
// rest. A plain power cycle also drops a stale next image, so that a reboot
// after a failed imaging does not record an image that was never written.
func enterPowerCycling(pxe bool) func(m *fsm.DeviceTx) {
	return func(m *fsm.DeviceTx) {
		d := m.Device()
		if d.RelayInfo == "" {
			m.Log("statemachine", "no relay_info: cannot power-cycle")
			enter(m, "failed_power_cycling")
			return
		}
		if !pxe {
			d.NextImage, d.NextBootConfig = "", ""
			return
		}
		if m.PXEConfigFor(d.NextImage) == "" {
			m.Log("statemachine", "no PXE config for image %q on %s", d.NextImage, d.HardwareType)
			enter(m, "failed_pxe_booting")
		}
	}
}

func powerCycleFailed(m *fsm.DeviceTx) {
	if m.Inc(counterPowerCycle) > powerCycleLimit {
		enter(m, "failed_power_cycling")
		return
	}
	enter(m, m.State())
}

func pingTimeout(m *fsm.DeviceTx) {
	if m.Inc("pc_pinging") <= pingLimit {
		enter(m, "pc_pinging")
		return
	}
	m.ClearCounter("pc_pinging")
	if m.Inc(counterPingRounds) > pingRoundsLimit {
		m.Log("statemachine", "no ping after %d power cycles", pingRoundsLimit)
		enter(m, "failed_power_cycling")
		return
	}
	enter(m, "pc_power_cycling")
}

func sdcardFailed(m *fsm.DeviceTx) {
	if m.Inc("sut_sdcard_verifying") > sdcardLimit {
		enter(m, "failed_sut_sdcard_verifying")
		return
	}
	enter(m, "sut_sdcard_verifying")
}
