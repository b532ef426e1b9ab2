package rlimit

import (
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRaiseNoFile_NeverLowers(t *testing.T) {
	var before syscall.Rlimit
	require.NoError(t, syscall.Getrlimit(syscall.RLIMIT_NOFILE, &before))
	require.Equal(t, before.Cur, RaiseNoFile(before.Cur/2))
	got := RaiseNoFile(before.Cur + 16)
	var after syscall.Rlimit
	require.NoError(t, syscall.Getrlimit(syscall.RLIMIT_NOFILE, &after))
	require.Equal(t, after.Cur, got)
	require.GreaterOrEqual(t, after.Cur, before.Cur)
}
