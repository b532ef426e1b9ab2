package pxe

import (
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"
)

// loggerName is the name of the TFTP server's sub-logger.
const loggerName = "bmm.tftp"

// Config configures a TFTP Server. A zero field takes its default.
type Config struct {
	// Root is the directory served read-only: the same root a Writer
	// writes into. Required.
	Root string
	// Addr is the UDP address to listen on. Default: ":69". Tests use
	// "127.0.0.1:0" and read the chosen port from Server.Addr.
	Addr string
	// Timeout is how long the server waits for a client to acknowledge a
	// block before sending it again. Default: 5 s (pin/tftp's default,
	// and what PXE ROMs expect).
	Timeout time.Duration
	// Retries is how many times a block is sent before the transfer is
	// abandoned. Default: 5.
	Retries int
	// Logger receives transfers (debug), refused requests (warn) and
	// failed transfers (warn). Default: a null logger.
	Logger hclog.Logger
}

// DefaultConfig returns a Config with every default set except Root.
func DefaultConfig() Config {
	return Config{
		Addr:    ":69",
		Timeout: 5 * time.Second,
		Retries: 5,
		Logger:  hclog.NewNullLogger(),
	}
}

// withDefaults returns c with each zero field set to its default.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Addr == "" {
		c.Addr = d.Addr
	}
	if c.Timeout == 0 {
		c.Timeout = d.Timeout
	}
	if c.Retries == 0 {
		c.Retries = d.Retries
	}
	if c.Logger == nil {
		c.Logger = d.Logger
	}
	return c
}

// Validate reports the first field that is missing or out of range.
func (c Config) Validate() error {
	switch {
	case c.Root == "":
		return errors.New("pxe: Root is required")
	case c.Addr == "":
		return errors.New("pxe: Addr is required")
	case c.Timeout <= 0:
		return fmt.Errorf("pxe: Timeout must be positive, got %s", c.Timeout)
	case c.Retries < 1:
		return fmt.Errorf("pxe: Retries must be at least 1, got %d", c.Retries)
	case c.Logger == nil:
		return errors.New("pxe: Logger is required")
	}
	return nil
}
