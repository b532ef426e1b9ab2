package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mozpool/mozpool/internal/rlimit"
	"github.com/mozpool/mozpool/sim"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "generate" {
		if err := generate(os.Args[2:], os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "mozpool-sim generate:", err)
			os.Exit(2)
		}
		return
	}
	o, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "mozpool-sim:", err)
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "mozpool-sim:", err)
		os.Exit(1)
	}
}

func run(o *options) error {
	// 1. Root logger.
	logger := hclog.New(&hclog.LoggerOptions{
		Name: "mozpool-sim", Level: hclog.LevelFromString(o.logLevel), JSONFormat: o.logJSON, TimeFormat: time.RFC3339Nano,
	})

	// 2. The lab, from the inventory and the flags.
	inv, err := loadInventory(o.inventory)
	if err != nil {
		return err
	}
	if inv, err = sim.ShardInventory(inv, o.shard, o.shards); err != nil {
		return err
	}
	o.cfg.Inventory = inv
	o.cfg.Logger = logger
	lab, err := sim.New(o.cfg)
	if err != nil {
		return err
	}
	// Each board listens twice (ping, SUT agent) and each relay board
	// once; Start fails with "too many open files" below that.
	need := uint64(3*len(inv.Devices) + len(inv.RelayBoards) + 1024)
	if got := rlimit.RaiseNoFile(need); got < need {
		logger.Warn("open file limit below what the lab needs", "limit", got, "need", need)
	}

	// 3. Bind the relay boards and start the boards.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := lab.Start(ctx); err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := lab.Shutdown(sctx); err != nil {
			logger.Warn("lab shutdown", "error", err)
		}
	}()

	// 4. The inventory with bound relay ports, for inventory sync.
	if o.writeInventory != "" {
		if err := writeInventory(o.writeInventory, lab.Inventory()); err != nil {
			return err
		}
		logger.Info("wrote inventory", "path", o.writeInventory)
	}

	// 5. Serve the ground truth.
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{Handler: lab.Handler(), ReadHeaderTimeout: 10 * time.Second}
	serveErr := make(chan error, 1)
	// Exits when srv.Shutdown closes the listener.
	go func() { serveErr <- srv.Serve(ln) }()
	fmt.Printf("ground truth: http://%s\n", ln.Addr())
	logger.Info("serving ground truth", "url", "http://"+ln.Addr().String())

	// 6. Wait for a signal, then stop in reverse order: the ground truth,
	// then the lab (deferred).
	select {
	case <-ctx.Done():
		logger.Info("shutting down")
	case err := <-serveErr:
		logger.Error("ground truth server failed", "error", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}
