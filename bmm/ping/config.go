package ping

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
)

var (
	// ErrBadMode is returned by ParseMode and Validate for a mode other
	// than "icmp" and "tcp".
	ErrBadMode = errors.New("unknown ping mode")
)

// loggerName is the name of this package's sub-logger.
const loggerName = "bmm.ping"

// Mode selects how a Pinger probes a host.
type Mode string

const (
	// ModeICMP sends ICMP echo requests.
	ModeICMP Mode = "icmp"
	// ModeTCP connects to a TCP port (the SUT agent's, by default).
	ModeTCP Mode = "tcp"
)

// ParseMode parses the daemon's -ping-mode flag: "icmp" or "tcp" (any case).
func ParseMode(s string) (Mode, error) {
	switch m := Mode(strings.ToLower(strings.TrimSpace(s))); m {
	case ModeICMP, ModeTCP:
		return m, nil
	}
	return "", fmt.Errorf("%w %q (want %q or %q)", ErrBadMode, s, ModeICMP, ModeTCP)
}

// Config configures a Pinger. A zero field takes its default.
type Config struct {
	// Mode is how hosts are probed. Default: ModeICMP.
	Mode Mode
	// Port is the TCP port probed in ModeTCP. Default: 20701, the SUT
	// agent's port.
	Port int
	// Attempts is how many probes are sent; the host is up if any is
	// answered. Default: 5 (fping -r4: one try and four retries).
	Attempts int
	// Interval is the time between the starts of two probes; in ModeTCP
	// it is also each probe's connect timeout, except the last probe's,
	// which may use the rest of Timeout. Default: 200 ms.
	Interval time.Duration
	// Timeout bounds a whole Ping. Default: 1 s, about what fping -r4
	// -t50 takes against a silent host (50 ms growing ×1.5 per retry).
	Timeout time.Duration
	// Privileged selects raw ICMP sockets (need CAP_NET_RAW) instead of
	// unprivileged ping sockets (need net.ipv4.ping_group_range to cover
	// the daemon's group). ModeICMP only. Default: false.
	Privileged bool
	// Logger receives per-probe details at debug. Default: a null logger.
	Logger hclog.Logger
}

// DefaultConfig returns a Config with every default set.
func DefaultConfig() Config {
	return Config{
		Mode:     ModeICMP,
		Port:     20701,
		Attempts: 5,
		Interval: 200 * time.Millisecond,
		Timeout:  time.Second,
		Logger:   hclog.NewNullLogger(),
	}
}

// withDefaults returns c with each zero field set to its default.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Mode == "" {
		c.Mode = d.Mode
	}
	if c.Port == 0 {
		c.Port = d.Port
	}
	if c.Attempts == 0 {
		c.Attempts = d.Attempts
	}
	if c.Interval == 0 {
		c.Interval = d.Interval
	}
	if c.Timeout == 0 {
		c.Timeout = d.Timeout
	}
	if c.Logger == nil {
		c.Logger = d.Logger
	}
	return c
}

// Validate reports the first field that is out of range, including
// Attempts probes Interval apart not fitting in Timeout.
func (c Config) Validate() error {
	switch {
	case c.Mode != ModeICMP && c.Mode != ModeTCP:
		return fmt.Errorf("ping: %w %q", ErrBadMode, c.Mode)
	case c.Port < 1 || c.Port > 65535:
		return fmt.Errorf("ping: Port must be in 1..65535, got %d", c.Port)
	case c.Attempts < 1:
		return fmt.Errorf("ping: Attempts must be at least 1, got %d", c.Attempts)
	case c.Interval <= 0:
		return fmt.Errorf("ping: Interval must be positive, got %s", c.Interval)
	case c.Timeout <= 0:
		return fmt.Errorf("ping: Timeout must be positive, got %s", c.Timeout)
	case time.Duration(c.Attempts-1)*c.Interval >= c.Timeout:
		return fmt.Errorf("ping: %d attempts %s apart do not fit in Timeout %s", c.Attempts, c.Interval, c.Timeout)
	case c.Logger == nil:
		return errors.New("ping: Logger is required")
	}
	return nil
}
