package tlsutil

import (
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func writeFiles(t *testing.T, dir, name string, cert, key []byte) Files {
	t.Helper()
	f := Files{CA: filepath.Join(dir, "ca.pem"), Cert: filepath.Join(dir, name+".pem"), Key: filepath.Join(dir, name+"-key.pem")}
	require.NoError(t, os.WriteFile(f.Cert, cert, 0o600))
	require.NoError(t, os.WriteFile(f.Key, key, 0o600))
	return f
}

// TestNodeCertificate: a node certificate names the node, NodeServerName
// and loopback, serves and authenticates clients, and chains to its CA.
func TestNodeCertificate(t *testing.T) {
	caCert, caKey, err := CreateCA("test", time.Hour)
	require.NoError(t, err)
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ca.pem"), caCert, 0o600))
	cert, key, err := CreateNodeCert(caCert, caKey, "mobile-imaging-001", []string{"mi1.lab"}, []net.IP{net.ParseIP("10.0.0.5")}, time.Hour)
	require.NoError(t, err)
	b, err := Load(writeFiles(t, dir, "n1", cert, key))
	require.NoError(t, err)
	leaf, err := b.Leaf()
	require.NoError(t, err)
	for _, h := range []string{"mobile-imaging-001", NodeServerName, "localhost", "mi1.lab", "127.0.0.1", "10.0.0.5"} {
		require.NoError(t, leaf.VerifyHostname(h), h)
	}
	_, err = leaf.Verify(x509.VerifyOptions{Roots: b.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	require.NoError(t, err)

	// A certificate of another CA is refused at load.
	otherCert, otherKey, err := CreateCA("other", time.Hour)
	require.NoError(t, err)
	fc, fk, err := CreateNodeCert(otherCert, otherKey, "n2", nil, nil, time.Hour)
	require.NoError(t, err)
	_, err = Load(writeFiles(t, dir, "n2", fc, fk))
	require.ErrorContains(t, err, "not signed by the CA")

	_, _, err = CreateNodeCert(cert, key, "n3", nil, nil, time.Hour)
	require.ErrorContains(t, err, "not a CA", "a node certificate cannot sign")
}

// TestRotation: a node picks up a new certificate written over its files
// without a restart.
func TestRotation(t *testing.T) {
	caCert, caKey, err := CreateCA("test", time.Hour)
	require.NoError(t, err)
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ca.pem"), caCert, 0o600))
	cert, key, err := CreateNodeCert(caCert, caKey, "n1", nil, nil, time.Hour)
	require.NoError(t, err)
	f := writeFiles(t, dir, "n1", cert, key)
	b, err := Load(f)
	require.NoError(t, err)
	first, err := b.Leaf()
	require.NoError(t, err)

	cert2, key2, err := CreateNodeCert(caCert, caKey, "n1", nil, nil, 2*time.Hour)
	require.NoError(t, err)
	writeFiles(t, dir, "n1", cert2, key2)
	later := time.Now().Add(time.Minute)
	require.NoError(t, os.Chtimes(f.Cert, later, later))
	require.NoError(t, os.Chtimes(f.Key, later, later))
	second, err := b.Leaf()
	require.NoError(t, err)
	require.NotEqual(t, first.SerialNumber, second.SerialNumber)

	// A broken file keeps the last good pair.
	require.NoError(t, os.WriteFile(f.Cert, []byte("garbage"), 0o600))
	later = later.Add(time.Minute)
	require.NoError(t, os.Chtimes(f.Cert, later, later))
	third, err := b.Leaf()
	require.NoError(t, err)
	require.Equal(t, second.SerialNumber, third.SerialNumber)
}
