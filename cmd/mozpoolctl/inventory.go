package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/mozpool/mozpool/api"
	"github.com/mozpool/mozpool/client"
)

// runInventorySync sends an inventory file to the cluster and prints the
// resulting diff.
func runInventorySync(ctx context.Context, e *env, args []string) error {
	fs := e.commandFlags()
	dryRun := fs.Bool("dry-run", false, "show what would change without changing anything")
	shipIt := fs.Bool("ship-it", false, "apply even when more devices change than the safety valve allows")
	pos, err := e.parse(fs, args, "FILE")
	if err != nil {
		return err
	}
	inv, err := loadInventory(pos[0])
	if err != nil {
		return err
	}

	res, err := e.client().SyncInventory(ctx, inv, *dryRun, *shipIt)
	var ce *client.Error
	if errors.As(err, &ce) && ce.Status == http.StatusConflict {
		return fmt.Errorf("inventory sync refused: %w\nreview the changes with --dry-run, then rerun with --ship-it to apply them", err)
	}
	if err != nil {
		return fmt.Errorf("inventory sync: %w", err)
	}
	if e.json {
		return e.printJSON(res)
	}

	for _, c := range res.Diff.Changes {
		fmt.Fprintln(e.stdout, changeLine(c))
	}
	fmt.Fprintf(e.stdout, "%d device changes (limit %d)\n", res.Diff.DeviceChanges, res.Diff.Limit)
	switch {
	case *dryRun && res.Refused():
		fmt.Fprintln(e.stdout, "dry run: nothing changed; a real sync would be refused by the safety valve (use --ship-it)")
	case *dryRun:
		fmt.Fprintln(e.stdout, "dry run: nothing changed")
	case res.Applied:
		fmt.Fprintln(e.stdout, "applied")
	default:
		fmt.Fprintln(e.stdout, "nothing applied")
	}
	return nil
}

// changeLine renders one change: "+ device panda-0001",
// "~ device panda-0002 (relay_info, environment)", "- device panda-0003".
func changeLine(c api.Change) string {
	op := map[string]string{"add": "+", "update": "~", "delete": "-"}[c.Op]
	if op == "" {
		op = c.Op
	}
	line := fmt.Sprintf("%s %s %s", op, c.Kind, c.Name)
	if len(c.Fields) > 0 {
		line += " (" + strings.Join(c.Fields, ", ") + ")"
	}
	return line
}

// loadInventory reads a JSON inventory file. Unknown fields are refused so
// that a misspelt key does not silently drop part of the lab.
func loadInventory(path string) (api.Inventory, error) {
	var inv api.Inventory
	b, err := os.ReadFile(path)
	if err != nil {
		return inv, fmt.Errorf("read inventory: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&inv); err != nil {
		return inv, fmt.Errorf("inventory %s: invalid JSON%s: %w", path, lineOf(b, err), err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return inv, fmt.Errorf("inventory %s: invalid JSON: data after the top-level object", path)
	}
	return inv, nil
}

// lineOf returns " at line N" for a JSON error that knows its byte offset.
func lineOf(b []byte, err error) string {
	var off int64
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		off = se.Offset
	case errors.As(err, &te):
		off = te.Offset
	default:
		return ""
	}
	off = min(off, int64(len(b)))
	return fmt.Sprintf(" at line %d", bytes.Count(b[:off], []byte("\n"))+1)
}
