package lifeguard

import "strings"

// State is a state of the device machine. fsm stores it as the string of
// fsm.Device.State; the values are part of the API and never change.
type State string

// The states of the device table (device_states.go).
const (
	StateNew             State = "new"
	StateLockedOut       State = "locked_out"
	StateTroubleshooting State = "troubleshooting"
	StateReady           State = "ready"

	StatePCPowerCycling State = "pc_power_cycling"
	StatePCRebooting    State = "pc_rebooting"
	StatePCSUTRebooting State = "pc_sut_rebooting"
	StatePCPinging      State = "pc_pinging"

	StateStartPXEBoot        State = "start_pxe_boot"
	StateStartSelfTest       State = "start_self_test"
	StateStartMaintenance    State = "start_maintenance"
	StatePXEPowerCycling     State = "pxe_power_cycling"
	StatePXEBooting          State = "pxe_booting"
	StateMobileInitStarted   State = "mobile_init_started"
	StateAndroidDownloading  State = "android_downloading"
	StateAndroidExtracting   State = "android_extracting"
	StateB2GDownloading      State = "b2g_downloading"
	StateB2GExtracting       State = "b2g_extracting"
	StateSUTVerifying        State = "sut_verifying"
	StateSUTVerifyPowerCycle State = "sut_verify_power_cycle"
	StateSUTSDCardVerifying  State = "sut_sdcard_verifying"
	StateOperationComplete   State = "operation_complete"
	StateMaintenanceMode     State = "maintenance_mode"
	StateSelfTestRunning     State = "self_test_running"
	// StateProbation: a device whose self-test passed after a failure,
	// health-checked until it has enough clean checks (health.go).
	StateProbation State = "probation"
	// StateRelayWait: a device whose operation failed behind a suspect
	// relay board waits for it (health.go).
	StateRelayWait State = "relay_wait"
	// StatePXEWait: a device whose boot loader could not fetch its PXE
	// file from a suspect imaging server's TFTP waits for it (health.go).
	StatePXEWait State = "pxe_wait"

	StateFailedPowerCycling       State = "failed_power_cycling"
	StateFailedPXEBooting         State = "failed_pxe_booting"
	StateFailedMobileInitStarted  State = "failed_mobile_init_started"
	StateFailedSUTVerifying       State = "failed_sut_verifying"
	StateFailedSUTSDCardVerifying State = "failed_sut_sdcard_verifying"
	StateFailedAndroidDownloading State = "failed_android_downloading"
	StateFailedAndroidExtracting  State = "failed_android_extracting"
	StateFailedAndroidPinging     State = "failed_android_pinging"
	StateFailedB2GDownloading     State = "failed_b2g_downloading"
	StateFailedB2GExtracting      State = "failed_b2g_extracting"
	StateFailedB2GPinging         State = "failed_b2g_pinging"
	StateFailedSelfTest           State = "failed_self_test"
	// Quarantine (health.go): the device keeps failing and recovering,
	// in health checks or in anything else.
	StateFailedHealthChecks State = "failed_health_checks"
	StateFailedFlapping     State = "failed_flapping"
)

// failedPrefix starts the name of every failed state.
const failedPrefix = "failed_"

// Failed reports whether s is a failed_* state: the device is retired
// until it passes a self-test or an operator steps in.
func (s State) Failed() bool { return strings.HasPrefix(string(s), failedPrefix) }

// Available reports whether a device in s is idle and healthy: a request
// may claim it, and a request that lets it go leaves nothing running.
func (s State) Available() bool { return s == StateReady }

// Event is an event of the device machine: an operator's or a request's
// please_*, a board's report, or the result of a hardware action. fsm
// carries it as the string of fsm.DeviceEvent.Event; the values are part
// of the API (the event route) and never change.
type Event string

// Requests, accepted according to the state's please level.
const (
	EventPleaseSelfTest         Event = "please_self_test"
	EventPleaseStartMaintenance Event = "please_start_maintenance"
	EventPleasePowerCycle       Event = "please_power_cycle"
	EventPleaseImage            Event = "please_image"
)

// Results of the executor's hardware actions.
const (
	// EventFailed is a failed health check of a ready device.
	EventFailed           Event = "failed"
	EventPowerCycleOK     Event = "power_cycle_ok"
	EventPowerCycleFailed Event = "power_cycle_failed"
	// EventPowerCycleStarted: the power cycle of a relay state, which
	// had to wait for its relay board, has left the board's queue; the
	// state's timeout counts again from now (docs/design.md#relay-queue).
	EventPowerCycleStarted Event = "power_cycle_started"
	EventPingOK            Event = "ping_ok"
	EventSUTVerifyOK       Event = "sut_verify_ok"
	EventSUTSDCardOK       Event = "sut_sdcard_ok"
	EventSUTSDCardFailed   Event = "sut_sdcard_failed"
)

// Reports of a board's live image (its second-stage scripts).
const (
	EventMobileInitStarted  Event = "mobile_init_started"
	EventAndroidDownloading Event = "android_downloading"
	EventAndroidExtracting  Event = "android_extracting"
	EventAndroidRebooting   Event = "android_rebooting"
	EventB2GDownloading     Event = "b2g_downloading"
	EventB2GExtracting      Event = "b2g_extracting"
	EventB2GRebooting       Event = "b2g_rebooting"
	EventMaintMode          Event = "maint_mode"
	EventSelfTestRunning    Event = "self_test_running"
	EventSelfTestOK         Event = "self_test_ok"
	EventFailedSelfTest     Event = "failed_self_test"
)

// What a board's own syslog lines tell, as soon as they arrive
// (syslogsignals.go): a failed step is seen at once rather than when its
// state times out.
const (
	// EventBoardRebooted: the boot loader's banner during an imaging
	// step: the board reset in the middle of it.
	EventBoardRebooted Event = "board_rebooted"
	// EventBootHung: the boot loader reported an exception (data abort)
	// during a net boot: the board hangs until it is power-cycled.
	EventBootHung Event = "boot_hung"
	// EventPXEFetchFailed: the boot loader could not fetch the PXE file
	// over TFTP and fell back to the SD card.
	EventPXEFetchFailed Event = "pxe_fetch_failed"
	// EventKernelPanic: the kernel of the image just written panicked.
	EventKernelPanic Event = "kernel_panic"
)

// Result is how an operation ended, reported to the request that holds
// the device (fsm.DeviceTx.ImagingResult; the request's imaging_result).
type Result string

const (
	// ResultComplete: the device is ready with what was asked for.
	ResultComplete Result = "complete"
	// ResultFailedBadDevice: the device failed; another one may do.
	ResultFailedBadDevice Result = "failed-bad-device"
	// ResultFailedBadImage: the image could not be installed (the
	// original's lifeguard could say so; this one does not).
	ResultFailedBadImage Result = "failed-bad-image"
)
