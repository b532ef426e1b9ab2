// Package retry proposes commands that must eventually be committed — the
// results and timeouts of the lifeguard executor, the request driver's
// timers — retrying while the cluster has no leader.
package retry

import (
	"context"
	"time"

	"github.com/mozpool/mozpool/fsm"
)

// ProposeFunc proposes one command through the cluster.
type ProposeFunc func(ctx context.Context, t fsm.CommandType, cmd fsm.Command) (fsm.Result, error)

// Propose proposes cmd until the cluster commits it, current() reports that
// it no longer matters (the state entry it was made for has passed), or ctx
// ends. Each attempt gets a fresh time and idempotency key: an earlier
// attempt may or may not have applied, and the generation checks in Apply
// make a repeat harmless. onFail is told of every failed attempt. It
// returns the FSM's result and whether the command was committed.
func Propose(ctx context.Context, propose ProposeFunc, t fsm.CommandType, cmd fsm.Command,
	current func() bool, onFail func(error)) (fsm.Result, bool) {
	wait := 200 * time.Millisecond
	for ctx.Err() == nil && current() {
		cmd.Head().At, cmd.Head().IdempotencyKey = time.Time{}, ""
		pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		res, err := propose(pctx, t, cmd)
		cancel()
		if err == nil {
			return res, true
		}
		onFail(err)
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
	return fsm.Result{}, false
}
