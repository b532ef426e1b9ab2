package cluster

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/mozpool/mozpool/internal/tlsutil"
)

// tlsStreamLayer is a raft.StreamLayer of mutual TLS: it accepts only peers
// that present a node certificate of the cluster's CA, and dials others
// with this node's. A connection that fails the handshake is closed before
// Raft reads a byte of it.
type tlsStreamLayer struct {
	net.Listener // a tls.NewListener
	advertise    net.Addr
	client       *tls.Config
}

// Dial opens a TLS connection to a peer, handshake included.
func (l *tlsStreamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	return tls.DialWithDialer(d, "tcp", string(address), l.client)
}

// Addr is the advertised address when there is one.
func (l *tlsStreamLayer) Addr() net.Addr {
	if l.advertise != nil {
		return l.advertise
	}
	return l.Listener.Addr()
}

// newTLSTransport is raft.NewTCPTransportWithLogger over mutual TLS.
func newTLSTransport(bind string, advertise net.Addr, b *tlsutil.Bundle, logger hclog.Logger) (*raft.NetworkTransport, error) {
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, err
	}
	layer := &tlsStreamLayer{Listener: tls.NewListener(ln, b.PeerConfig()), advertise: advertise, client: b.ClientConfig()}
	addr, ok := layer.Addr().(*net.TCPAddr)
	if !ok || addr.IP == nil || addr.IP.IsUnspecified() {
		ln.Close()
		return nil, fmt.Errorf("raft transport: %w", errors.New("local bind address is not advertisable"))
	}
	return raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: layer, MaxPool: 3, Timeout: 10 * time.Second, Logger: logger,
		MaxRPCsInFlight: 1, // no pipelining: see openRaft
	}), nil
}
