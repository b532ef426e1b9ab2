package fsm

import (
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Callbacks. A request created with a callback URL gets a Callback record
// each time it enters a state the request machine names in CallbackStates
// (ready, a failure, closed): the record is part of the replicated state,
// so whichever node leads delivers the records not yet done, and marks each
// done with CmdCallbackDone once delivered or given up. A leader that
// delivers and loses its leadership before the mark is replicated leaves
// the record to the next leader, which delivers it again: delivery is at
// least once, and receivers tell repeats apart by the callback's id.

// MaxCallbackURLLen bounds a request's callback URL.
const MaxCallbackURLLen = 2048

// maxCallbacks bounds the records of one request; a request enters few
// notified states (ready, then closed), so this is only a guard.
const maxCallbacks = 16

// Callback is one notification owed to a request's callback URL.
type Callback struct {
	// Seq numbers the request's callbacks from 1.
	Seq int `json:"seq"`
	// State is the state the request entered, At when.
	State string    `json:"state"`
	At    time.Time `json:"at"`
	// Device and ImagingResult are the request's at that moment.
	Device        string `json:"device,omitempty"`
	ImagingResult string `json:"imaging_result,omitempty"`
	// Done is set by CmdCallbackDone; Delivered tells whether the
	// receiver acknowledged it (false: delivery was given up).
	Done      bool `json:"done,omitempty"`
	Delivered bool `json:"delivered,omitempty"`
}

// CallbackStates is implemented by a RequestMachine whose requests notify
// their callback URL on entering some states.
type CallbackStates interface {
	CallbackState(state string) bool
}

// ValidateCallbackURL accepts "" (no callback) or an absolute http or https
// URL with a host, no user info and no fragment.
func ValidateCallbackURL(s string) error {
	if s == "" {
		return nil
	}
	if len(s) > MaxCallbackURLLen {
		return fmt.Errorf("%w: callback_url longer than %d characters", ErrInvalid, MaxCallbackURLLen)
	}
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return fmt.Errorf("%w: callback_url is not a URL", ErrInvalid)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("%w: callback_url must be an http or https URL", ErrInvalid)
	case u.Host == "" || u.Hostname() == "" || u.Opaque != "":
		return fmt.Errorf("%w: callback_url has no host", ErrInvalid)
	case u.User != nil:
		return fmt.Errorf("%w: callback_url must not carry user information", ErrInvalid)
	case u.Fragment != "" || strings.Contains(s, "#"):
		return fmt.Errorf("%w: callback_url must not have a fragment", ErrInvalid)
	case strings.ContainsAny(s, " \t\r\n"):
		return fmt.Errorf("%w: callback_url must not contain white space", ErrInvalid)
	}
	return nil
}

// noteCallback records a callback when r, which has just entered its
// current state, notifies it.
func (tx *txn) noteCallback(r *Request) {
	if r.CallbackURL == "" || len(r.Callbacks) >= maxCallbacks {
		return
	}
	cs, ok := tx.requests.(CallbackStates)
	if !ok || !cs.CallbackState(r.State) {
		return
	}
	if n := len(r.Callbacks); n > 0 && r.Callbacks[n-1].State == r.State {
		return // re-entered the same state: one notification
	}
	r.Callbacks = append(r.Callbacks, Callback{Seq: len(r.Callbacks) + 1, State: r.State, At: tx.at,
		Device: r.Device, ImagingResult: r.ImagingResult})
}

// CallbackDone marks one callback of a request done.
type CallbackDone struct {
	Header
	ID        int64 `json:"id"`
	Seq       int   `json:"seq"`
	Delivered bool  `json:"delivered"`
}

// applyCallbackDone marks a callback done. Marking a done callback again,
// or one of a request since deleted, is a no-op (a late retry).
func (tx *txn) applyCallbackDone(b []byte) (any, error) {
	var c CallbackDone
	tx.decode(b, &c)
	r, ok := tx.s.Requests[c.ID]
	if !ok {
		return nil, nil
	}
	for i := range r.Callbacks {
		cb := &r.Callbacks[i]
		if cb.Seq != c.Seq || cb.Done {
			continue
		}
		cb.Done, cb.Delivered = true, c.Delivered
		tx.touchRequest(r.ID)
		m := &RequestTx{tx: tx, r: r}
		if c.Delivered {
			m.Log("callback", "callback %d (%s) delivered", cb.Seq, cb.State)
		} else {
			m.Log("callback", "callback %d (%s) not delivered: gave up", cb.Seq, cb.State)
		}
	}
	return nil, nil
}

// PendingCallbacks returns the callbacks not yet done, of every request.
func (s *State) PendingCallbacks() []PendingCallback {
	var out []PendingCallback
	for _, r := range s.Requests {
		out = r.appendPending(out)
	}
	return out
}

// PendingCallbacksOf returns the callbacks not yet done of the requests
// ids names (unknown ids are skipped).
func (s *State) PendingCallbacksOf(ids []int64) []PendingCallback {
	var out []PendingCallback
	for _, id := range ids {
		if r := s.Requests[id]; r != nil {
			out = r.appendPending(out)
		}
	}
	return out
}

func (r *Request) appendPending(out []PendingCallback) []PendingCallback {
	if r.CallbackURL == "" {
		return out
	}
	for _, cb := range r.Callbacks {
		if !cb.Done {
			out = append(out, PendingCallback{RequestID: r.ID, URL: r.CallbackURL, Callback: cb})
		}
	}
	return out
}

// PendingCallback is a callback still to deliver, with its request.
type PendingCallback struct {
	RequestID int64
	URL       string
	Callback
}
