package fsm

import (
	"maps"
	"slices"
	"strings"
	"time"
)

// Shared-fault correlation: several boards behind the same relay board
// failing the same way within a window point at the relay board, not at
// the boards. The device machine reports such failures (SharedFault) and
// proofs that a relay board works (SharedOK); this file keeps the tally.
const (
	// SharedFaultBoards distinct boards failing the same way within
	// SharedFaultWindow (scaled by the time scale) make their relay board
	// suspect.
	SharedFaultBoards = 3
	SharedFaultWindow = 10 * time.Minute
	// relayFailuresKept bounds a relay board's tally.
	relayFailuresKept = 64
)

// RelayHealth is what the FSM knows of one relay board's health. Only
// relay boards with recent failures have one.
type RelayHealth struct {
	// Addr is the relay board, host:port as in the devices' relay_info.
	Addr string `json:"addr"`
	// Suspect is set while the relay board is the suspect of a shared
	// fault: Kind is the failure its boards shared, SuspectSince when it
	// became suspect.
	Suspect      bool      `json:"suspect,omitempty"`
	Kind         string    `json:"kind,omitempty"`
	SuspectSince time.Time `json:"suspect_since,omitzero"`
	// Recent are the failures reported within the window, oldest first.
	Recent []RelayFailure `json:"recent,omitempty"`
}

// RelayFailure is one failure of a board that may be its relay board's.
type RelayFailure struct {
	Device string    `json:"device"`
	Kind   string    `json:"kind"`
	At     time.Time `json:"at"`
}

// RelayBoardOf returns the relay board part (host:port or host) of a
// relay_info "host[:port]:bankB:relayR", "" when there is none.
func RelayBoardOf(relayInfo string) string {
	parts := strings.Split(relayInfo, ":")
	if len(parts) < 3 || !strings.HasPrefix(parts[len(parts)-2], "bank") || !strings.HasPrefix(parts[len(parts)-1], "relay") {
		return ""
	}
	return strings.Join(parts[:len(parts)-2], ":")
}

// RelaySuspect reports whether the relay board of relayInfo is suspect.
func (s *State) RelaySuspect(relayInfo string) bool {
	rh := s.RelayHealth[RelayBoardOf(relayInfo)]
	return rh != nil && rh.Suspect
}

// SharedFault reports a failure of kind that the device's relay board may
// have caused, and whether that relay board is now suspect (possibly
// because of this very failure). A failure the relay board did not cause
// costs nothing more: the caller counts it as usual when the relay board
// is not suspect.
func (m *DeviceTx) SharedFault(kind string) bool {
	addr := RelayBoardOf(m.d.RelayInfo)
	if addr == "" {
		return false
	}
	s := m.tx.s
	rh := s.RelayHealth[addr]
	if rh == nil {
		rh = &RelayHealth{Addr: addr}
		s.RelayHealth[addr] = rh
	}
	since := m.tx.at.Add(-s.scaled(SharedFaultWindow))
	rh.Recent = slices.DeleteFunc(rh.Recent, func(f RelayFailure) bool { return f.At.Before(since) })
	rh.Recent = append(rh.Recent, RelayFailure{Device: m.d.Name, Kind: kind, At: m.tx.at})
	if n := len(rh.Recent); n > relayFailuresKept {
		rh.Recent = slices.Clone(rh.Recent[n-relayFailuresKept:])
	}
	if rh.Suspect {
		return true
	}
	boards := map[string]bool{}
	for _, f := range rh.Recent {
		if f.Kind == kind {
			boards[f.Device] = true
		}
	}
	if len(boards) < SharedFaultBoards {
		return false
	}
	rh.Suspect, rh.Kind, rh.SuspectSince = true, kind, m.tx.at
	for _, name := range slices.Sorted(maps.Keys(boards)) {
		m.tx.logDevice(name, "statemachine", "relay board %s is suspect: %d boards behind it failed in %s within %s; their failures there are not counted against them",
			addr, len(boards), kind, s.scaled(SharedFaultWindow))
	}
	return true
}

// SharedOK reports that the device's relay board works (a board behind it
// booted after a power cycle). If it was suspect it no longer is, and wake
// runs for every other device behind it in state waiting, by name.
func (m *DeviceTx) SharedOK(waiting string, wake func(*DeviceTx)) {
	addr := RelayBoardOf(m.d.RelayInfo)
	s := m.tx.s
	rh := s.RelayHealth[addr]
	if rh == nil || !rh.Suspect {
		return
	}
	delete(s.RelayHealth, addr)
	m.Log("statemachine", "relay board %s works again (this board booted): no longer suspect", addr)
	var names []string
	for name, d := range s.Devices {
		if d != m.d && d.State == waiting && RelayBoardOf(d.RelayInfo) == addr {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		other := &DeviceTx{tx: m.tx, d: s.Devices[name]}
		other.Log("statemachine", "relay board %s works again: retrying", addr)
		wake(other)
	}
}
