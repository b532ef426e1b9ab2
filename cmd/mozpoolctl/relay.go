package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/mozpool/mozpool/bmm/relay"
)

// relayDeadline bounds a relay command, as in Mozpool's relay CLI.
const relayDeadline = 60 * time.Second

// runRelay switches or reads one relay by talking ProXR straight to the
// board, not through the API:
//
//	relay powercycle|status|turnon|turnoff HOST[:PORT] BANK RELAY
//
// BANK and RELAY are numbers, optionally written bank2 and relay3. It
// prints OK or FAILED (exit 1), or "bank B, relay R status: on|off", where
// on and off are the device's power.
func runRelay(ctx context.Context, e *env, args []string) error {
	pos, err := e.parse(e.commandFlags(), args, "ACTION", "HOST[:PORT]", "BANK", "RELAY")
	if err != nil {
		return err
	}
	action := pos[0]
	switch action {
	case "powercycle", "status", "turnon", "turnoff":
	default:
		return usagef("unknown relay action %q (want powercycle, status, turnon or turnoff)", action)
	}
	bank := strings.TrimPrefix(pos[2], "bank")
	num := strings.TrimPrefix(pos[3], "relay")
	ri, err := relay.ParseRelayInfo(fmt.Sprintf("%s:bank%s:relay%s", pos[1], bank, num))
	if err != nil {
		return usagef("%v", err)
	}

	cfg := relay.DefaultConfig()
	cfg.OpTimeout = relayDeadline
	cfg.Recovery = 0 // this process sends nothing more to the board
	c, err := relay.New(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, relayDeadline)
	defer cancel()

	if action == "status" {
		on, err := c.Status(ctx, ri)
		if err != nil {
			return e.relayFailed(err)
		}
		if e.json {
			return e.printJSON(map[string]any{"success": true, "bank": ri.Bank, "relay": ri.Relay, "on": on})
		}
		state := "off"
		if on {
			state = "on"
		}
		fmt.Fprintf(e.stdout, "bank %d, relay %d status: %s\n", ri.Bank, ri.Relay, state)
		return nil
	}

	switch action {
	case "powercycle":
		err = c.PowerCycle(ctx, ri)
	case "turnon":
		err = c.SetPower(ctx, ri, true)
	case "turnoff":
		err = c.SetPower(ctx, ri, false)
	}
	if err != nil {
		return e.relayFailed(err)
	}
	if e.json {
		return e.printJSON(map[string]bool{"success": true})
	}
	fmt.Fprintln(e.stdout, "OK")
	return nil
}

// relayFailed prints FAILED (or {"success": false}) and returns err, which
// run prints to stderr before exiting 1.
func (e *env) relayFailed(err error) error {
	if e.json {
		if perr := e.printJSON(map[string]bool{"success": false}); perr != nil {
			return perr
		}
		return err
	}
	fmt.Fprintln(e.stdout, "FAILED")
	return err
}
