// Command mozpoold is one imaging server of a Mozpool cluster: a Raft node
// holding the replicated lab state, serving the Mozpool HTTP API.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mozpool/mozpool/client"
	"github.com/mozpool/mozpool/cluster"
	"github.com/mozpool/mozpool/fsm"
	"github.com/mozpool/mozpool/httpapi"
	"github.com/mozpool/mozpool/logstore"
)

type options struct {
	dataDir         string
	name            string
	rack            string
	httpBind        string
	httpAdvertise   string
	raftBind        string
	raftAdvertise   string
	gossipBind      string
	gossipAdvertise string
	bootstrap       bool
	join            string
	token           string
	logJSON         bool
	logLevel        string
	raftTimeout     time.Duration
}

func parseFlags(args []string) (*options, error) {
	o := &options{}
	host, _ := os.Hostname()
	fs := flag.NewFlagSet("mozpoold", flag.ContinueOnError)
	fs.StringVar(&o.dataDir, "data", "", "data directory: raft log, snapshots, node id, device logs (required)")
	fs.StringVar(&o.name, "name", host, "imaging server name this node serves, as in the inventory")
	fs.StringVar(&o.rack, "rack", "", "rack this imaging server serves")
	fs.StringVar(&o.httpBind, "http", "127.0.0.1:8010", "HTTP API listen address (port 0 picks one)")
	fs.StringVar(&o.httpAdvertise, "http-advertise", "", "HTTP API URL other nodes and clients use (default: from -http)")
	fs.StringVar(&o.raftBind, "raft", "127.0.0.1:8011", "Raft listen address")
	fs.StringVar(&o.raftAdvertise, "raft-advertise", "", "Raft address other nodes dial (default: the bound address)")
	fs.StringVar(&o.gossipBind, "gossip", "127.0.0.1:8012", "gossip (memberlist) listen address, UDP and TCP")
	fs.StringVar(&o.gossipAdvertise, "gossip-advertise", "", "gossip address other nodes use (default: the bound address)")
	fs.BoolVar(&o.bootstrap, "bootstrap", false, "found a new cluster if the data dir is empty (first node only, once)")
	fs.StringVar(&o.join, "join", "", "comma-separated API URLs of cluster members to join through at start (retried)")
	fs.StringVar(&o.token, "token", os.Getenv("MOZPOOL_CLUSTER_TOKEN"), "cluster token shared by all nodes (default $MOZPOOL_CLUSTER_TOKEN)")
	fs.DurationVar(&o.raftTimeout, "raft-timeout", time.Second, "raft heartbeat and election timeout (the leader lease is half of it)")
	fs.BoolVar(&o.logJSON, "log-json", false, "log as JSON lines")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: trace, debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if o.dataDir == "" {
		return nil, errors.New("-data is required")
	}
	if o.name == "" {
		return nil, errors.New("-name is required")
	}
	return o, nil
}

func main() {
	o, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "mozpoold:", err)
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "mozpoold:", err)
		os.Exit(1)
	}
}

func run(o *options) error {
	// 1. Root logger; components take named sub-loggers.
	logger := hclog.New(&hclog.LoggerOptions{
		Name: "mozpoold", Level: hclog.LevelFromString(o.logLevel), JSONFormat: o.logJSON, TimeFormat: time.RFC3339Nano,
	})
	if err := os.MkdirAll(o.dataDir, 0o755); err != nil {
		return err
	}

	// 2. Device and request logs live outside the FSM, in the node's own store.
	lcfg := logstore.DefaultConfig()
	lcfg.Path = filepath.Join(o.dataDir, "logs.db")
	lcfg.Logger = logger
	logs, err := logstore.Open(lcfg)
	if err != nil {
		return fmt.Errorf("open log store: %w", err)
	}
	defer logs.Close()

	// 3. The replicated state; every applied log line goes to the store.
	state := fsm.New(fsm.Config{
		Logger: logger.Named("fsm"),
		Notify: func(n fsm.Notification) {
			if len(n.Logs) > 0 {
				logs.Append(n.Logs)
			}
		},
	})

	// 4. Listen for HTTP first so the node can advertise its real address.
	ln, err := net.Listen("tcp", o.httpBind)
	if err != nil {
		return fmt.Errorf("listen http: %w", err)
	}
	httpURL := o.httpAdvertise
	if httpURL == "" {
		httpURL = "http://" + ln.Addr().String()
	}

	// 5. Join the Raft group.
	ccfg := cluster.DefaultConfig()
	ccfg.DataDir = o.dataDir
	ccfg.Name, ccfg.Rack = o.name, o.rack
	ccfg.RaftBind, ccfg.RaftAdvertise = o.raftBind, o.raftAdvertise
	ccfg.GossipBind, ccfg.GossipAdvertise = o.gossipBind, o.gossipAdvertise
	ccfg.HTTPAddr = strings.TrimRight(httpURL, "/")
	ccfg.Bootstrap = o.bootstrap
	ccfg.Token = o.token
	ccfg.HeartbeatTimeout, ccfg.ElectionTimeout, ccfg.LeaderLeaseTimeout = o.raftTimeout, o.raftTimeout, o.raftTimeout/2
	ccfg.FSM = state
	ccfg.Logger = logger
	node, err := cluster.New(ccfg)
	if err != nil {
		ln.Close()
		return err
	}

	// 6. Serve the API.
	acfg := httpapi.DefaultConfig()
	acfg.FSM, acfg.Cluster, acfg.Logs, acfg.Logger, acfg.Token = state, node, logs, logger, o.token
	api, err := httpapi.New(acfg)
	if err != nil {
		node.Shutdown(context.Background())
		ln.Close()
		return err
	}
	srv := &http.Server{Handler: api.Handler(), ReadHeaderTimeout: 10 * time.Second}
	serveErr := make(chan error, 1)
	// Exits when srv.Shutdown closes the listener.
	go func() { serveErr <- srv.Serve(ln) }()
	if err := writeIdentity(o.dataDir, node.Self()); err != nil {
		logger.Warn("could not write node.json", "error", err)
	}
	logger.Info("serving", "id", node.ID(), "name", o.name, "http", httpURL, "raft", node.Self().RaftAddr, "gossip", node.Self().GossipAddr)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	// 7. Join through the given members, retrying until it works.
	if o.join != "" {
		// Exits when the join succeeds or ctx ends.
		go joinCluster(ctx, logger, o, node.Self())
	}

	// 8. Wait for a signal (or the server failing), then shut down in
	// reverse order: stop taking requests, leave Raft, close the log store.
	select {
	case <-ctx.Done():
		logger.Info("shutting down")
	case err := <-serveErr:
		logger.Error("http server failed", "error", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	if err := node.Shutdown(sctx); err != nil {
		logger.Warn("cluster shutdown", "error", err)
	}
	return nil
}

// writeIdentity records the node's identity and addresses in
// <data>/node.json, for scripts that start nodes on port 0.
func writeIdentity(dir string, id cluster.Identity) error {
	b, err := json.MarshalIndent(id, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, "node.json.tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, "node.json"))
}

func joinCluster(ctx context.Context, logger hclog.Logger, o *options, self cluster.Identity) {
	targets := strings.Split(o.join, ",")
	wait := 200 * time.Millisecond
	for {
		for _, t := range targets {
			c := client.New(strings.TrimSpace(t), client.WithToken(o.token), client.WithTimeout(15*time.Second))
			res, err := c.Join(ctx, self)
			if err == nil {
				logger.Info("joined the cluster", "via", t, "action", res.Action, "suffrage", res.Suffrage)
				return
			}
			logger.Warn("join failed; retrying", "via", t, "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(wait*2, 5*time.Second)
	}
}
