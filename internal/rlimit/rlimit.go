// Package rlimit raises the process's open file limit, which a large lab
// needs: the simulator listens twice per board and a node pings every
// board over TCP.
package rlimit

import (
	"os"
	"strconv"
	"strings"
	"syscall"
)

// RaiseNoFile raises RLIMIT_NOFILE's soft limit to want, raising the hard
// limit too when the process may (CAP_SYS_RESOURCE), up to the kernel's
// fs.nr_open. It returns the soft limit in force afterwards; a limit that
// could not be raised is not an error (the caller sees the figure).
func RaiseNoFile(want uint64) uint64 {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0
	}
	if l.Cur >= want {
		return l.Cur
	}
	if b, err := os.ReadFile("/proc/sys/fs/nr_open"); err == nil {
		if n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil && want > n {
			want = n
		}
	}
	if l.Max < want {
		raised := syscall.Rlimit{Cur: want, Max: want}
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised) == nil {
			return want
		}
		want = l.Max // not allowed: up to the hard limit
	}
	if l.Cur < want {
		raised := syscall.Rlimit{Cur: want, Max: l.Max}
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised) == nil {
			return want
		}
	}
	return l.Cur
}
