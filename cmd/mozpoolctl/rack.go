package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/mozpool/mozpool/api"
)

// runRackShow lists the racks, or shows one:
//
//	rack show [RACK]
func runRackShow(ctx context.Context, e *env, args []string) error {
	fs := e.commandFlags()
	names := []string{}
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		names = append(names, "RACK")
	}
	pos, err := e.parse(fs, args, names...)
	if err != nil {
		return err
	}
	var racks []api.Rack
	if len(pos) == 1 {
		r, err := e.client().Rack(ctx, pos[0])
		if err != nil {
			return err
		}
		racks = []api.Rack{r}
	} else if racks, err = e.client().Racks(ctx); err != nil {
		return err
	}
	if e.json {
		return e.printJSON(racks)
	}
	t := e.table("RACK", "OWNER", "GENERATION", "SERVERS", "DEVICES", "RELAY BOARDS", "DOWN", "MOVED")
	for _, r := range racks {
		moved := "-"
		if !r.Moved.IsZero() {
			moved = r.Moved.UTC().Format("2006-01-02T15:04:05Z") + " (" + r.Reason + ")"
		}
		t.row(r.Name, orDash(r.Owner), r.Generation, strings.Join(r.Servers, ","), r.Devices, r.RelayBoards,
			orDash(strings.Join(r.Down, ",")), moved)
	}
	return t.flush()
}

// runRackMove gives a rack to one of its servers, for maintenance of its
// owner:
//
//	rack move RACK SERVER [--generation N]
func runRackMove(ctx context.Context, e *env, args []string) error {
	fs := e.commandFlags()
	gen := fs.Uint64("generation", 0, "move only if the rack is still at this ownership `generation`")
	pos, err := e.parse(fs, args, "RACK", "SERVER")
	if err != nil {
		return err
	}
	r, err := e.client().MoveRack(ctx, pos[0], pos[1], *gen)
	if err != nil {
		return err
	}
	if e.json {
		return e.printJSON(r)
	}
	fmt.Fprintf(e.stdout, "rack %s: owner %s, generation %d\n", r.Name, r.Owner, r.Generation)
	return nil
}
