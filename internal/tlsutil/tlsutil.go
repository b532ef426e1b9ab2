// Package tlsutil makes a cluster's certificate authority and node
// certificates (crypto/x509, as `consul tls` does) and builds the TLS
// configurations of the nodes: HTTPS for the API, mutual TLS between nodes.
//
// Every node certificate carries the DNS name NodeServerName besides the
// node's own names: nodes verify each other by it (and by the CA), not by
// address, so a node may move without a new certificate. A node reloads
// its certificate and key when their files change, so rotating a node
// certificate needs no restart.
package tlsutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"sync"
	"time"
)

// NodeServerName is the DNS name every node certificate carries; nodes
// dial each other with it as the server name and require it of peers.
const NodeServerName = "node.mozpool"

// Validity defaults.
const (
	CAValidity   = 5 * 365 * 24 * time.Hour
	CertValidity = 365 * 24 * time.Hour
)

func serial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

func encodeKey(k *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
}

// CreateCA returns a new self-signed CA certificate and its key (PEM).
func CreateCA(name string, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	return issue(&x509.Certificate{
		Subject:               pkix.Name{CommonName: name, Organization: []string{"Mozpool"}},
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}, validity, nil, nil)
}

// issue gives tmpl a new P-256 key, a serial number and a validity from a
// minute ago, and signs it with parentKey (self-signed when parent is
// nil); it returns the certificate and the key (PEM).
func issue(tmpl *x509.Certificate, validity time.Duration, parent *x509.Certificate, parentKey any) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	if tmpl.SerialNumber, err = serial(); err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl.NotBefore, tmpl.NotAfter = now.Add(-time.Minute), now.Add(validity)
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err = encodeKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM, nil
}

// CreateNodeCert returns a certificate for node signed by the CA, good for
// serving and for client authentication, naming node, NodeServerName,
// localhost, 127.0.0.1, ::1 and the extra dns names and ips.
func CreateNodeCert(caCertPEM, caKeyPEM []byte, node string, dns []string, ips []net.IP, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	if node == "" {
		return nil, nil, errors.New("tls: node name is required")
	}
	ca, caKey, err := parseCA(caCertPEM, caKeyPEM)
	if err != nil {
		return nil, nil, err
	}
	names := append([]string{node, NodeServerName, "localhost"}, dns...)
	ipAddrs := append([]net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, ips...)
	if ip := net.ParseIP(node); ip != nil {
		ipAddrs = append(ipAddrs, ip)
	}
	return issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: node, Organization: []string{"Mozpool"}},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:    names,
		IPAddresses: ipAddrs,
	}, validity, ca, caKey)
}

func parseCA(certPEM, keyPEM []byte) (*x509.Certificate, any, error) {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("tls: CA certificate and key: %w", err)
	}
	ca, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, nil, fmt.Errorf("tls: CA certificate: %w", err)
	}
	if !ca.IsCA {
		return nil, nil, errors.New("tls: the CA certificate is not a CA")
	}
	return ca, pair.PrivateKey, nil
}

// Files names a node's PEM files: the cluster's CA certificate, the node's
// certificate and its key.
type Files struct {
	CA, Cert, Key string
}

// Enabled reports whether any file is named.
func (f Files) Enabled() bool { return f.CA != "" || f.Cert != "" || f.Key != "" }

// Bundle is a node's TLS material: the CA pool and its key pair, reloaded
// when the certificate or key file changes.
type Bundle struct {
	files Files
	pool  *x509.CertPool

	mu      sync.Mutex
	pair    *tls.Certificate
	certMod time.Time
	keyMod  time.Time
}

// Load reads the files. All three are required.
func Load(f Files) (*Bundle, error) {
	if f.CA == "" || f.Cert == "" || f.Key == "" {
		return nil, errors.New("tls: the CA certificate, the node certificate and its key are all required")
	}
	caPEM, err := os.ReadFile(f.CA)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("tls: %s holds no PEM certificate", f.CA)
	}
	b := &Bundle{files: f, pool: pool}
	if _, err := b.certificate(); err != nil {
		return nil, err
	}
	return b, nil
}

// Pool is the CA pool.
func (b *Bundle) Pool() *x509.CertPool { return b.pool }

// certificate returns the key pair, reading it again when a file's
// modification time changed. A pair that fails to load keeps the old one.
func (b *Bundle) certificate() (*tls.Certificate, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	cs, err1 := os.Stat(b.files.Cert)
	ks, err2 := os.Stat(b.files.Key)
	if err := errors.Join(err1, err2); err != nil {
		if b.pair != nil {
			return b.pair, nil
		}
		return nil, fmt.Errorf("tls: %w", err)
	}
	if b.pair != nil && cs.ModTime().Equal(b.certMod) && ks.ModTime().Equal(b.keyMod) {
		return b.pair, nil
	}
	pair, err := tls.LoadX509KeyPair(b.files.Cert, b.files.Key)
	if err != nil {
		if b.pair != nil {
			return b.pair, nil
		}
		return nil, fmt.Errorf("tls: node certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("tls: node certificate: %w", err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: b.pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		if b.pair != nil {
			return b.pair, nil
		}
		return nil, fmt.Errorf("tls: node certificate is not signed by the CA: %w", err)
	}
	pair.Leaf = leaf
	b.pair, b.certMod, b.keyMod = &pair, cs.ModTime(), ks.ModTime()
	return b.pair, nil
}

// Leaf is the node's current certificate.
func (b *Bundle) Leaf() (*x509.Certificate, error) {
	p, err := b.certificate()
	if err != nil {
		return nil, err
	}
	return p.Leaf, nil
}

// ServerConfig serves with the node's certificate. clientAuth says what it
// asks of clients: tls.VerifyClientCertIfGiven for the API (browsers send
// none; a certificate another CA signed is refused),
// tls.RequireAndVerifyClientCert between nodes.
func (b *Bundle) ServerConfig(clientAuth tls.ClientAuthType) *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return b.certificate() },
		ClientCAs:      b.pool,
		ClientAuth:     clientAuth,
	}
}

// PeerConfig is the server side between nodes: a client must present a
// node certificate of the cluster's CA.
func (b *Bundle) PeerConfig() *tls.Config {
	c := b.ServerConfig(tls.RequireAndVerifyClientCert)
	c.VerifyConnection = func(cs tls.ConnectionState) error { return VerifyNode(cs) }
	return c
}

// ClientConfig dials other nodes: it trusts only the CA, expects a node
// certificate (NodeServerName) and presents this node's own.
func (b *Bundle) ClientConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		RootCAs:    b.pool,
		ServerName: NodeServerName,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return b.certificate()
		},
	}
}

// VerifyNode reports whether a verified connection's peer presented a node
// certificate of the cluster (chain checked by crypto/tls against the CA,
// and NodeServerName among its names).
func VerifyNode(cs tls.ConnectionState) error {
	if len(cs.VerifiedChains) == 0 || len(cs.PeerCertificates) == 0 {
		return errors.New("tls: no verified node certificate")
	}
	if err := cs.PeerCertificates[0].VerifyHostname(NodeServerName); err != nil {
		return fmt.Errorf("tls: not a node certificate: %w", err)
	}
	return nil
}
