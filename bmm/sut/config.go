package sut

import (
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"
)

// loggerName is the name of this package's sub-logger.
const loggerName = "bmm.sut"

// Config configures a Client. A zero field takes its default.
type Config struct {
	// Port is the agent's TCP port, used when a host is given without
	// one. Default: 20701.
	Port int
	// CommandTimeout bounds each step of a check: connecting and reading
	// the first prompt, and each command and its response. Default: 15 s,
	// the per-command timeout Mozpool gave mozdevice.
	CommandTimeout time.Duration
	// Logger receives each command at debug. Default: a null logger.
	Logger hclog.Logger
}

// DefaultConfig returns a Config with every default set.
func DefaultConfig() Config {
	return Config{
		Port:           20701,
		CommandTimeout: 15 * time.Second,
		Logger:         hclog.NewNullLogger(),
	}
}

// withDefaults returns c with each zero field set to its default.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Port == 0 {
		c.Port = d.Port
	}
	if c.CommandTimeout == 0 {
		c.CommandTimeout = d.CommandTimeout
	}
	if c.Logger == nil {
		c.Logger = d.Logger
	}
	return c
}

// Validate reports the first field that is out of range.
func (c Config) Validate() error {
	switch {
	case c.Port < 1 || c.Port > 65535:
		return fmt.Errorf("sut: Port must be in 1..65535, got %d", c.Port)
	case c.CommandTimeout <= 0:
		return fmt.Errorf("sut: CommandTimeout must be positive, got %s", c.CommandTimeout)
	case c.Logger == nil:
		return fmt.Errorf("sut: Logger is required")
	}
	return nil
}
