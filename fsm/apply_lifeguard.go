package fsm

import (
	"errors"
	"fmt"
	"time"
)

// ErrNoMachine is returned for device events when the FSM was built without
// a device machine.
var ErrNoMachine = errors.New("no device state machine configured")

// EventResult is the value of a DeviceEvent, DeviceTimeout or
// DeviceStateChange: the device's state afterwards and whether the command
// was ignored (an event the state does not accept, or a stale result).
type EventResult struct {
	State   string `json:"state"`
	Ignored bool   `json:"ignored,omitempty"`
	Reason  string `json:"reason,omitempty"`
}

func (tx *txn) deviceTx(name string) (*DeviceTx, error) {
	if tx.devices == nil {
		return nil, ErrNoMachine
	}
	d, ok := tx.s.Devices[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownDevice, name)
	}
	return &DeviceTx{tx: tx, d: d}, nil
}

func (tx *txn) applyDeviceEvent(b []byte) (any, error) {
	var c DeviceEvent
	tx.decode(b, &c)
	m, err := tx.deviceTx(c.Device)
	if err != nil {
		return nil, err
	}
	if err := tx.s.checkFence(c.Fence, c.Device); err != nil {
		return nil, err
	}
	if c.Generation != 0 && c.Generation != m.d.Generation {
		return &EventResult{State: m.d.State, Ignored: true, Reason: "stale generation"}, nil
	}
	if c.Source == "api" {
		m.Log("api", "event %s from %s", c.Event, c.From)
	}
	err = tx.devices.Event(m, c.Event, c.Args)
	switch {
	case errors.Is(err, ErrIgnored):
		m.Log("statemachine", "ignored event %s in state %s", c.Event, m.d.State)
		return &EventResult{State: m.d.State, Ignored: true, Reason: "not accepted in this state"}, nil
	case err != nil:
		return nil, err
	}
	return &EventResult{State: m.d.State}, nil
}

func (tx *txn) applyDeviceTimeout(b []byte) (any, error) {
	var c DeviceTimeout
	tx.decode(b, &c)
	m, err := tx.deviceTx(c.Device)
	if err != nil {
		return nil, err
	}
	if err := tx.s.checkFence(c.Fence, c.Device); err != nil {
		return nil, err
	}
	if c.Generation != m.d.Generation || m.d.StateDeadline.IsZero() {
		return &EventResult{State: m.d.State, Ignored: true, Reason: "stale generation"}, nil
	}
	if !c.Deadline.IsZero() && !c.Deadline.Equal(m.d.StateDeadline) {
		return &EventResult{State: m.d.State, Ignored: true, Reason: "deadline re-armed"}, nil
	}
	tx.devices.Timeout(m)
	return &EventResult{State: m.d.State}, nil
}

func (tx *txn) applyDeviceStateChange(b []byte) (any, error) {
	var c DeviceStateChange
	tx.decode(b, &c)
	m, err := tx.deviceTx(c.Device)
	if err != nil {
		return nil, err
	}
	if err := tx.s.checkFence(c.Fence, c.Device); err != nil {
		return nil, err
	}
	if c.To == "" || len(c.To) > 64 {
		return nil, fmt.Errorf("%w: target state %q", ErrInvalid, c.To)
	}
	if tx.devices.Known(m.d.State) && m.d.State != c.From {
		return nil, fmt.Errorf("%w: device %s is in state %s, not %s", ErrConflict, c.Device, m.d.State, c.From)
	}
	m.Log("statemachine", "forced state change from %s to %s", m.d.State, c.To)
	tx.devices.Force(m, c.To)
	return &EventResult{State: m.d.State}, nil
}

func (tx *txn) applyDeviceRegister(b []byte) (any, error) {
	var c DeviceRegister
	tx.decode(b, &c)
	d, ok := tx.s.Devices[c.Device]
	if !ok {
		return nil, fmt.Errorf("%w: %q is not in the inventory", ErrUnknownDevice, c.Device)
	}
	mac, err := NormalizeMAC(c.MAC)
	if err != nil {
		return nil, err
	}
	if mac != d.MAC {
		tx.logDevice(d.Name, "api", "registration refused: mac %s from %s does not match the inventory", mac, c.Address)
		return nil, fmt.Errorf("%w: mac %s does not match the inventory entry of %s", ErrConflict, mac, d.Name)
	}
	tx.logDevice(d.Name, "api", "registered: mac %s, address %s", mac, c.Address)
	if tx.devices != nil {
		if err := tx.devices.Registered(&DeviceTx{tx: tx, d: d}); err != nil && !errors.Is(err, ErrIgnored) {
			return nil, err
		}
	}
	return &EventResult{State: d.State}, nil
}

func (tx *txn) applySetTimeScale(b []byte) (any, error) {
	var c SetTimeScale
	tx.decode(b, &c)
	if c.TimeScale <= 0 || c.TimeScale > 1000 {
		return nil, fmt.Errorf("%w: time scale %v must be in (0, 1000]", ErrInvalid, c.TimeScale)
	}
	if c.MinDeviceTimeout < 0 || c.MinDeviceTimeout > time.Hour {
		return nil, fmt.Errorf("%w: minimum device timeout %v must be in [0, 1h]", ErrInvalid, c.MinDeviceTimeout)
	}
	tx.s.TimeScale = c.TimeScale
	tx.s.MinDeviceTimeout = c.MinDeviceTimeout
	return nil, nil
}
