package pxe

import (
	"errors"
	"fmt"
	"strings"
)

var (
	// ErrBadMAC is returned for a MAC address that is not 12 hex digits,
	// written either without separators or with the same separator (':'
	// or '-') between every pair of digits.
	ErrBadMAC = errors.New("bad MAC address")
)

// NormalizeMAC returns mac as 12 lower-case hex digits without separators
// ("aabbccddeeff"), the form Mozpool stores. It accepts "aabbccddeeff",
// "AA:BB:CC:DD:EE:FF" and "aa-bb-cc-dd-ee-ff"; anything else, including
// mixed separators, is ErrBadMAC.
func NormalizeMAC(mac string) (string, error) {
	var digits string
	switch len(mac) {
	case 12:
		digits = mac
	case 17:
		sep := mac[2]
		if sep != ':' && sep != '-' {
			return "", fmt.Errorf("%w: %q", ErrBadMAC, mac)
		}
		var b strings.Builder
		for i := 0; i < len(mac); i++ {
			if i%3 == 2 {
				if mac[i] != sep {
					return "", fmt.Errorf("%w: %q", ErrBadMAC, mac)
				}
				continue
			}
			b.WriteByte(mac[i])
		}
		digits = b.String()
	default:
		return "", fmt.Errorf("%w: %q", ErrBadMAC, mac)
	}
	for i := 0; i < len(digits); i++ {
		if !isHex(digits[i]) {
			return "", fmt.Errorf("%w: %q", ErrBadMAC, mac)
		}
	}
	return strings.ToLower(digits), nil
}

// fileName returns the pxelinux configuration file name for a normalised
// MAC: "01-" (the ARP hardware type for Ethernet) and the MAC with '-'
// between every pair of digits.
func fileName(mac string) string {
	var b strings.Builder
	b.WriteString("01")
	for i := 0; i < len(mac); i += 2 {
		b.WriteByte('-')
		b.WriteString(mac[i : i+2])
	}
	return b.String()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
