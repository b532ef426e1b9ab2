package sim

import (
	"context"
	"errors"
	"maps"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/mozpool/mozpool/client"
)

// server is where an imaging server answers: its HTTP API base URL and its
// TFTP address (host:port, "" if it serves none).
type server struct {
	HTTP string
	TFTP string
}

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
		c := client.New(u, client.WithTimeout(l.cfg.Discovery))
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
				HTTP: strings.TrimRight(s.HTTPAddr, "/"),
				TFTP: tftpAddr(s.TFTPAddr, s.HTTPAddr),
			}
		}
		l.mu.Lock()
		changed := !maps.Equal(l.servers, servers)
		l.servers = servers
		l.mu.Unlock()
		if changed {
			for name, s := range servers {
				l.logger.Info("imaging server", "name", name, "http", s.HTTP, "tftp", s.TFTP)
			}
		}
		return nil
	}
	return errors.Join(errs...)
}

// server returns the addresses of the named imaging server.
func (l *Lab) server(name string) (server, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, ok := l.servers[name]
	return s, ok
}

// tftpAddr makes a node's TFTP address dialable: a node listening on all
// interfaces advertises an unspecified host, which is replaced with the
// host of its HTTP address.
func tftpAddr(tftp, httpAddr string) string {
	if tftp == "" {
		return ""
	}
	host, port, err := net.SplitHostPort(tftp)
	if err != nil {
		return tftp
	}
	if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
		return tftp
	}
	u, err := url.Parse(httpAddr)
	if err != nil || u.Hostname() == "" {
		return tftp
	}
	return net.JoinHostPort(u.Hostname(), port)
}
