// Package daemon assembles one imaging server: the log store, the
// replicated state with the device state machine, the Raft node, network
// boot (PXE files and TFTP), the hardware layer, lifeguard and the HTTP API.
// cmd/mozpoold is a thin wrapper around it; tests start whole nodes with it.
//
// Goroutines: Start launches the HTTP server, the lifeguard executor and,
// when configured, the syslog receiver, a joiner and a time-scale setter;
// Shutdown stops them in reverse order of start and waits for them.
package daemon

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mozpool/mozpool/bmm"
	"github.com/mozpool/mozpool/bmm/ping"
	"github.com/mozpool/mozpool/bmm/pxe"
	"github.com/mozpool/mozpool/bmm/relay"
	"github.com/mozpool/mozpool/bmm/sut"
	"github.com/mozpool/mozpool/bmm/syslog"
	"github.com/mozpool/mozpool/callbacks"
	"github.com/mozpool/mozpool/client"
	"github.com/mozpool/mozpool/cluster"
	"github.com/mozpool/mozpool/events"
	"github.com/mozpool/mozpool/fsm"
	"github.com/mozpool/mozpool/httpapi"
	"github.com/mozpool/mozpool/internal/tlsutil"
	"github.com/mozpool/mozpool/lifeguard"
	"github.com/mozpool/mozpool/logstore"
	"github.com/mozpool/mozpool/metrics"
	"github.com/mozpool/mozpool/requests"
)

// Config configures a node. Build it on DefaultConfig.
type Config struct {
	// DataDir holds everything the node keeps. Required.
	DataDir string
	// Name is the imaging server this node is; Rack the rack it serves.
	Name, Rack string
	// HTTPBind is the API listen address; HTTPAdvertise the URL others
	// use (default: http:// + the bound address).
	HTTPBind, HTTPAdvertise string
	// Raft and gossip addresses (see cluster.Config).
	RaftBind, RaftAdvertise     string
	GossipBind, GossipAdvertise string
	// Bootstrap founds a new cluster (first node only, once).
	Bootstrap bool
	// Join lists member API URLs to join through at start (retried).
	Join []string
	// Token is the cluster token.
	Token string
	// TLS names the cluster CA's certificate and this node's certificate
	// and key (mozpoolctl tls ca / tls cert). With them the API is served
	// over HTTPS (client certificates optional), Raft runs mutual TLS and
	// nodes call each other over HTTPS with their certificates. Without
	// them everything is plain TCP and HTTP, and the node logs a loud
	// warning.
	TLS tlsutil.Files
	// RaftTimeout is the heartbeat and election timeout, and the leader
	// lease: a leader steps down after that long without a quorum.
	// Default 1 s.
	RaftTimeout time.Duration
	// RaftLog is the Raft log store of a new data dir (cluster.RaftLogWAL,
	// the default when empty, or cluster.RaftLogBolt); a data dir keeps
	// the one it was created with.
	RaftLog string
	// TFTPRoot is the directory of PXE files (default DataDir/tftp);
	// TFTPAddr, if set, runs the embedded TFTP server there.
	TFTPRoot, TFTPAddr string
	// ServerIP replaces %IPADDRESS% in PXE configs (default: the host of
	// the HTTP advertise URL).
	ServerIP string
	// PingMode is "icmp" or "tcp"; PingPort the port of tcp mode.
	PingMode string
	PingPort int
	// SUTPort is the boards' SUT agent port.
	SUTPort int
	// SyslogAddr, if set, runs a syslog receiver there (UDP, e.g. ":514")
	// that files this rack's boards' messages in their device logs.
	SyslogAddr string
	// TimeScale, if > 0, is proposed as the cluster's time scale; below 1
	// it also shortens the relay's off time and recovery pause, and device
	// timeouts are never scaled below MinScaledDeviceTimeout.
	TimeScale float64
	// PprofAddr, if set, serves Go's profiler (net/http/pprof, under
	// /debug/pprof/) on its own listener, without authentication: bind it
	// to loopback.
	PprofAddr string
	// TakeoverAfter is how long a rack's owner must be unreachable before
	// a standby takes the rack over (cluster.Config.TakeoverAfter; scaled
	// by the time scale). 0: the default, 60 s; negative: never.
	TakeoverAfter time.Duration
	// RelaySource, if set, is the local IP address relay board
	// connections are made from (a multi-homed imaging server; the
	// simulator's relay log tells servers apart by it).
	RelaySource string
	// Logger is the root logger. Default: a null logger.
	Logger hclog.Logger
}

// DefaultConfig returns the defaults (the listen addresses mozpoold uses).
func DefaultConfig() Config {
	return Config{
		HTTPBind: "127.0.0.1:8010", RaftBind: "127.0.0.1:8011", GossipBind: "127.0.0.1:8012",
		RaftTimeout: 300 * time.Millisecond, PingMode: "icmp", PingPort: 20700, SUTPort: 20701,
	}
}

// Validate reports the first problem with the configuration.
func (c *Config) Validate() error {
	switch {
	case c.DataDir == "":
		return errors.New("data dir is required")
	case c.Name == "":
		return errors.New("imaging server name is required")
	case c.TimeScale < 0:
		return errors.New("time scale must not be negative")
	case c.RaftTimeout <= 0:
		return errors.New("raft timeout must be positive")
	}
	if _, err := ping.ParseMode(c.PingMode); err != nil {
		return err
	}
	return nil
}

// Daemon is a running node.
type Daemon struct {
	cfg    Config
	logger hclog.Logger

	// The components, exported for tests and tools.
	FSM        *fsm.FSM
	Node       *cluster.Node
	Logs       *logstore.Store
	Hardware   *bmm.Controller
	Executor   *lifeguard.Executor
	Requests   *requests.Driver
	PXE        *pxe.Writer
	URL        string // the advertised API URL
	TFTPServer *pxe.Server
	Syslog     *syslog.Receiver // nil unless SyslogAddr is set
	Metrics    *metrics.Metrics // served at MetricsPath
	Callbacks  *callbacks.Deliverer
	Events     *events.Hub // state-change events, stored in Logs
	API        *httpapi.Server
	TLS        *tlsutil.Bundle // nil without TLS
	PprofURL   string          // the profiler's base URL; empty unless PprofAddr is set

	ln      net.Listener
	pprof   *http.Server
	pprofLn net.Listener
	srv     *http.Server
	serveCh chan error
	cancel  context.CancelFunc       // stops the executor, joiner and scale setter
	signals *lifeguard.SyslogSignals // nil without a syslog receiver
	wg      sync.WaitGroup
	once    sync.Once
	err     error
}

// Start builds and starts a node.
func Start(cfg Config) (d *Daemon, err error) {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.TFTPRoot == "" {
		cfg.TFTPRoot = filepath.Join(cfg.DataDir, "tftp")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, err
	}
	d = &Daemon{cfg: cfg, logger: cfg.Logger, serveCh: make(chan error, 1), Metrics: metrics.New(cfg.Name)}
	// On failure, undo what was started. The steps use self, not d: a
	// failed return has set d to nil by the time they run.
	self := d
	var undo []func()
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()

	// 1. Device and request logs live outside the FSM, in the node's own store.
	lcfg := logstore.DefaultConfig()
	lcfg.Path, lcfg.Logger = filepath.Join(cfg.DataDir, "logs.db"), cfg.Logger
	if d.Logs, err = logstore.Open(lcfg); err != nil {
		return nil, fmt.Errorf("open log store: %w", err)
	}
	undo = append(undo, func() { self.Logs.Close() })
	d.Metrics.RegisterLogStore(d.Logs.Size, d.Logs.Pruned)
	d.Events = events.NewHub(d.Logs)

	// 2. The replicated state with the device and request state machines;
	// log lines go to the store, device changes to the executor (once it
	// exists), request changes to the request driver (which acts only
	// while this node leads).
	var executor atomic.Pointer[lifeguard.Executor]
	var driver atomic.Pointer[requests.Driver]
	var deliverer atomic.Pointer[callbacks.Deliverer]
	d.FSM = fsm.New(fsm.Config{
		Logger: cfg.Logger.Named("fsm"), Devices: lifeguard.Machine{}, Requests: requests.Machine{},
		Notify: func(n fsm.Notification) {
			if len(n.Logs) > 0 {
				// Not again for an entry replayed after a restart.
				d.Logs.AppendApplied(n.Index, n.Logs)
			}
			d.Metrics.Notify(d.FSM, n)
			d.Events.Publish(events.Derive(d.FSM, n))
			if e := executor.Load(); e != nil {
				e.Notify(n)
			}
			if r := driver.Load(); r != nil {
				r.Notify(n)
			}
			if cb := deliverer.Load(); cb != nil {
				cb.Notify(n)
			}
		},
	})
	d.Metrics.RegisterState(d.FSM)
	rcfg := requests.DefaultDriverConfig()
	rcfg.FSM, rcfg.Logger = d.FSM, cfg.Logger
	// The driver can start (on gaining leadership) before cluster.New has
	// returned, and the syslog receiver starts before cluster.New; until
	// then their proposals fail (the driver retries, the receiver drops).
	var node atomic.Pointer[cluster.Node]
	propose := func(ctx context.Context, t fsm.CommandType, c fsm.Command) (fsm.Result, error) {
		if n := node.Load(); n != nil {
			return n.Apply(ctx, t, c)
		}
		return fsm.Result{}, cluster.ErrNoLeader
	}
	rcfg.Propose = propose
	if d.Requests, err = requests.NewDriver(rcfg); err != nil {
		return nil, err
	}
	driver.Store(d.Requests)

	// 3. Listen for HTTP first so the node can advertise its real address.
	scheme := "http"
	if cfg.TLS.Enabled() {
		if d.TLS, err = tlsutil.Load(cfg.TLS); err != nil {
			return nil, err
		}
		scheme = "https"
	} else {
		d.logger.Warn("TLS IS OFF: the API (tokens included), Raft and node-to-node calls travel in clear text " +
			"and anything that reaches the Raft port can speak Raft; give -tls-ca, -tls-cert and -tls-key (see mozpoolctl tls)")
	}
	if d.ln, err = net.Listen("tcp", cfg.HTTPBind); err != nil {
		return nil, fmt.Errorf("listen http: %w", err)
	}
	undo = append(undo, func() { self.ln.Close() })
	d.URL = strings.TrimRight(cfg.HTTPAdvertise, "/")
	if d.URL == "" {
		d.URL = scheme + "://" + d.ln.Addr().String()
	}
	if cfg.PprofAddr != "" {
		if d.pprofLn, err = net.Listen("tcp", cfg.PprofAddr); err != nil {
			return nil, fmt.Errorf("listen pprof: %w", err)
		}
		undo = append(undo, func() { self.pprofLn.Close() })
		d.PprofURL = "http://" + d.pprofLn.Addr().String()
	}

	// 4. Network boot: PXE files, and the TFTP server boards fetch them from.
	serverIP := cfg.ServerIP
	if serverIP == "" {
		if u, err := url.Parse(d.URL); err == nil {
			serverIP = u.Hostname()
		}
	}
	if d.PXE, err = pxe.NewWriter(cfg.TFTPRoot, serverIP); err != nil {
		return nil, fmt.Errorf("pxe: %w", err)
	}
	tftpAdvertise := ""
	if cfg.TFTPAddr != "" {
		tcfg := pxe.DefaultConfig()
		tcfg.Root, tcfg.Addr, tcfg.Logger = cfg.TFTPRoot, cfg.TFTPAddr, cfg.Logger
		if d.TFTPServer, err = pxe.NewServer(tcfg); err == nil {
			err = d.TFTPServer.Start()
		}
		if err != nil {
			return nil, fmt.Errorf("tftp: %w", err)
		}
		undo = append(undo, func() { self.TFTPServer.Shutdown(context.Background()) })
		tftpAdvertise = advertised(d.TFTPServer.Addr().String(), serverIP)
	}

	// 5. The boards' syslog, filed in their device logs through the
	// cluster. It listens before the node joins so that the node can
	// advertise the bound address, as it does TFTP's.
	syslogAdvertise := ""
	if cfg.SyslogAddr != "" {
		scfg := syslog.DefaultConfig()
		scfg.Addr, scfg.Server, scfg.FSM, scfg.Propose, scfg.Logger = cfg.SyslogAddr, cfg.Name, d.FSM, propose, cfg.Logger
		d.signals = lifeguard.NewSyslogSignals(lifeguard.SyslogSignalsConfig{FSM: d.FSM, Propose: propose, Logger: cfg.Logger})
		scfg.OnMessage = d.signals.Message
		if d.Syslog, err = syslog.New(scfg); err == nil {
			err = d.Syslog.Start()
		}
		if err != nil {
			return nil, fmt.Errorf("syslog: %w", err)
		}
		undo = append(undo, func() { self.Syslog.Shutdown(context.Background()) })
		syslogAdvertise = advertised(d.Syslog.Addr().String(), serverIP)
	}

	// Request callbacks, delivered by the leader.
	if d.Callbacks, err = callbacks.New(callbacks.Config{FSM: d.FSM, Propose: propose, BaseURL: d.URL, Logger: cfg.Logger}); err != nil {
		return nil, err
	}
	deliverer.Store(d.Callbacks)

	// 6. Join the Raft group.
	ccfg := cluster.DefaultConfig()
	ccfg.DataDir, ccfg.Name, ccfg.Rack = cfg.DataDir, cfg.Name, cfg.Rack
	ccfg.RaftBind, ccfg.RaftAdvertise = cfg.RaftBind, cfg.RaftAdvertise
	ccfg.GossipBind, ccfg.GossipAdvertise = cfg.GossipBind, cfg.GossipAdvertise
	ccfg.HTTPAddr, ccfg.TFTPAddr, ccfg.SyslogAddr = d.URL, tftpAdvertise, syslogAdvertise
	ccfg.Bootstrap, ccfg.Token, ccfg.FSM, ccfg.Logger = cfg.Bootstrap, cfg.Token, d.FSM, cfg.Logger
	ccfg.TLS, ccfg.RaftLog = d.TLS, cfg.RaftLog
	ccfg.HeartbeatTimeout, ccfg.ElectionTimeout, ccfg.LeaderLeaseTimeout = cfg.RaftTimeout, cfg.RaftTimeout, cfg.RaftTimeout
	ccfg.LeaderTasks = []func(context.Context){d.Requests.Run, d.Callbacks.Run}
	if cfg.TakeoverAfter != 0 {
		ccfg.TakeoverAfter = cfg.TakeoverAfter
	}
	if d.Node, err = cluster.New(ccfg); err != nil {
		return nil, err
	}
	node.Store(d.Node)
	d.Metrics.RegisterCluster(clusterStatus{d.Node})
	undo = append(undo, func() { self.Node.Shutdown(context.Background()) })

	// 7. The hardware layer for this rack, and lifeguard driving it.
	if d.Hardware, err = newHardware(cfg, d.FSM, d.Node, d.PXE, d.Metrics); err != nil {
		return nil, err
	}
	ecfg := lifeguard.DefaultExecutorConfig()
	ecfg.Server, ecfg.FSM, ecfg.Hardware, ecfg.Propose, ecfg.Logger = cfg.Name, d.FSM, d.Hardware, d.Node.Apply, cfg.Logger
	ecfg.CaughtUp = d.Node.CaughtUp
	ecfg.InContact = d.Node.InContact
	if d.Executor, err = lifeguard.NewExecutor(ecfg); err != nil {
		return nil, err
	}

	// 8. The API.
	acfg := httpapi.DefaultConfig()
	acfg.FSM, acfg.Cluster, acfg.Logs, acfg.Logger, acfg.Token = d.FSM, d.Node, d.Logs, cfg.Logger, cfg.Token
	acfg.Hardware = d.Hardware
	if d.TLS != nil {
		acfg.ClientTLS = d.TLS.ClientConfig()
	}
	api, err := httpapi.New(acfg)
	if err != nil {
		return nil, err
	}
	api.SetEvents(d.Events)
	d.API = api

	// Nothing can fail from here on: start the goroutines.
	var ctx context.Context
	ctx, d.cancel = context.WithCancel(context.Background())
	executor.Store(d.Executor)
	d.wg.Add(1)
	// Exits when Shutdown cancels ctx.
	go func() { defer d.wg.Done(); d.Executor.Run(ctx) }()
	if d.signals != nil {
		d.wg.Add(1)
		// Exits when Shutdown cancels ctx.
		go func() { defer d.wg.Done(); d.signals.Run(ctx) }()
	}
	d.srv = &http.Server{Handler: withMetrics(d.Metrics, api.InstrumentedHandler(d.Metrics.ObserveHTTP)), ReadHeaderTimeout: 10 * time.Second}
	// Event streams and long polls never end by themselves: end them on
	// shutdown, so they do not hold it.
	d.srv.RegisterOnShutdown(d.Events.Close)
	d.srv.RegisterOnShutdown(api.EndLongPolls)
	ln := d.ln
	if d.TLS != nil {
		ln = tls.NewListener(ln, d.TLS.ServerConfig(tls.VerifyClientCertIfGiven))
	}
	// Exits when Shutdown closes the server.
	go func() { d.serveCh <- d.srv.Serve(ln) }()
	if d.pprofLn != nil {
		d.pprof = &http.Server{Handler: pprofHandler(), ReadHeaderTimeout: 10 * time.Second}
		// Exits when Shutdown closes the server.
		go func() { d.pprof.Serve(d.pprofLn) }()
	}
	if err := writeIdentity(cfg.DataDir, d.Node.Self()); err != nil {
		d.logger.Warn("could not write node.json", "error", err)
	}
	if len(cfg.Join) > 0 {
		d.wg.Add(1)
		// Exits when the join succeeds or ctx ends.
		go func() { defer d.wg.Done(); d.join(ctx) }()
	}
	if cfg.TimeScale > 0 {
		d.wg.Add(1)
		// Exits when the scale is set or ctx ends.
		go func() { defer d.wg.Done(); d.setTimeScale(ctx) }()
	}
	d.logger.Info("serving", "id", d.Node.ID(), "name", cfg.Name, "http", d.URL,
		"raft", d.Node.Self().RaftAddr, "gossip", d.Node.Self().GossipAddr, "tftp", tftpAdvertise, "syslog", syslogAdvertise)
	if d.PprofURL != "" {
		d.logger.Info("serving pprof", "url", d.PprofURL+"/debug/pprof/")
	}
	return d, nil
}

// Served returns a channel that yields the HTTP server's error if it stops
// by itself.
func (d *Daemon) Served() <-chan error { return d.serveCh }

// Shutdown stops the node in reverse order of start: stop taking requests,
// stop lifeguard and the background loops, stop the syslog receiver (filing
// what it has queued, so before Raft although it starts before it), stop
// the hardware layer, leave Raft (handing over leadership), stop TFTP,
// close the log store. It can be called more than once.
func (d *Daemon) Shutdown(ctx context.Context) error {
	d.once.Do(func() {
		// Leadership goes first, while this node still answers forwarded
		// writes (with "not leader", so they are retried at the new
		// leader): a graceful restart of the leader then costs writers the
		// transfer, not an election timeout.
		d.Node.HandOff()
		d.srv.Shutdown(ctx)
		if d.pprof != nil {
			d.pprof.Close()
		}
		d.cancel()
		d.wg.Wait()
		if d.Syslog != nil {
			d.Syslog.Shutdown(ctx)
		}
		d.Hardware.Shutdown(ctx)
		d.err = d.Node.Shutdown(ctx)
		if d.TFTPServer != nil {
			d.TFTPServer.Shutdown(ctx)
		}
		d.Logs.Close()
	})
	return d.err
}

// Kill stops the node as a crash would: connections dropped, no leadership
// transfer. Fault-injection tests use it.
func (d *Daemon) Kill() {
	d.once.Do(func() {
		d.Events.Close()
		d.srv.Close()
		if d.pprof != nil {
			d.pprof.Close()
		}
		if d.Syslog != nil {
			// A crash files nothing more: with a done context the
			// receiver drops what it has queued.
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			d.Syslog.Shutdown(ctx)
		}
		d.Node.Kill()
		d.cancel()
		d.wg.Wait()
		d.Hardware.Shutdown(context.Background())
		if d.TFTPServer != nil {
			d.TFTPServer.Shutdown(context.Background())
		}
		d.Logs.Close()
	})
}

// newHardware builds the BMM drivers and the controller for this rack.
// With a time scale below 1 (a simulated lab), the relay's off time and
// recovery pause shrink with it.
// Every driver counts its operations in m.
func newHardware(cfg Config, state *fsm.FSM, node *cluster.Node, pxeWriter *pxe.Writer, m *metrics.Metrics) (*bmm.Controller, error) {
	rcfg := relay.DefaultConfig()
	rcfg.Logger = cfg.Logger
	if cfg.TimeScale > 0 && cfg.TimeScale < 1 {
		rcfg.OffTime = max(scaled(rcfg.OffTime, cfg.TimeScale), 20*time.Millisecond)
		rcfg.Recovery = max(scaled(rcfg.Recovery, cfg.TimeScale), 20*time.Millisecond)
	}
	if cfg.RelaySource != "" {
		ip := net.ParseIP(cfg.RelaySource)
		if ip == nil {
			return nil, fmt.Errorf("relay source %q is not an IP address", cfg.RelaySource)
		}
		rcfg.Dialer = &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}}
	}
	relays, err := relay.New(rcfg)
	if err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	mode, _ := ping.ParseMode(cfg.PingMode)
	pcfg := ping.DefaultConfig()
	pcfg.Mode, pcfg.Port, pcfg.Logger = mode, cfg.PingPort, cfg.Logger
	pinger, err := ping.New(pcfg)
	if err != nil {
		return nil, fmt.Errorf("ping: %w", err)
	}
	scfg := sut.DefaultConfig()
	scfg.Port, scfg.Logger = cfg.SUTPort, cfg.Logger
	agent, err := sut.New(scfg)
	if err != nil {
		return nil, fmt.Errorf("sut: %w", err)
	}
	m.RegisterRelayQueue(relays.Waiting)
	var pxeDriver bmm.PXE
	if pxeWriter != nil {
		pxeDriver = countedPXE{pxeWriter, m}
	}
	return bmm.New(bmm.Config{
		Server: cfg.Name, FSM: state, Propose: node.Apply,
		Relay: countedRelay{relays, m}, PXE: pxeDriver, Pinger: countedPinger{pinger, m}, SUT: countedSUT{agent, m},
		Logger: cfg.Logger,
	})
}

func scaled(d time.Duration, scale float64) time.Duration { return time.Duration(float64(d) * scale) }

// advertised turns a bound address into one others can dial: a wildcard
// host is replaced by host.
func advertised(bound, host string) string {
	h, port, err := net.SplitHostPort(bound)
	if err != nil {
		return bound
	}
	if ip := net.ParseIP(h); ip == nil || ip.IsUnspecified() {
		h = host
	}
	return net.JoinHostPort(h, port)
}

// writeIdentity records the node's identity in DataDir/node.json, for
// scripts that start nodes on port 0.
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

// join joins the cluster through the configured members, retrying.
func (d *Daemon) join(ctx context.Context) {
	wait := 200 * time.Millisecond
	for {
		for _, t := range d.cfg.Join {
			opts := []client.Option{client.WithToken(d.cfg.Token), client.WithTimeout(15 * time.Second)}
			if d.TLS != nil {
				opts = append(opts, client.WithHTTPClient(&http.Client{Transport: &http.Transport{TLSClientConfig: d.TLS.ClientConfig()}}))
			}
			c := client.New(strings.TrimSpace(t), opts...)
			res, err := c.Join(ctx, d.Node.Self())
			if err == nil {
				d.logger.Info("joined the cluster", "via", t, "action", res.Action, "suffrage", res.Suffrage)
				return
			}
			d.logger.Warn("join failed; retrying", "via", t, "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(wait*2, 5*time.Second)
	}
}

// setTimeScale proposes the cluster's time scale once a leader is known,
// unless it already has that value.
// MinScaledDeviceTimeout is the floor of device timeouts under a time scale
// below 1 (see fsm.State.MinDeviceTimeout): a 10 s state at scale 0.02
// would otherwise last 200 ms, less than a commit and a board's post take
// on a busy machine, and boards would fail states they were passing.
const MinScaledDeviceTimeout = time.Second

func (d *Daemon) setTimeScale(ctx context.Context) {
	want := fsm.SetTimeScale{TimeScale: d.cfg.TimeScale}
	if d.cfg.TimeScale < 1 {
		want.MinDeviceTimeout = MinScaledDeviceTimeout
	}
	for {
		if err := d.Node.WaitForLeader(ctx); err != nil {
			return
		}
		var done bool
		d.FSM.Read(func(s *fsm.State) {
			done = s.TimeScale == want.TimeScale && s.MinDeviceTimeout == want.MinDeviceTimeout
		})
		if done {
			return
		}
		res, err := d.Node.Apply(ctx, fsm.CmdSetTimeScale, &want)
		if err == nil {
			err = res.Error()
		}
		if err == nil {
			d.logger.Info("set the cluster time scale", "time_scale", want.TimeScale, "min_device_timeout", want.MinDeviceTimeout)
			return
		}
		d.logger.Warn("setting the time scale failed; retrying", "error", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}
