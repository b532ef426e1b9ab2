package fsm

import (
	"maps"
	"slices"
	"strings"
	"time"
)

// Shared-fault correlation: several boards behind the same relay board
// failing the same way within a window point at the relay board, not at
// the boards; several boards of the same imaging server failing to fetch
// their PXE file point at its PXE/TFTP. The device machine reports such
// failures (SharedFault, TFTPFault) and proofs that the shared part works
// (SharedOK, TFTPOK); this file keeps the tallies (the same record,
// RelayHealth, keyed by relay board address or by imaging server).
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
	return m.sharedFault(m.tx.s.RelayHealth, addr, "relay board "+addr, "behind it", kind)
}

// TFTPFault reports a failure of kind at the PXE/TFTP step (the board's
// boot loader could not fetch its PXE file) that the device's imaging
// server may have caused, and whether that server's PXE/TFTP is now
// suspect, as SharedFault does for relay boards.
func (m *DeviceTx) TFTPFault(kind string) bool {
	srv := m.d.ImagingServer
	if srv == "" {
		return false
	}
	return m.sharedFault(m.tx.s.TFTPHealth, srv, "PXE/TFTP of imaging server "+srv, "of it", kind)
}

// TFTPSuspect reports whether the PXE/TFTP of imaging server srv is
// suspect.
func (s *State) TFTPSuspect(srv string) bool {
	th := s.TFTPHealth[srv]
	return th != nil && th.Suspect
}

// sharedFault adds a failure of the device to the tally of the shared
// part key in health (what names it in the log, of how its boards relate
// to it) and reports whether the part is suspect.
func (m *DeviceTx) sharedFault(health map[string]*RelayHealth, key, what, of, kind string) bool {
	s := m.tx.s
	rh := health[key]
	if rh == nil {
		rh = &RelayHealth{Addr: key}
		health[key] = rh
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
		m.tx.logDevice(name, "statemachine", "%s is suspect: %d boards %s failed in %s within %s; their failures there are not counted against them",
			what, len(boards), of, kind, s.scaled(SharedFaultWindow))
	}
	return true
}

// SharedOK reports that the device's relay board works (a board behind it
// booted after a power cycle). If it was suspect it no longer is, and wake
// runs for every other device behind it in state waiting, by name.
func (m *DeviceTx) SharedOK(waiting string, wake func(*DeviceTx)) {
	addr := RelayBoardOf(m.d.RelayInfo)
	m.sharedOK(m.tx.s.RelayHealth, addr, "relay board "+addr, "this board booted", waiting, wake,
		func(d *Device) bool { return RelayBoardOf(d.RelayInfo) == addr })
}

// TFTPOK reports that the PXE/TFTP of the device's imaging server works
// (this board fetched and booted its PXE file). If it was suspect it no
// longer is, and wake runs for every other device of that server in state
// waiting, by name.
func (m *DeviceTx) TFTPOK(waiting string, wake func(*DeviceTx)) {
	srv := m.d.ImagingServer
	m.sharedOK(m.tx.s.TFTPHealth, srv, "PXE/TFTP of imaging server "+srv, "this board fetched and booted its PXE file", waiting, wake,
		func(d *Device) bool { return d.ImagingServer == srv })
}

func (m *DeviceTx) sharedOK(health map[string]*RelayHealth, key, what, proof, waiting string, wake func(*DeviceTx), behind func(*Device) bool) {
	s := m.tx.s
	rh := health[key]
	if rh == nil || !rh.Suspect {
		return
	}
	delete(health, key)
	m.Log("statemachine", "%s works again (%s): no longer suspect", what, proof)
	var names []string
	for name, d := range s.Devices {
		if d != m.d && d.State == waiting && behind(d) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		other := &DeviceTx{tx: m.tx, d: s.Devices[name]}
		other.Log("statemachine", "%s works again: retrying", what)
		wake(other)
	}
}
