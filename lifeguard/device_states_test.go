package lifeguard

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/fsm"
)

// specStates are Mozpool 4.2.1's device states that are not failed_* states.
var specStates = []State{
	StateNew, StateLockedOut, StateTroubleshooting, StateReady,
	StatePCPowerCycling, StatePCRebooting, StatePCSUTRebooting, StatePCPinging,
	StateStartPXEBoot, StateStartSelfTest, StateStartMaintenance,
	StatePXEPowerCycling, StatePXEBooting, StateMobileInitStarted,
	StateAndroidDownloading, StateAndroidExtracting, StateB2GDownloading, StateB2GExtracting,
	StateSUTVerifying, StateSUTVerifyPowerCycle, StateSUTSDCardVerifying,
	StateOperationComplete, StateMaintenanceMode, StateSelfTestRunning,
	StateProbation, StateRelayWait, StatePXEWait,
}

// specFailed maps each failed state of Mozpool 4.2.1 to whether it bounces into
// a self-test.
var specFailed = map[State]bool{
	StateFailedPowerCycling:       false,
	StateFailedPXEBooting:         false,
	StateFailedMobileInitStarted:  false,
	StateFailedSUTVerifying:       true,
	StateFailedSUTSDCardVerifying: true,
	StateFailedAndroidDownloading: true,
	StateFailedAndroidExtracting:  true,
	StateFailedAndroidPinging:     true,
	StateFailedB2GDownloading:     true,
	StateFailedB2GExtracting:      true,
	StateFailedB2GPinging:         true,
	StateFailedSelfTest:           false,
	StateFailedHealthChecks:       false,
	StateFailedFlapping:           false,
}

// tableStates lists the table's states, sorted.
func tableStates() []State { return slices.Sorted(maps.Keys(deviceStates)) }

// pleaseEvents are the four please_* events.
var pleaseEvents = []Event{EventPleaseSelfTest, EventPleaseStartMaintenance, EventPleasePowerCycle, EventPleaseImage}

// allEvents is every event some state accepts, the please_* events and a
// few that none accepts.
func allEvents() []Event {
	set := map[Event]bool{"": true, "bogus": true, "PLEASE_IMAGE": true, "free": true, "timeout": true}
	for _, eventStep := range pleaseEvents {
		set[eventStep] = true
	}
	for _, s := range deviceStates {
		for eventStep := range s.Events {
			set[eventStep] = true
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// argsFor gives please_image valid arguments; other events take none.
func argsFor(event Event) fsm.EventArgs {
	if event == EventPleaseImage {
		return pleaseImageArgs("b2g", b2gBootConfig)
	}
	return fsm.EventArgs{}
}

// failureBudget is how many failures in a row state's counters allow before the
// device gives up.
func failureBudget(state State) int {
	switch state {
	case StatePCPowerCycling, StatePXEPowerCycling:
		return powerCycleLimit
	case StatePCPinging:
		return (pingLimit+1)*(pingRoundsLimit+1) - 1
	case StatePXEBooting:
		return pxeBootLimit
	case StateMobileInitStarted:
		return mobileInitLimit
	case StateAndroidDownloading, StateB2GDownloading:
		return downloadLimit
	case StateAndroidExtracting, StateB2GExtracting:
		return extractLimit
	case StateSUTVerifying:
		return sutVerifyLimit
	case StateSUTVerifyPowerCycle:
		return sutPowerCycleLimit
	case StateSUTSDCardVerifying:
		return sdcardLimit
	}
	return 2
}

func TestDeviceStates_MatchSpec(t *testing.T) {
	want := append(slices.Collect(maps.Keys(specFailed)), specStates...)
	slices.Sort(want)
	require.Equal(t, want, tableStates(), "states of the table (want Mozpool's, got table)")
	for _, s := range want {
		require.True(t, Machine{}.Known(string(s)), "Known(%s) = false, want true", s)
	}
	for _, s := range []string{"", "off", "free", "unknown", "FAILED_POWER_CYCLING"} {
		require.False(t, Machine{}.Known(s), "Known(%q) = true, want false", s)
	}
}

func TestDeviceStates_Shape(t *testing.T) {
	for _, name := range tableStates() {
		s := deviceStates[name]
		t.Run(string(name), func(t *testing.T) {
			hasTimeout := s.Timeout != noTimeout
			require.True(t, s.Timeout >= 0 || !hasTimeout, "state %s: timeout %v", name, s.Timeout)
			require.Equal(t, hasTimeout, s.OnTimeout != nil,
				"state %s: has a timeout = %v but has an OnTimeout = %v", name, hasTimeout, s.OnTimeout != nil)
			start := strings.HasPrefix(string(name), "start_")
			if start {
				require.NotNil(t, s.OnEntry, "state %s: a start_* state must move on from its entry", name)
				require.False(t, hasTimeout, "state %s: a start_* state needs no timeout", name)
			}
			require.True(t, hasTimeout || s.Please != pleaseNone || start || name == StateLockedOut,
				"state %s: no timeout, no please_* and no entry that leaves: a device would be stuck", name)
			for eventStep, tr := range s.Events {
				require.NotNil(t, tr, "state %s: event %s has no transition", name, eventStep)
				require.False(t, slices.Contains(pleaseEvents, eventStep), "state %s: %s belongs in Please", name, eventStep)
			}

			auto, failed := specFailed[name]
			require.Equal(t, failed, name.Failed(), "%s.Failed()", name)
			require.Equal(t, failed, IsFailed(string(name)), "IsFailed(%s)", name)
			require.Equal(t, failed, s.Failed, "state %s: Failed = %v, want %v", name, s.Failed, failed)
			require.Equal(t, auto, s.AutoSelfTest, "state %s: AutoSelfTest = %v, want %v", name, s.AutoSelfTest, auto)
			if failed {
				require.Equal(t, noTimeout, s.Timeout, "failed state %s has a timeout", name)
				require.Equal(t, pleaseBasic, s.Please, "failed state %s: accepts %v, want PLEASE-BASIC", name, s.Please)
				require.Empty(t, s.Events, "failed state %s accepts events", name)
				require.NotNil(t, s.OnEntry, "failed state %s must report its failure on entry", name)
			}
		})
	}
}

// The states that accept please_* events, as in Mozpool 4.2.1.
func TestDeviceStates_Please(t *testing.T) {
	want := map[State]please{
		StateNew: pleaseFull, StateTroubleshooting: pleaseFull, StateReady: pleaseFull,
		StateMaintenanceMode: pleaseBasic, StateSelfTestRunning: pleaseBasic, StateProbation: pleaseBasic, StateRelayWait: pleaseBasic, StatePXEWait: pleaseBasic,
	}
	for f := range specFailed {
		want[f] = pleaseBasic
	}
	for _, name := range tableStates() {
		require.Equal(t, want[name], deviceStates[name].Please, "state %s accepts please level %d, want %d", name, deviceStates[name].Please, want[name])
	}
	require.Equal(t, pleaseFull, unknownState.Please, "an unrecognised state accepts all please_*")
	require.Equal(t, noTimeout, unknownState.Timeout)
}

func TestStates(t *testing.T) {
	infos := States()
	names := make([]State, len(infos))
	for i, info := range infos {
		names[i] = info.Name
	}
	require.Equal(t, tableStates(), names, "States() names (want table, got States)")
	for _, info := range infos {
		s := deviceStates[info.Name]
		if s.Timeout == noTimeout {
			require.Nil(t, info.TimeoutSecs, "state %s", info.Name)
		} else {
			require.NotNil(t, info.TimeoutSecs, "state %s", info.Name)
			require.Equal(t, s.Timeout.Seconds(), *info.TimeoutSecs, "state %s", info.Name)
		}
		require.Equal(t, s.Failed, info.Failed, "state %s", info.Name)
		require.Equal(t, s.Action.String(), info.Action, "state %s", info.Name)
		wantEvents := append([]Event{}, slices.Sorted(maps.Keys(s.Events))...)
		require.Equal(t, wantEvents, info.Events, "state %s", info.Name)
		wantPlease := map[please][]Event{pleaseNone: {}, pleaseBasic: pleaseEvents[:2], pleaseFull: pleaseEvents}[s.Please]
		require.Equal(t, wantPlease, info.Please, "state %s", info.Name)
	}
	require.Equal(t, ActionNone, ActionFor("off"), "ActionFor(unknown state)")
	require.Equal(t, ActionPXEPowerCycle, ActionFor(string(StatePXEPowerCycling)))
	require.Equal(t, ActionPXEPowerCycle, StatePXEPowerCycling.Action())
}

// labVariants are the labs and devices the exhaustive tests run on: the
// entries of start_self_test, start_maintenance and the power-cycling states
// branch on them.
var labVariants = []struct {
	name string
	opts []rigOption
	dev  string
}{
	{"full", nil, pandaA},
	{"no self-test pxe", []rigOption{withoutPXE("self-test")}, pandaA},
	{"no maintenance image", []rigOption{withoutImage("maintenance")}, pandaA},
	{"no relay", nil, pandaNoRelay},
}

// requireResting checks where a device came to rest after one command: in
// a state of the table, not a start_* state (which has no timeout and so
// would be stuck), with a deadline exactly when the state has a timeout;
// every state entered on the way is in the table too.
func requireResting(t *testing.T, r *rig, dev string, mark int, from State, event Event) {
	t.Helper()
	d := r.device(dev)
	require.True(t, Machine{}.Known(d.State), "Handle(%s, %s) = %s, want a state of the table", from, event, d.State)
	require.False(t, strings.HasPrefix(d.State, "start_"), "Handle(%s, %s) = %s, want the start state left", from, event, d.State)
	require.Equal(t, deviceStates[State(d.State)].Timeout == noTimeout, d.StateDeadline.IsZero(),
		"Handle(%s, %s) = %s with deadline %v", from, event, d.State, d.StateDeadline)
	for _, s := range r.entered(dev, mark) {
		require.True(t, Machine{}.Known(string(s)), "Handle(%s, %s) entered %s, want a state of the table", from, event, s)
	}
}

// TestDeviceStates_TargetsExist drives every state with every event and
// its timeout, with its counters fresh, near their budget, at it and past
// it, and checks that the device always lands in a state of the table.
func TestDeviceStates_TargetsExist(t *testing.T) {
	events := allEvents()
	for _, v := range labVariants {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			for _, state := range tableStates() {
				t.Run(string(state), func(t *testing.T) {
					base := newRig(t, v.opts...)
					n := failureBudget(state)
					probe := map[int]bool{0: true, n - 1: true, n: true, n + 1: true}
					for k := 0; k <= n+1; k++ {
						if probe[k] {
							for _, e := range events {
								c := base.clone(t)
								c.forceFromCurrent(v.dev, state)
								from, mark := c.state(v.dev), c.mark()
								if e == "timeout" {
									c.timeout(v.dev)
								} else {
									c.event(v.dev, e, argsFor(e))
								}
								requireResting(t, c, v.dev, mark, from, e)
							}
						}
						// One more failure of the state: k+1 timeouts so far.
						base.forceFromCurrent(v.dev, state)
						from, mark := base.state(v.dev), base.mark()
						base.timeout(v.dev)
						requireResting(t, base, v.dev, mark, from, "timeout")
					}
				})
			}
		})
	}
}

// Every start_* state moves on in its entry, whatever the lab lacks.
func TestDeviceStates_StartStatesLeave(t *testing.T) {
	for _, v := range labVariants {
		for _, state := range []State{StateStartPXEBoot, StateStartSelfTest, StateStartMaintenance} {
			t.Run(v.name+"/"+string(state), func(t *testing.T) {
				r := newRig(t, v.opts...)
				mark := r.mark()
				got := r.force(v.dev, StateNew, state)
				require.NotEqual(t, state, got.State, "Force(new, %s) stayed in %s", state, got.State)
				requireResting(t, r, v.dev, mark, StateNew, Event("state-change to "+state))
				require.Equal(t, state, r.entered(v.dev, mark)[0], "first state entered")
			})
		}
	}
}

// TestFailedStates: failed states accept only PLEASE-BASIC, have no
// deadline, and the self-test-retrying ones start a self-test at once.
func TestFailedStates(t *testing.T) {
	for _, failed := range slices.Sorted(maps.Keys(specFailed)) {
		t.Run(string(failed), func(t *testing.T) {
			if specFailed[failed] {
				r := newRig(t)
				mark := r.mark()
				got := r.force(pandaA, StateNew, failed)
				require.Equal(t, StatePXEPowerCycling, got.State, "Force(new, %s) = %s, want pxe_power_cycling", failed, got.State)
				require.Equal(t, []State{failed, StateStartSelfTest, StatePXEPowerCycling}, r.entered(pandaA, mark))
				require.Equal(t, "self-test", r.device(pandaA).NextImage, "next image after %s", failed)

				r = newRig(t, withoutPXE("self-test"))
				mark = r.mark()
				got = r.force(pandaA, StateNew, failed)
				require.Equal(t, StatePCPowerCycling, got.State, "Force(new, %s) without a self-test PXE config = %s, want pc_power_cycling", failed, got.State)
				require.Equal(t, []State{failed, StateStartSelfTest, StatePCPowerCycling}, r.entered(pandaA, mark))
				return
			}

			r := newRig(t)
			got := r.force(pandaA, StateNew, failed)
			require.Equal(t, failed, got.State, "Force(new, %s) = %s, want it to stay", failed, got.State)
			d := r.device(pandaA)
			require.True(t, d.StateDeadline.IsZero(), "failed state %s has deadline %v", failed, d.StateDeadline)

			for _, e := range allEvents() {
				if e == "timeout" || e == EventPleaseSelfTest || e == EventPleaseStartMaintenance {
					continue
				}
				got := r.event(pandaA, e, argsFor(e))
				require.True(t, got.Ignored, "Handle(%s, %s) not ignored (now %s)", failed, e, got.State)
				require.Equal(t, failed, got.State, "Handle(%s, %s) = %s, want %s", failed, e, got.State, failed)
			}
			res := r.timeout(pandaA)
			require.True(t, res.Ignored, "Handle(%s, timeout) not ignored", failed)
			require.Equal(t, failed, res.State, "Handle(%s, timeout) = %s, want %s", failed, res.State, failed)
			require.Equal(t, d.Generation, r.device(pandaA).Generation, "generation after ignored events")

			for _, tc := range []struct {
				event Event
				want  State
				next  string
			}{
				{EventPleaseSelfTest, StatePXEPowerCycling, "self-test"},
				{EventPleaseStartMaintenance, StatePXEPowerCycling, "maintenance"},
			} {
				c := r.clone(t)
				got := c.event(pandaA, tc.event, fsm.EventArgs{})
				require.False(t, got.Ignored, "Handle(%s, %s) ignored", failed, tc.event)
				require.Equal(t, tc.want, got.State, "Handle(%s, %s) = %s, want %s", failed, tc.event, got.State, tc.want)
				require.Equal(t, tc.next, c.device(pandaA).NextImage, "next image after Handle(%s, %s)", failed, tc.event)
			}
		})
	}
}
