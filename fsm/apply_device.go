package fsm

import "fmt"

// maxEnvironmentLen is the original's column width for environments.
const maxEnvironmentLen = 32

func (tx *txn) applyDeviceSetComments(b []byte) (any, error) {
	var c DeviceSetComments
	tx.decode(b, &c)
	d, ok := tx.s.Devices[c.Device]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownDevice, c.Device)
	}
	d.Comments = c.Comments
	tx.touchDevice(d.Name)
	tx.logDevice(d.Name, "api", "comments set to %q", c.Comments)
	return nil, nil
}

func (tx *txn) applyDeviceSetEnvironment(b []byte) (any, error) {
	var c DeviceSetEnvironment
	tx.decode(b, &c)
	d, ok := tx.s.Devices[c.Device]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownDevice, c.Device)
	}
	if len(c.Environment) > maxEnvironmentLen {
		return nil, fmt.Errorf("%w: environment longer than %d characters", ErrInvalid, maxEnvironmentLen)
	}
	d.Environment = c.Environment
	tx.touchDevice(d.Name)
	tx.logDevice(d.Name, "api", "environment set to %q", c.Environment)
	return nil, nil
}

func (tx *txn) applyDeviceSetNextBoot(b []byte) (any, error) {
	var c DeviceSetNextBoot
	tx.decode(b, &c)
	d, ok := tx.s.Devices[c.Device]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownDevice, c.Device)
	}
	d.NextBootConfig = c.BootConfig
	tx.touchDevice(d.Name)
	return nil, nil
}

func (tx *txn) applyLogAppend(b []byte) (any, error) {
	var c LogAppend
	tx.decode(b, &c)
	for _, e := range c.Entries {
		if e.Kind != LogDevice && e.Kind != LogRequest {
			return nil, fmt.Errorf("%w: log kind %q", ErrInvalid, e.Kind)
		}
	}
	for _, e := range c.Entries {
		if c.Server != "" && e.Kind == LogDevice && !tx.s.mayLog(c.Server, c.RackGenerations, e.Name) {
			continue // the server no longer acts on the board
		}
		if e.At.IsZero() {
			e.At = tx.at
		}
		tx.logs = append(tx.logs, e)
	}
	return nil, nil
}
