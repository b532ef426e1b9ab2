package retry

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/fsm"
)

func TestPropose(t *testing.T) {
	cmd := &fsm.DeviceTimeout{Device: "d", Generation: 3}
	cmd.IdempotencyKey = "stale"
	calls, fails := 0, 0
	propose := func(context.Context, fsm.CommandType, fsm.Command) (fsm.Result, error) {
		calls++
		require.Empty(t, cmd.IdempotencyKey, "each attempt gets a fresh key")
		if calls < 3 {
			return fsm.Result{}, errors.New("no leader")
		}
		return fsm.Result{}, nil
	}
	_, ok := Propose(context.Background(), propose, fsm.CmdDeviceTimeout, cmd, func() bool { return true }, func(error) { fails++ })
	require.True(t, ok)
	require.Equal(t, 3, calls)
	require.Equal(t, 2, fails)

	// A command that stops mattering is dropped.
	calls = 0
	n := 0
	_, ok = Propose(context.Background(), func(context.Context, fsm.CommandType, fsm.Command) (fsm.Result, error) {
		calls++
		return fsm.Result{}, errors.New("no leader")
	}, fsm.CmdDeviceTimeout, cmd, func() bool { n++; return n <= 2 }, func(error) {})
	require.False(t, ok)
	require.Equal(t, 2, calls)

	// So is one whose context ends.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, ok = Propose(ctx, func(context.Context, fsm.CommandType, fsm.Command) (fsm.Result, error) {
		return fsm.Result{}, errors.New("no leader")
	}, fsm.CmdDeviceTimeout, cmd, func() bool { return true }, func(error) {})
	require.False(t, ok)
}
