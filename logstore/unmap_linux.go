package logstore

import "syscall"

// madviseDontNeed drops the pages of [addr, addr+n) from the process's page
// tables. On the store's shared, read-only file mapping that loses
// nothing: the next access maps the page again from the page cache.
func madviseDontNeed(addr, n uintptr) error {
	if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, addr, n, syscall.MADV_DONTNEED); errno != 0 {
		return errno
	}
	return nil
}
