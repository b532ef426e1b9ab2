package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// runBackup writes a snapshot of the node's state to FILE (written to a
// temporary file first, then renamed, so a failed backup leaves no half
// file).
func runBackup(ctx context.Context, e *env, args []string) error {
	pos, err := e.parse(e.commandFlags(), args, "FILE")
	if err != nil {
		return err
	}
	path := pos[0]
	tmp, err := os.CreateTemp(filepath.Dir(path), ".mozpool-backup-*")
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer os.Remove(tmp.Name())
	n, err := e.client().Backup(ctx, tmp)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if e.json {
		return e.printJSON(map[string]any{"file": path, "bytes": n})
	}
	fmt.Fprintf(e.stdout, "wrote %s (%d bytes)\n", path, n)
	return nil
}

// runRestore replaces the cluster's state with a backup; --yes is required
// because everything written since the backup is lost.
func runRestore(ctx context.Context, e *env, args []string) error {
	fs := e.commandFlags()
	yes := fs.Bool("yes", false, "confirm: replace the whole cluster state with the backup")
	pos, err := e.parse(fs, args, "FILE")
	if err != nil {
		return err
	}
	if !*yes {
		return usagef("restore replaces the whole cluster state and loses everything written since the backup; add --yes to do it")
	}
	data, err := os.ReadFile(pos[0])
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if err := e.client().Restore(ctx, data); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if e.json {
		return e.printJSON(map[string]any{"restored": pos[0], "bytes": len(data)})
	}
	fmt.Fprintf(e.stdout, "restored the cluster state from %s (%d bytes)\n", pos[0], len(data))
	return nil
}
