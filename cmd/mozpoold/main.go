// Command mozpoold is one imaging server of a Mozpool cluster: a Raft node
// holding the replicated lab state, running lifeguard for its own rack's
// boards and serving the Mozpool HTTP API.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mozpool/mozpool/daemon"
	"github.com/mozpool/mozpool/internal/rlimit"
)

func parseFlags(args []string) (daemon.Config, hclog.Logger, error) {
	c := daemon.DefaultConfig()
	host, _ := os.Hostname()
	var join, logLevel string
	var logJSON, plainHTTP bool
	fs := flag.NewFlagSet("mozpoold", flag.ContinueOnError)
	fs.StringVar(&c.DataDir, "data", "", "data directory: raft log, snapshots, node id, device logs, PXE files (required)")
	fs.StringVar(&c.Name, "name", host, "imaging server name this node serves, as in the inventory")
	fs.StringVar(&c.Rack, "rack", "", "rack this imaging server serves")
	fs.StringVar(&c.HTTPBind, "http", c.HTTPBind, "HTTP API listen address (port 0 picks one)")
	fs.StringVar(&c.HTTPAdvertise, "http-advertise", "", "HTTP API URL other nodes and clients use (default: from -http)")
	fs.StringVar(&c.RaftBind, "raft", c.RaftBind, "Raft listen address")
	fs.StringVar(&c.RaftAdvertise, "raft-advertise", "", "Raft address other nodes dial (default: the bound address)")
	fs.StringVar(&c.GossipBind, "gossip", c.GossipBind, "gossip (memberlist) listen address, UDP and TCP")
	fs.StringVar(&c.GossipAdvertise, "gossip-advertise", "", "gossip address other nodes use (default: the bound address)")
	fs.BoolVar(&c.Bootstrap, "bootstrap", false, "found a new cluster if the data dir is empty (first node only, once)")
	fs.StringVar(&join, "join", "", "comma-separated API URLs of cluster members to join through at start (retried)")
	fs.StringVar(&c.Token, "token", os.Getenv("MOZPOOL_CLUSTER_TOKEN"), "cluster token shared by all nodes (default $MOZPOOL_CLUSTER_TOKEN)")
	fs.DurationVar(&c.RaftTimeout, "raft-timeout", c.RaftTimeout, "raft heartbeat and election timeout, and the leader lease")
	fs.StringVar(&c.RaftLog, "raft-log", "", "Raft log store of a new data dir: wal (the default) or bolt; a data dir keeps the store it was created with")
	fs.StringVar(&c.TFTPRoot, "tftp-root", "", "directory of PXE files served to this rack's boards (default DATA/tftp)")
	fs.StringVar(&c.TFTPAddr, "tftp", "", "run the embedded read-only TFTP server for -tftp-root on this address (e.g. :69); empty: off")
	fs.StringVar(&c.SyslogAddr, "syslog", "", "receive this rack's boards' syslog (UDP, RFC 3164 and 5424) on this address (e.g. :514) and file it in their device logs; empty: off")
	fs.StringVar(&c.ServerIP, "server-ip", "", "address written for %IPADDRESS% in PXE configs (default: the host of the HTTP advertise URL)")
	fs.StringVar(&c.PingMode, "ping-mode", c.PingMode, "how boards are pinged: icmp (real hardware) or tcp (connect to -ping-port; the simulator)")
	fs.IntVar(&c.PingPort, "ping-port", c.PingPort, "port for -ping-mode tcp")
	fs.IntVar(&c.SUTPort, "sut-port", c.SUTPort, "SUT agent port on the boards")
	fs.Float64Var(&c.TimeScale, "time-scale", 0, "set the cluster's time scale (multiplies every state timeout: 0.1 makes 600 s take 60 s); 0 leaves it as it is")
	fs.DurationVar(&c.TakeoverAfter, "takeover-after", 60*time.Second, "how long a rack's owner must be unreachable before its first live standby takes the rack over (scaled by the time scale; never below 4 raft timeouts); negative: never")
	fs.StringVar(&c.RelaySource, "relay-source", "", "local IP address relay board connections are made from (default: chosen by the system)")
	fs.StringVar(&c.TLS.CA, "tls-ca", os.Getenv("MOZPOOL_TLS_CA"), "PEM file of the cluster's CA certificate (mozpoolctl tls ca; default $MOZPOOL_TLS_CA)")
	fs.StringVar(&c.TLS.Cert, "tls-cert", os.Getenv("MOZPOOL_TLS_CERT"), "PEM file of this node's certificate (mozpoolctl tls cert; reloaded when it changes; default $MOZPOOL_TLS_CERT)")
	fs.StringVar(&c.TLS.Key, "tls-key", os.Getenv("MOZPOOL_TLS_KEY"), "PEM file of this node's key (default $MOZPOOL_TLS_KEY)")
	fs.BoolVar(&plainHTTP, "plain-http", false, "run without TLS: API, Raft and node-to-node calls in clear text (INSECURE; for a lab on a trusted network)")
	fs.StringVar(&c.PprofAddr, "pprof", "", "serve Go's profiles (net/http/pprof, /debug/pprof/) on this address, apart from the API and without authentication: bind it to loopback (e.g. 127.0.0.1:0); empty: off")
	fs.BoolVar(&logJSON, "log-json", false, "log as JSON lines")
	fs.StringVar(&logLevel, "log-level", "info", "log level: trace, debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return c, nil, err
	}
	if fs.NArg() > 0 {
		return c, nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if join != "" {
		c.Join = strings.Split(join, ",")
	}
	if c.DataDir == "" {
		return c, nil, errors.New("-data is required")
	}
	switch {
	case plainHTTP && c.TLS.Enabled():
		return c, nil, errors.New("-plain-http and -tls-* exclude each other")
	case !plainHTTP && (c.TLS.CA == "" || c.TLS.Cert == "" || c.TLS.Key == ""):
		return c, nil, errors.New("TLS needs -tls-ca, -tls-cert and -tls-key (create them with mozpoolctl tls ca and tls cert), or run with -plain-http")
	}
	if err := c.Validate(); err != nil {
		return c, nil, err
	}
	c.Logger = hclog.New(&hclog.LoggerOptions{
		Name: "mozpoold", Level: hclog.LevelFromString(logLevel), JSONFormat: logJSON, TimeFormat: time.RFC3339Nano,
	})
	return c, c.Logger, nil
}

func main() {
	// 1. Configuration from flags; usage errors exit 2.
	cfg, logger, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "mozpoold:", err)
		os.Exit(2)
	}

	// A node pings each of its boards over TCP and serves many clients:
	// room for a large lab's sockets.
	if n := rlimit.RaiseNoFile(1 << 18); n < 1<<16 {
		logger.Debug("open file limit", "limit", n)
	}

	// 2. Start the node: log store, state, TFTP, syslog, Raft, hardware,
	// lifeguard, API.
	d, err := daemon.Start(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mozpoold:", err)
		os.Exit(1)
	}

	// 3. Wait for a signal, or for the HTTP server to fail.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	select {
	case <-ctx.Done():
		logger.Info("shutting down")
	case err := <-d.Served():
		logger.Error("http server failed", "error", err)
	}

	// 4. Shut down in reverse order (leadership is handed over first).
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := d.Shutdown(sctx); err != nil {
		logger.Warn("shutdown", "error", err)
	}
}
