package fsm

import (
	"maps"
	"slices"
	"time"
)

// History is what the queue has measured, for its ETAs: how long a board
// takes from its claim to ready, per hardware type and image, and how long
// a group holds a board once it is ready. Both are moving averages updated
// in Apply from command times, so every node holds the same figures.
type History struct {
	// Imaging is keyed by hardware key + "\x00" + image, with "\x00reuse"
	// appended for a board that already carried the image and was only
	// power-cycled.
	Imaging map[string]*Mean `json:"imaging,omitempty"`
	Hold    map[string]*Mean `json:"hold,omitempty"` // fair-share group
	// Wanted is, per hardware key, the image and boot config a request
	// last had written on a board of it: what idle boards of that
	// hardware are imaged with in advance (lifeguard).
	Wanted map[string]*Wanted `json:"wanted,omitempty"`
}

// Wanted is an image and boot config requests asked for.
type Wanted struct {
	Image      string `json:"image"`
	BootConfig string `json:"boot_config,omitempty"`
}

// NoteWanted records that a request had image written with bootConfig on
// the device: idle boards of its hardware are imaged so in advance.
func (m *DeviceTx) NoteWanted(image, bootConfig string) {
	h := m.tx.s.History
	if h.Wanted == nil {
		h.Wanted = map[string]*Wanted{}
	}
	h.Wanted[m.d.HardwareType] = &Wanted{Image: image, BootConfig: bootConfig}
}

// Wanted returns what requests last had written on a board of the
// device's hardware (ok false when none has been).
func (m *DeviceTx) Wanted() (Wanted, bool) {
	w, ok := m.tx.s.History.Wanted[m.d.HardwareType]
	if !ok {
		return Wanted{}, false
	}
	return *w, true
}

// Mean is a moving average: the plain mean of the first historyWindow
// samples, then an exponential one with weight 1/historyWindow.
type Mean struct {
	N   int64         `json:"n"`
	Avg time.Duration `json:"avg"`
}

const (
	historyWindow = 20
	// maxHoldGroups bounds the groups whose hold time is remembered; the
	// least observed is forgotten first.
	maxHoldGroups = 1000
	// defaultImaging and defaultHold stand in (scaled) for what has not
	// been measured yet.
	defaultImaging = 5 * time.Minute
	defaultHold    = 30 * time.Minute
)

func newHistory() *History {
	return &History{Imaging: map[string]*Mean{}, Hold: map[string]*Mean{}}
}

func (m *Mean) add(d time.Duration) {
	if d < 0 {
		d = 0
	}
	m.N++
	m.Avg += (d - m.Avg) / time.Duration(min(m.N, historyWindow))
}

func imagingKey(hwKey, image string, reuse bool) string {
	if reuse {
		return hwKey + "\x00" + image + "\x00reuse"
	}
	return hwKey + "\x00" + image
}

func (h *History) observeImaging(hwKey, image string, reuse bool, d time.Duration) {
	k := imagingKey(hwKey, image, reuse)
	m, ok := h.Imaging[k]
	if !ok {
		m = &Mean{}
		h.Imaging[k] = m
	}
	m.add(d)
}

func (h *History) observeHold(group string, d time.Duration) {
	m, ok := h.Hold[group]
	if !ok {
		if len(h.Hold) >= maxHoldGroups {
			h.forgetOneHold()
		}
		m = &Mean{}
		h.Hold[group] = m
	}
	m.add(d)
}

// forgetOneHold drops the group observed least (then the first by name).
func (h *History) forgetOneHold() {
	var victim string
	var least int64 = -1
	for _, g := range slices.Sorted(maps.Keys(h.Hold)) {
		if n := h.Hold[g].N; least < 0 || n < least {
			victim, least = g, n
		}
	}
	delete(h.Hold, victim)
}

// ImagingTime is the expected time from claim to ready of image on
// hardware hwKey (reuse: a board that already carries it is only
// power-cycled): measured; for a reuse not yet measured, the full
// imaging; else the mean over everything measured, or a default.
func (s *State) ImagingTime(hwKey, image string, reuse bool) time.Duration {
	h := s.History
	if m, ok := h.Imaging[imagingKey(hwKey, image, reuse)]; ok {
		return m.Avg
	}
	if m, ok := h.Imaging[imagingKey(hwKey, image, false)]; ok && reuse {
		return m.Avg
	}
	var sum time.Duration
	var n int64
	for _, m := range h.Imaging {
		sum += m.Avg
		n++
	}
	if n > 0 {
		return sum / time.Duration(n)
	}
	return s.scaled(defaultImaging)
}

// HoldTime is how long group is expected to keep a ready board.
func (s *State) HoldTime(group string) time.Duration {
	if m, ok := s.History.Hold[group]; ok {
		return m.Avg
	}
	return s.scaled(defaultHold)
}
