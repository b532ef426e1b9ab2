package fsm

import (
	"fmt"
	"strings"
)

// MaxNameLen is the longest device, image or PXE config name (the
// original's column widths).
const MaxNameLen = 32

// ValidName reports whether n can name a device, image, PXE config or relay
// board: 1–32 characters from [A-Za-z0-9_-], so it can never form a path.
func ValidName(n string) error {
	if n == "" || len(n) > MaxNameLen {
		return fmt.Errorf("%w: name %q must be 1-%d characters", ErrInvalid, n, MaxNameLen)
	}
	for _, c := range n {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("%w: name %q may hold only letters, digits, '-' and '_'", ErrInvalid, n)
		}
	}
	return nil
}

// NormalizeMAC accepts a MAC address with or without ':' or '-' separators
// and returns it as 12 lower-case hex digits.
func NormalizeMAC(m string) (string, error) {
	s := strings.ToLower(strings.NewReplacer(":", "", "-", "").Replace(m))
	if len(s) != 12 {
		return "", fmt.Errorf("%w: mac address %q", ErrInvalid, m)
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return "", fmt.Errorf("%w: mac address %q", ErrInvalid, m)
		}
	}
	return s, nil
}
