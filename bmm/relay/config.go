package relay

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/go-hclog"
)

// loggerName is the name of this package's sub-logger.
const loggerName = "bmm.relay"

// Dialer opens TCP connections to boards; *net.Dialer is one.
type Dialer interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// Config configures a Client.
type Config struct {
	// Logger receives a line for every failed operation and, at debug, for
	// every successful one. Default: a null logger.
	Logger hclog.Logger
	// Dialer opens connections to boards. Default: a *net.Dialer.
	Dialer Dialer
	// Recovery is how long a board stays reserved after each connection to
	// it closes, before the next queued operation on it starts: the board's
	// single-threaded TCP stack needs the pause. Zero means no pause.
	// Default: 1 s.
	Recovery time.Duration
	// OpTimeout bounds PowerCycle, SetPower and Status. It starts when the
	// operation leaves the board's queue, not when it joins it. Default: 30 s.
	OpTimeout time.Duration
	// CommsTimeout bounds TestComms, also from when it leaves the queue.
	// Default: 10 s.
	CommsTimeout time.Duration
	// OffTime is how long PowerCycle leaves the device unpowered. It counts
	// against OpTimeout. Default: 1 s.
	OffTime time.Duration
}

// DefaultConfig returns a Config with every default set.
func DefaultConfig() Config {
	return Config{
		Logger:       hclog.NewNullLogger(),
		Dialer:       &net.Dialer{},
		Recovery:     time.Second,
		OpTimeout:    30 * time.Second,
		CommsTimeout: 10 * time.Second,
		OffTime:      time.Second,
	}
}

// Validate reports the first field that is missing or out of range.
func (c Config) Validate() error {
	switch {
	case c.Logger == nil:
		return errors.New("relay: Logger is required")
	case c.Dialer == nil:
		return errors.New("relay: Dialer is required")
	case c.Recovery < 0:
		return fmt.Errorf("relay: Recovery must not be negative, got %s", c.Recovery)
	case c.OpTimeout <= 0:
		return fmt.Errorf("relay: OpTimeout must be positive, got %s", c.OpTimeout)
	case c.CommsTimeout <= 0:
		return fmt.Errorf("relay: CommsTimeout must be positive, got %s", c.CommsTimeout)
	case c.OffTime < 0:
		return fmt.Errorf("relay: OffTime must not be negative, got %s", c.OffTime)
	case c.OffTime >= c.OpTimeout:
		return fmt.Errorf("relay: OffTime (%s) must be shorter than OpTimeout (%s), or no power-cycle can finish", c.OffTime, c.OpTimeout)
	}
	return nil
}
