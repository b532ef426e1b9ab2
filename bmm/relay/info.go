package relay

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

var (
	// ErrBadRelayInfo is returned by ParseRelayInfo for a relay_info string
	// that is not host[:port]:bankB:relayR with B in 1..4 and R in 1..8.
	ErrBadRelayInfo = errors.New("bad relay info")
)

// DefaultPort is the ProXR (Digi Connect) TCP port used when relay_info
// names none.
const DefaultPort = 2101

// Banks and Relays are how many banks a ProXR board has and how many relays
// each bank has; both are numbered from 1.
const (
	Banks  = 4
	Relays = 8
)

// RelayInfo names one relay: the board's address and the relay's bank and
// number, both 1-based.
type RelayInfo struct {
	Host  string
	Port  int
	Bank  int
	Relay int
}

// ParseRelayInfo parses a device's relay_info, host[:port]:bankB:relayR,
// splitting from the right on ':' (so the port is optional). The port
// defaults to DefaultPort. Errors wrap ErrBadRelayInfo.
func ParseRelayInfo(s string) (RelayInfo, error) {
	bad := func(format string, args ...any) (RelayInfo, error) {
		return RelayInfo{}, fmt.Errorf("%w %q: %s", ErrBadRelayInfo, s, fmt.Sprintf(format, args...))
	}
	parts := strings.Split(s, ":")
	if len(parts) < 3 || len(parts) > 4 {
		return bad("want host[:port]:bankB:relayR")
	}
	n := len(parts)
	ri := RelayInfo{Host: parts[0], Port: DefaultPort}
	if ri.Host == "" {
		return bad("no host")
	}
	if n == 4 {
		p, err := strconv.Atoi(parts[1])
		if err != nil || p < 1 || p > 65535 {
			return bad("port %q is not a number in 1..65535", parts[1])
		}
		ri.Port = p
	}
	var err error
	if ri.Bank, err = numbered(parts[n-2], "bank", Banks); err != nil {
		return bad("%v", err)
	}
	if ri.Relay, err = numbered(parts[n-1], "relay", Relays); err != nil {
		return bad("%v", err)
	}
	return ri, nil
}

// numbered parses prefix<N> with N in 1..max.
func numbered(s, prefix string, max int) (int, error) {
	digits, ok := strings.CutPrefix(s, prefix)
	if !ok {
		return 0, fmt.Errorf("%q does not start with %q", s, prefix)
	}
	v, err := strconv.Atoi(digits)
	if err != nil || v < 1 || v > max {
		return 0, fmt.Errorf("%s %q is not a number in 1..%d", prefix, digits, max)
	}
	return v, nil
}

// Addr returns the board's TCP address, host:port.
func (ri RelayInfo) Addr() string {
	return net.JoinHostPort(ri.Host, strconv.Itoa(ri.Port))
}

// String returns ri in relay_info form, always with the port.
func (ri RelayInfo) String() string {
	return fmt.Sprintf("%s:%d:bank%d:relay%d", ri.Host, ri.Port, ri.Bank, ri.Relay)
}

// validate checks the fields of a RelayInfo built by hand rather than
// parsed.
func (ri RelayInfo) validate() error {
	switch {
	case ri.Host == "":
		return fmt.Errorf("%w: no host", ErrBadRelayInfo)
	case ri.Port < 1 || ri.Port > 65535:
		return fmt.Errorf("%w: port %d is not in 1..65535", ErrBadRelayInfo, ri.Port)
	case ri.Bank < 1 || ri.Bank > Banks:
		return fmt.Errorf("%w: bank %d is not in 1..%d", ErrBadRelayInfo, ri.Bank, Banks)
	case ri.Relay < 1 || ri.Relay > Relays:
		return fmt.Errorf("%w: relay %d is not in 1..%d", ErrBadRelayInfo, ri.Relay, Relays)
	}
	return nil
}
