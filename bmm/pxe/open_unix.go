//go:build unix

package pxe

import (
	"os"
	"syscall"
)

// openFlags opens served files non-blocking, so that a FIFO or device node
// swapped in after the regular-file check cannot stall the transfer
// goroutine in open(2); the post-open check then refuses it.
const openFlags = os.O_RDONLY | syscall.O_NONBLOCK
