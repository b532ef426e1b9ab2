package lifeguard

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/mozpool/mozpool/fsm"
)

// Machine is the device state machine: the table in device_states.go run
// by fsm.Apply. It implements fsm.DeviceMachine and holds no state.
type Machine struct{}

var _ fsm.DeviceMachine = Machine{}

func spec(state State) stateSpec {
	if s, ok := deviceStates[state]; ok {
		return s
	}
	return unknownState
}

// Initial is the state of a device new to the inventory: it self-tests
// on its first tick.
func (Machine) Initial() (string, time.Duration) {
	return string(StateNew), spec(StateNew).Timeout
}

// Known reports whether state is in the table.
func (Machine) Known(state string) bool {
	_, ok := deviceStates[State(state)]
	return ok
}

// Available reports whether a device in state may be claimed by a request.
func (Machine) Available(state string) bool { return State(state).Available() }

// Trust grades a device's history for the queue (see trust).
func (Machine) Trust(history []fsm.Outcome) int { return trust(history) }

// Registered handles a board announcing itself: a new board starts its
// self-test at once.
func (m Machine) Registered(tx *fsm.DeviceTx) error {
	if State(tx.State()) != StateNew {
		return nil
	}
	return m.Event(tx, string(EventPleaseSelfTest), fsm.EventArgs{})
}

// Event handles event in the device's current state.
func (Machine) Event(m *fsm.DeviceTx, event string, args fsm.EventArgs) error {
	s := spec(State(m.State()))
	switch ev := Event(event); ev {
	case EventPleaseSelfTest:
		if s.Please >= pleaseBasic {
			resetHistory(m)
			enter(m, StateStartSelfTest)
			return nil
		}
	case EventPleaseStartMaintenance:
		if s.Please >= pleaseBasic {
			enter(m, StateStartMaintenance)
			return nil
		}
	case EventPleasePowerCycle:
		if s.Please >= pleaseFull {
			d := m.Device()
			d.NextImage, d.NextBootConfig = "", ""
			enter(m, StatePCPowerCycling)
			return nil
		}
	case EventPleaseImage:
		if s.Please >= pleaseFull {
			return pleaseImage(m, args)
		}
	default:
		if t, ok := s.Events[ev]; ok {
			return t(m, args)
		}
	}
	return fsm.ErrIgnored
}

// pleaseImage sets the next image and boot config and starts a PXE boot,
// if this hardware has a PXE config for the image; otherwise the device
// stays where it is (the original answered 200 and logged it).
func pleaseImage(m *fsm.DeviceTx, args fsm.EventArgs) error {
	if args.Image == nil || *args.Image == "" {
		return fmt.Errorf("%w: please_image needs an image", fsm.ErrInvalid)
	}
	if len(args.BootConfig) == 0 {
		return fmt.Errorf("%w: please_image needs a boot_config", fsm.ErrInvalid)
	}
	var bootConfig string
	if err := json.Unmarshal(args.BootConfig, &bootConfig); err != nil {
		return fmt.Errorf("%w: boot_config must be a string", fsm.ErrInvalid)
	}
	image := *args.Image
	if m.PXEConfigFor(image) == "" {
		m.Log("statemachine", "cannot image device with %q: no PXE config for this hardware", image)
		return nil
	}
	d := m.Device()
	if m.Claimed() {
		m.NoteWanted(image, bootConfig)
		if d.Fresh && State(m.State()) == StateReady && d.Image == image && d.BootConfig == bootConfig {
			m.Log("statemachine", "carries %s imaged in advance and unused since: handed out without imaging again", image)
			d.Fresh = false
			enter(m, StateOperationComplete)
			return nil
		}
	}
	m.Log("statemachine", "imaging with %s", image)
	d.NextImage, d.NextBootConfig = image, bootConfig
	enter(m, StateStartPXEBoot)
	return nil
}

// Timeout handles the passing of the deadline of the current state.
func (Machine) Timeout(m *fsm.DeviceTx) {
	s := spec(State(m.State()))
	if s.OnTimeout == nil {
		m.Log("statemachine", "timeout in state %s, which has no timeout handler", m.State())
		m.ClearDeadline()
		return
	}
	s.OnTimeout(m)
}

// Force enters state unconditionally (a forced state change).
func (Machine) Force(m *fsm.DeviceTx, state string) {
	resetHistory(m)
	enter(m, State(state))
}

// Action is the hardware action of the state (ActionNone for states the
// table does not know).
func (s State) Action() Action { return spec(s).Action }

// ActionFor is the hardware action of a state as fsm stores it.
func ActionFor(state string) Action { return State(state).Action() }

// StateInfo describes one state for the API.
type StateInfo struct {
	Name        State    `json:"name"`
	TimeoutSecs *float64 `json:"timeout_secs"`
	Action      string   `json:"action"`
	Please      []Event  `json:"accepts_please"`
	Events      []Event  `json:"events"`
	Failed      bool     `json:"failed"`
}

// States lists the table, sorted by name.
func States() []StateInfo {
	out := make([]StateInfo, 0, len(deviceStates))
	for name, s := range deviceStates {
		info := StateInfo{Name: name, Action: s.Action.String(), Failed: s.Failed, Please: []Event{}, Events: []Event{}}
		if s.Timeout >= 0 {
			secs := s.Timeout.Seconds()
			info.TimeoutSecs = &secs
		}
		if s.Please >= pleaseBasic {
			info.Please = append(info.Please, EventPleaseSelfTest, EventPleaseStartMaintenance)
		}
		if s.Please >= pleaseFull {
			info.Please = append(info.Please, EventPleasePowerCycle, EventPleaseImage)
		}
		for ev := range s.Events {
			info.Events = append(info.Events, ev)
		}
		slices.Sort(info.Events)
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// IsFailed reports whether state (as fsm stores it) is a failed_* state.
func IsFailed(state string) bool { return State(state).Failed() }
