package ping

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	probing "github.com/prometheus-community/pro-bing"
	"golang.org/x/net/icmp"
)

var (
	// ErrEmptyHost is returned by Ping for an empty host name.
	ErrEmptyHost = errors.New("empty host")
	// ErrICMPNotPermitted is returned by New (and, for an IPv6 host, by
	// Ping) when the kernel refuses this process an ICMP socket. The
	// error's text says what to change.
	ErrICMPNotPermitted = errors.New("ICMP sockets not permitted")
)

// runGrace is how much longer than Config.Timeout an ICMP Ping lets
// pro-bing run before cancelling it, so that pro-bing's own timeout, not
// the context, normally ends the run.
const runGrace = 100 * time.Millisecond

// Pinger checks whether hosts are up. It is safe for concurrent use; every
// Ping opens its own socket.
type Pinger struct {
	cfg    Config
	logger hclog.Logger
	dialer net.Dialer
}

// New returns a Pinger for cfg. In ModeICMP it opens and closes one ICMP
// socket of the configured kind, so that a forbidden socket is reported
// now, as ErrICMPNotPermitted, rather than as every board being down.
func New(cfg Config) (*Pinger, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Mode == ModeICMP {
		if err := probeICMP(cfg.Privileged); err != nil {
			return nil, err
		}
	}
	return &Pinger{cfg: cfg, logger: cfg.Logger.Named(loggerName)}, nil
}

// Mode returns the mode the Pinger probes with.
func (p *Pinger) Mode() Mode { return p.cfg.Mode }

// Ping reports whether host answers any of Config.Attempts probes within
// Config.Timeout. An unreachable, silent or unresolvable host is
// (false, nil). The error is non-nil only for an empty host, a forbidden
// ICMP socket, or ctx ending before an answer (then it wraps ctx.Err()).
//
// In ModeTCP host may carry its own port ("127.0.0.5:20701"); otherwise
// Config.Port is used. In ModeICMP host is a name or an address.
func (p *Pinger) Ping(ctx context.Context, host string) (bool, error) {
	if strings.TrimSpace(host) == "" {
		return false, ErrEmptyHost
	}
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("ping %s: %w", host, err)
	}
	var (
		up  bool
		err error
	)
	start := time.Now()
	switch p.cfg.Mode {
	case ModeTCP:
		up, err = p.pingTCP(ctx, host)
	default:
		up, err = p.pingICMP(ctx, host)
	}
	if err != nil {
		return false, fmt.Errorf("ping %s: %w", host, err)
	}
	p.logger.Debug("pinged", "host", host, "mode", p.cfg.Mode, "up", up, "duration", time.Since(start))
	return up, nil
}

// pingTCP dials host up to Attempts times, Interval apart.
func (p *Pinger) pingTCP(ctx context.Context, host string) (bool, error) {
	addr := host
	if _, _, err := net.SplitHostPort(host); err != nil {
		addr = net.JoinHostPort(host, strconv.Itoa(p.cfg.Port))
	}
	deadline := time.Now().Add(p.cfg.Timeout)
	tctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	for i := range p.cfg.Attempts {
		start := time.Now()
		timeout := p.cfg.Interval
		if i == p.cfg.Attempts-1 {
			timeout = time.Until(deadline)
		}
		actx, acancel := context.WithTimeout(tctx, timeout)
		conn, err := p.dialer.DialContext(actx, "tcp", addr)
		acancel()
		if err == nil {
			conn.Close()
			return true, nil
		}
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		p.logger.Trace("tcp probe failed", "addr", addr, "attempt", i+1, "error", err)
		if i == p.cfg.Attempts-1 {
			break
		}
		// A refused connection fails at once: wait for the next slot,
		// as fping does between retries.
		wait := time.NewTimer(time.Until(start.Add(p.cfg.Interval)))
		select {
		case <-wait.C:
		case <-tctx.Done():
			wait.Stop()
			if ctx.Err() != nil {
				return false, ctx.Err()
			}
			return false, nil
		}
	}
	return false, nil
}

// pingICMP sends up to Attempts echo requests, Interval apart, and stops at
// the first reply.
func (p *Pinger) pingICMP(ctx context.Context, host string) (bool, error) {
	rctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	ip, err := resolve(rctx, host)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		// fping fails on a name it cannot resolve; so does lifeguard's
		// ping state, which retries.
		p.logger.Debug("cannot resolve host", "host", host, "error", err)
		return false, nil
	}

	pg := probing.New(host)
	pg.SetIPAddr(ip)
	pg.SetPrivileged(p.cfg.Privileged)
	pg.SetLogger(probingLogger{p.logger})
	pg.Count = p.cfg.Attempts
	pg.Interval = p.cfg.Interval
	pg.Timeout = p.cfg.Timeout
	pg.RecordRtts = false
	pg.RecordTTLs = false
	var answered atomic.Bool
	pg.OnRecv = func(*probing.Packet) {
		answered.Store(true)
		pg.Stop()
	}

	pctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout+runGrace)
	defer cancel()
	err = pg.RunWithContext(pctx)
	switch {
	case answered.Load():
		return true, nil
	case ctx.Err() != nil:
		return false, ctx.Err()
	case err == nil, errors.Is(err, context.DeadlineExceeded):
		return false, nil
	case errors.Is(err, fs.ErrPermission):
		return false, notPermitted(p.cfg.Privileged, err)
	default:
		// Sending failed (no route, network down): the host is not
		// reachable, which is "down".
		p.logger.Debug("icmp probe failed", "host", host, "ip", ip.String(), "error", err)
		return false, nil
	}
}

// resolve returns host's address, preferring IPv4 as fping does by
// default.
func resolve(ctx context.Context, host string) (*net.IPAddr, error) {
	addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		return nil, err
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("no addresses for %s", host)
	}
	for _, a := range addrs {
		if a.IP.To4() != nil {
			return &a, nil
		}
	}
	return &addrs[0], nil
}

// probeICMP opens and closes an IPv4 ICMP socket of the kind Ping will use.
func probeICMP(privileged bool) error {
	network := "udp4"
	if privileged {
		network = "ip4:icmp"
	}
	c, err := icmp.ListenPacket(network, "")
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return notPermitted(privileged, err)
		}
		return fmt.Errorf("ping: open %s socket: %w", network, err)
	}
	return c.Close()
}

// notPermitted explains a refused ICMP socket.
func notPermitted(privileged bool, err error) error {
	if privileged {
		return fmt.Errorf("ping: %w: raw ICMP sockets need CAP_NET_RAW (or root); "+
			"grant it, use unprivileged ping sockets (Privileged=false), or use tcp mode: %w",
			ErrICMPNotPermitted, err)
	}
	return fmt.Errorf("ping: %w: the kernel refuses unprivileged ICMP (ping) sockets to this process's group; "+
		"widen the sysctl net.ipv4.ping_group_range (for example to \"0 2147483647\"), "+
		"use raw sockets with CAP_NET_RAW (Privileged=true), or use tcp mode: %w",
		ErrICMPNotPermitted, err)
}

// probingLogger adapts an hclog.Logger to pro-bing's Logger. pro-bing's
// "Fatalf" does not exit; it is an error that the run continues past.
type probingLogger struct{ l hclog.Logger }

func (p probingLogger) Fatalf(format string, v ...any) { p.l.Error(fmt.Sprintf(format, v...)) }
func (p probingLogger) Errorf(format string, v ...any) { p.l.Error(fmt.Sprintf(format, v...)) }
func (p probingLogger) Warnf(format string, v ...any)  { p.l.Warn(fmt.Sprintf(format, v...)) }
func (p probingLogger) Infof(format string, v ...any)  { p.l.Debug(fmt.Sprintf(format, v...)) }
func (p probingLogger) Debugf(format string, v ...any) { p.l.Trace(fmt.Sprintf(format, v...)) }
