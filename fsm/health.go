package fsm

import "time"

// HistoryLen is how many outcomes a device's history keeps; older ones
// are dropped.
const HistoryLen = 24

// Outcome is one entry of a device's history: an operation the device
// went through and how it ended. The lifeguard machine records them
// inside Apply, stamped with the command's time, so every node keeps the
// same history.
type Outcome struct {
	At time.Time `json:"at"`
	// Op is the operation: "boot" (a net boot reaching the live image),
	// "imaging", "self_test", "health_check", "ping", "power_cycle", or
	// "reset" (an operator's rescue: what came before no longer counts
	// against the device).
	Op string `json:"op"`
	// Fail is the failure kind, usually the state the operation failed
	// in; empty for a success.
	Fail string `json:"fail,omitempty"`
}

// OK reports whether the outcome is a success.
func (o Outcome) OK() bool { return o.Fail == "" }

// OpReset is the Op of the marker an operator's rescue leaves.
const OpReset = "reset"

// Record appends an outcome to the device's history (fail "" for a
// success), dropping the oldest beyond HistoryLen.
func (m *DeviceTx) Record(op, fail string) {
	d := m.d
	d.History = append(d.History, Outcome{At: m.tx.at, Op: op, Fail: fail})
	if n := len(d.History); n > HistoryLen {
		d.History = append([]Outcome(nil), d.History[n-HistoryLen:]...)
	}
	delete(m.tx.s.Queue.trust, d.Name)
}

// SinceReset returns the outcomes after the newest reset marker.
func SinceReset(h []Outcome) []Outcome {
	for i := len(h) - 1; i >= 0; i-- {
		if h[i].Op == OpReset {
			return h[i+1:]
		}
	}
	return h
}

// HealthScore is 0..100: the share of successes among the outcomes
// since the last reset, 100 with none. It depends on the history alone.
func HealthScore(h []Outcome) int {
	h = SinceReset(h)
	if len(h) == 0 {
		return 100
	}
	ok := 0
	for _, o := range h {
		if o.OK() {
			ok++
		}
	}
	return (200*ok + len(h)) / (2 * len(h)) // rounded
}
