//go:build !unix

package pxe

import "os"

// openFlags opens served files for reading. Elsewhere than Unix there are no
// FIFOs to guard against (see open_unix.go).
const openFlags = os.O_RDONLY
