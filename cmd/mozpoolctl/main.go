package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// defaultServer is used when neither --server nor $MOZPOOL_SERVER is set.
const defaultServer = "http://127.0.0.1:8010"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is the whole CLI: it parses args (without the program name), runs one
// command and returns the exit code: 0 ok, 1 failure, 2 usage error.
func run(args []string, stdout, stderr io.Writer) int {
	// 1. Global flags, then the command.
	e := &env{stdout: stdout, stderr: stderr}
	fs := e.globalFlags("mozpoolctl", os.Getenv("MOZPOOL_SERVER"), os.Getenv("MOZPOOL_TOKEN"))
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(stdout)
			return exitOK
		}
		fmt.Fprintf(stderr, "mozpoolctl: %v\n", err)
		printUsage(stderr)
		return exitUsage
	}
	args = fs.Args()
	if len(args) == 0 {
		printUsage(stderr)
		return exitUsage
	}
	if args[0] == "help" {
		printUsage(stdout)
		return exitOK
	}
	cmd, rest, err := findCommand(args)
	if err != nil {
		fmt.Fprintf(stderr, "mozpoolctl: %v\n", err)
		printUsage(stderr)
		return exitUsage
	}
	e.cmd = cmd

	// 2. Run it; Ctrl-C cancels the request in flight.
	ctx, stop := signal.NotifyContext(baseContext(), os.Interrupt)
	defer stop()
	err = cmd.run(ctx, e, rest)

	// 3. Map the outcome to an exit code.
	var ue *usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		printCommandUsage(stdout, cmd, e.fs)
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "mozpoolctl: %s\n", ue.msg)
		printCommandUsage(stderr, cmd, e.fs)
		return exitUsage
	default:
		fmt.Fprintf(stderr, "mozpoolctl: %v\n", err)
		return exitFailure
	}
}
