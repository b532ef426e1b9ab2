package main

import (
	"context"
	"fmt"
	"time"
)

func runTokenCreate(ctx context.Context, e *env, args []string) error {
	fs := e.commandFlags()
	role := fs.String("role", "user", "the token's `role`: reader, user, operator or admin")
	pos, err := e.parse(fs, args, "NAME")
	if err != nil {
		return err
	}
	t, err := e.client().CreateToken(ctx, pos[0], *role)
	if err != nil {
		return fmt.Errorf("token %s: %w", pos[0], err)
	}
	if e.json {
		return e.printJSON(t)
	}
	fmt.Fprintf(e.stderr, "token %s (%s) created; it is shown only now:\n", t.Name, t.Role)
	fmt.Fprintln(e.stdout, t.Secret)
	return nil
}

func runTokenList(ctx context.Context, e *env, args []string) error {
	if _, err := e.parse(e.commandFlags(), args); err != nil {
		return err
	}
	ts, err := e.client().Tokens(ctx)
	if err != nil {
		return err
	}
	if e.json {
		return e.printJSON(ts)
	}
	t := e.table("NAME", "ROLE", "CREATED")
	for _, tok := range ts {
		t.row(tok.Name, tok.Role, tok.Created.UTC().Format(time.RFC3339))
	}
	return t.flush()
}

func runTokenRevoke(ctx context.Context, e *env, args []string) error {
	pos, err := e.parse(e.commandFlags(), args, "NAME")
	if err != nil {
		return err
	}
	if err := e.client().RevokeToken(ctx, pos[0]); err != nil {
		return fmt.Errorf("token %s: %w", pos[0], err)
	}
	fmt.Fprintf(e.stdout, "token %s revoked\n", pos[0])
	return nil
}

// runPolicy shows the cluster's policy, or sets it when given one.
func runPolicy(ctx context.Context, e *env, args []string) error {
	fs := e.commandFlags()
	if err := fs.Parse(args); err != nil {
		return usagef("%v", err)
	}
	switch fs.NArg() {
	case 0:
		p, err := e.client().Policy(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintln(e.stdout, p)
		return nil
	case 1:
		p := fs.Arg(0)
		if p != "open" && p != "strict" {
			return usagef("policy must be open or strict, not %q", p)
		}
		if err := e.client().SetPolicy(ctx, p); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "policy set to %s\n", p)
		return nil
	}
	return usagef("unexpected argument %q", fs.Arg(1))
}

func runWhoami(ctx context.Context, e *env, args []string) error {
	if _, err := e.parse(e.commandFlags(), args); err != nil {
		return err
	}
	w, err := e.client().Whoami(ctx)
	if err != nil {
		return err
	}
	if e.json {
		return e.printJSON(w)
	}
	role := w.Role
	if w.Anonymous {
		role = "anonymous"
	}
	fmt.Fprintf(e.stdout, "%s (%s), policy %s\n", w.Name, role, w.Policy)
	return nil
}
