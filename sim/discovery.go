package sim

import (
	"context"
	"errors"
	"maps"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mozpool/mozpool/client"
)

// server is where an imaging server answers: its HTTP API base URL, its
// TFTP address (host:port, "" if it serves none) and its syslog receiver
// (the zero AddrPort if it runs none).
type server struct {
	HTTP   string
	TFTP   string
	Syslog netip.AddrPort
}

// discoveryTimeout is the least time a status look-up is given.
const discoveryTimeout = 5 * time.Second

// discoverLoop refreshes the imaging servers' addresses every
// Config.Discovery until ctx ends.
func (l *Lab) discoverLoop(ctx context.Context) {
	t := time.NewTicker(l.cfg.Discovery)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := l.discover(ctx)
		switch {
		case err != nil && !failing && ctx.Err() == nil:
			l.logger.Warn("cannot read the cluster status", "error", err)
		case err == nil && failing:
			l.logger.Info("cluster status readable again")
		}
		failing = err != nil
	}
}

// discover reads /api/cluster/status/ from the first API node that
// answers and replaces the known servers with the ones it lists.
func (l *Lab) discover(ctx context.Context) error {
	var errs []error
	for _, u := range l.cfg.API {
		// At least discoveryTimeout: a look-up that has to open a
		// connection (a TLS handshake on a loaded machine) must be able to
		// finish, or every later one has to open one too.
		c := client.New(u, client.WithTimeout(max(l.cfg.Discovery, discoveryTimeout)), client.WithHTTPClient(l.discoveryHC))
		st, err := c.ClusterStatus(ctx)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		servers := map[string]server{}
		for _, s := range st.Servers {
			if s.Name == "" || s.HTTPAddr == "" {
				continue
			}
			servers[s.Name] = server{
				HTTP:   strings.TrimRight(s.HTTPAddr, "/"),
				TFTP:   dialable(s.TFTPAddr, s.HTTPAddr),
				Syslog: l.resolveSyslog(ctx, s.Name, dialable(s.SyslogAddr, s.HTTPAddr)),
			}
		}
		var owners map[string]string
		if l.followOwners {
			devs, err := c.DeviceDetails(ctx)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			owners = make(map[string]string, len(devs))
			for _, d := range devs {
				owners[d.Name] = d.ImagingServer
			}
		}
		l.mu.Lock()
		changed := !maps.Equal(l.servers, servers)
		l.servers = servers
		if owners != nil {
			l.owners = owners
		}
		l.mu.Unlock()
		if changed {
			for name, s := range servers {
				l.logger.Info("imaging server", "name", name, "http", s.HTTP, "tftp", s.TFTP, "syslog", syslogString(s.Syslog))
			}
		}
		return nil
	}
	return errors.Join(errs...)
}

// boardServer returns the addresses of the imaging server that acts on b
// now, and its name.
func (l *Lab) boardServer(b *board) (server, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	name := b.server
	if o, ok := l.owners[b.name]; ok && o != "" {
		name = o
	}
	s, ok := l.servers[name]
	return s, ok
}

// server returns the addresses of the named imaging server.
func (l *Lab) server(name string) (server, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, ok := l.servers[name]
	return s, ok
}

// dialable makes a node's TFTP or syslog address dialable: a node
// listening on all interfaces advertises an unspecified host, which is
// replaced with the host of its HTTP address.
func dialable(addr, httpAddr string) string {
	if addr == "" {
		return ""
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
		return addr
	}
	u, err := url.Parse(httpAddr)
	if err != nil || u.Hostname() == "" {
		return addr
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// resolveSyslog turns a node's syslog address into the UDP address its
// boards send to. It resolves a host name here, on the discovery
// goroutine, so that a board never waits for DNS; an address that does
// not resolve is left zero (its boards send nothing) and logged at debug,
// since discovery tries again every few seconds.
func (l *Lab) resolveSyslog(ctx context.Context, name, addr string) netip.AddrPort {
	if addr == "" {
		return netip.AddrPort{}
	}
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		return ap
	}
	host, port, err := net.SplitHostPort(addr)
	var p uint64
	if err == nil {
		p, err = strconv.ParseUint(port, 10, 16)
	}
	var ips []netip.Addr
	if err == nil {
		ips, err = net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	}
	if err != nil || len(ips) == 0 {
		l.logger.Debug("cannot resolve an imaging server's syslog address", "name", name, "syslog", addr, "error", err)
		return netip.AddrPort{}
	}
	// Boards send from IPv4 addresses: prefer an IPv4 answer.
	ip := ips[0].Unmap()
	for _, a := range ips {
		if a.Unmap().Is4() {
			ip = a.Unmap()
			break
		}
	}
	return netip.AddrPortFrom(ip, uint16(p))
}

// syslogString shows a syslog address in log lines ("" for none).
func syslogString(ap netip.AddrPort) string {
	if !ap.IsValid() {
		return ""
	}
	return ap.String()
}
