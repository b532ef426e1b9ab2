package fsm

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"
)

// Request field limits (the original's column widths).
const (
	maxAssigneeLen = 256
	// MaxRequestDuration bounds a request's lifetime (and a renewal).
	MaxRequestDuration = 366 * 24 * time.Hour
)

func (tx *txn) requestTx(id int64) (*RequestTx, error) {
	if tx.requests == nil {
		return nil, errors.New("no request state machine configured")
	}
	r, ok := tx.s.Requests[id]
	if !ok {
		return nil, fmt.Errorf("%w: %d", ErrUnknownRequest, id)
	}
	return &RequestTx{tx: tx, r: r}, nil
}

// ValidateBootConfig checks that bootConfig is a JSON object holding every
// boot-config key of the image (the API keeps only those keys).
func ValidateBootConfig(img *Image, bootConfig string) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(bootConfig), &m); err != nil {
		return fmt.Errorf("%w: boot_config must be a JSON object: %v", ErrInvalid, err)
	}
	for _, k := range img.BootConfigKeys {
		if _, ok := m[k]; !ok {
			return fmt.Errorf("%w: missing boot config key %q for image %s", ErrInvalid, k, img.Name)
		}
	}
	return nil
}

func (tx *txn) applyRequestCreate(b []byte) (any, error) {
	var c RequestCreate
	tx.decode(b, &c)
	if tx.requests == nil {
		return nil, errors.New("no request state machine configured")
	}
	s := tx.s
	img, ok := s.Images[c.Image]
	switch {
	case c.Assignee == "" || len(c.Assignee) > maxAssigneeLen:
		return nil, fmt.Errorf("%w: assignee must be 1-%d characters", ErrInvalid, maxAssigneeLen)
	case !ok:
		return nil, fmt.Errorf("%w: %q", ErrUnknownImage, c.Image)
	case c.RequestedDevice == "":
		return nil, fmt.Errorf("%w: requested device is required", ErrInvalid)
	case c.Expires.Before(tx.at) || c.Expires.After(tx.at.Add(MaxRequestDuration)):
		return nil, fmt.Errorf("%w: duration must be between 0 and %s", ErrInvalid, MaxRequestDuration)
	case len(c.Environment) > maxEnvironmentLen:
		return nil, fmt.Errorf("%w: environment longer than %d characters", ErrInvalid, maxEnvironmentLen)
	}
	if c.RequestedDevice != "any" {
		if _, ok := s.Devices[c.RequestedDevice]; !ok {
			return nil, fmt.Errorf("%w: %q", ErrUnknownDevice, c.RequestedDevice)
		}
	}
	if err := ValidateBootConfig(img, c.BootConfig); err != nil {
		return nil, err
	}
	if err := ValidateCallbackURL(c.CallbackURL); err != nil {
		return nil, err
	}
	if err := validateQueueFields(&c, tx.at); err != nil {
		return nil, err
	}
	prio := DefaultPriority
	if c.Priority != nil {
		prio = *c.Priority
	}
	env := c.Environment
	if env == "" {
		env = "any"
	}
	state, timeout := tx.requests.Initial()
	r := &Request{
		ID: s.nextID("request"), ImagingServer: c.Server, RequestedDevice: c.RequestedDevice,
		Assignee: c.Assignee, Expires: c.Expires.UTC(), Image: c.Image, BootConfig: c.BootConfig,
		Environment: env, State: state, StateEntered: tx.at, StateDeadline: tx.deadline(timeout), Created: tx.at,
		CallbackURL: c.CallbackURL, Owner: c.Owner,
		Priority: prio, Group: c.Group, HardwareType: c.HardwareType, HardwareModel: c.HardwareModel,
		Tags: maps.Clone(c.Tags), MaxWait: c.MaxWait, NoWait: c.NoWait,
	}
	if len(r.Tags) == 0 {
		r.Tags = nil
	}
	s.Requests[r.ID] = r
	m := &RequestTx{tx: tx, r: r}
	m.Log("mozpool", "request for %s (image %s, environment %s) by %s, expires %s",
		r.RequestedDevice, r.Image, r.Environment, r.Assignee, r.Expires.Format(time.RFC3339))
	tx.touchRequest(r.ID)
	if err := tx.requests.Start(m); err != nil && !errors.Is(err, ErrIgnored) {
		return nil, err
	}
	// Serve it now if a free board suits it, so the result says so.
	tx.runQueue()
	out := *r
	return &out, nil
}

// validateQueueFields checks a new request's queue fields.
func validateQueueFields(c *RequestCreate, at time.Time) error {
	switch {
	case c.Priority != nil && (*c.Priority < MinPriority || *c.Priority > MaxPriority):
		return fmt.Errorf("%w: priority must be between %d and %d", ErrInvalid, MinPriority, MaxPriority)
	case len(c.Group) > maxGroupLen:
		return fmt.Errorf("%w: group longer than %d characters", ErrInvalid, maxGroupLen)
	case len(c.HardwareType) > MaxTagLen || len(c.HardwareModel) > MaxTagLen:
		return fmt.Errorf("%w: hardware type and model must be at most %d characters", ErrInvalid, MaxTagLen)
	case c.MaxWait < 0 || c.MaxWait > c.Expires.Sub(at):
		return fmt.Errorf("%w: max_wait must be between 0 and the request's duration", ErrInvalid)
	}
	return ValidateTags(c.Tags)
}

func (tx *txn) applyRequestEvent(b []byte) (any, error) {
	var c RequestEvent
	tx.decode(b, &c)
	m, err := tx.requestTx(c.ID)
	if err != nil {
		return nil, err
	}
	if err := checkOwner(m.r, c.Caller); err != nil {
		return nil, err
	}
	if c.Generation != 0 && c.Generation != m.r.Generation {
		return &EventResult{State: m.r.State, Ignored: true, Reason: "stale generation"}, nil
	}
	err = tx.requests.Event(m, c.Event, c.Args)
	switch {
	case errors.Is(err, ErrIgnored):
		m.Log("statemachine", "ignored event %s in state %s", c.Event, m.r.State)
		return &EventResult{State: m.r.State, Ignored: true, Reason: "not accepted in this state"}, nil
	case err != nil:
		return nil, err
	}
	return &EventResult{State: m.r.State}, nil
}

func (tx *txn) applyRequestTimeout(b []byte) (any, error) {
	var c RequestTimeout
	tx.decode(b, &c)
	m, err := tx.requestTx(c.ID)
	if err != nil {
		return nil, err
	}
	if c.Generation != m.r.Generation || m.r.StateDeadline.IsZero() {
		return &EventResult{State: m.r.State, Ignored: true, Reason: "stale generation"}, nil
	}
	tx.requests.Timeout(m)
	return &EventResult{State: m.r.State}, nil
}

func (tx *txn) applyRequestRenew(b []byte) (any, error) {
	var c RequestRenew
	tx.decode(b, &c)
	m, err := tx.requestTx(c.ID)
	if err != nil {
		return nil, err
	}
	if err := checkOwner(m.r, c.Caller); err != nil {
		return nil, err
	}
	if c.Expires.Before(tx.at) || c.Expires.After(tx.at.Add(MaxRequestDuration)) {
		return nil, fmt.Errorf("%w: duration must be between 0 and %s", ErrInvalid, MaxRequestDuration)
	}
	m.r.Expires = c.Expires.UTC()
	m.Log("mozpool", "renewed until %s", m.r.Expires.Format(time.RFC3339))
	tx.touchRequest(m.r.ID)
	return nil, nil
}

func (tx *txn) applyRequestExpire(b []byte) (any, error) {
	var c RequestExpire
	tx.decode(b, &c)
	m, err := tx.requestTx(c.ID)
	if err != nil {
		return nil, err
	}
	// The expiry may have been renewed since the leader proposed this.
	if tx.at.Before(m.r.Expires) || !tx.requests.Open(m.r.State) {
		return &EventResult{State: m.r.State, Ignored: true, Reason: "not expired"}, nil
	}
	if err := tx.requests.Expire(m); err != nil && !errors.Is(err, ErrIgnored) {
		return nil, err
	}
	return &EventResult{State: m.r.State}, nil
}

func (tx *txn) applyRequestCompact(b []byte) (any, error) {
	var c RequestCompact
	tx.decode(b, &c)
	if tx.requests == nil {
		return nil, errors.New("no request state machine configured")
	}
	n := 0
	for _, id := range slices.Sorted(maps.Keys(tx.s.Requests)) {
		r := tx.s.Requests[id]
		if !tx.requests.Open(r.State) && r.Expires.Before(c.Before) && r.Device == "" {
			delete(tx.s.Requests, id)
			tx.touchRequest(id)
			n++
		}
	}
	return map[string]int{"deleted": n}, nil
}

// checkOwner refuses a caller that is set and does not own an owned
// request.
func checkOwner(r *Request, caller string) error {
	if caller != "" && r.Owner != "" && r.Owner != caller {
		return fmt.Errorf("%w: request %d belongs to %s", ErrForbidden, r.ID, r.Owner)
	}
	return nil
}
