package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/internal/tlsutil"
)

// TestTLSCommands: tls ca and tls cert write a CA and a node certificate
// that loads with it, keys readable by their owner only, and never
// overwrite a file.
func TestTLSCommands(t *testing.T) {
	dir := t.TempDir()
	var out, errOut bytes.Buffer
	require.Equal(t, 0, run([]string{"tls", "ca", "--dir", dir}, &out, &errOut), errOut.String())
	ca, caKey := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")
	require.Equal(t, 0, run([]string{"tls", "cert", "--node", "mobile-imaging-001", "--ip", "10.0.1.5", "--dns", "mi1.lab",
		"--ca", ca, "--ca-key", caKey, "--dir", dir}, &out, &errOut), errOut.String())
	b, err := tlsutil.Load(tlsutil.Files{CA: ca, Cert: filepath.Join(dir, "mobile-imaging-001.pem"), Key: filepath.Join(dir, "mobile-imaging-001-key.pem")})
	require.NoError(t, err)
	leaf, err := b.Leaf()
	require.NoError(t, err)
	require.NoError(t, leaf.VerifyHostname("10.0.1.5"))
	require.NoError(t, leaf.VerifyHostname("mi1.lab"))
	for _, k := range []string{caKey, filepath.Join(dir, "mobile-imaging-001-key.pem")} {
		st, err := os.Stat(k)
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), st.Mode().Perm(), k)
	}

	errOut.Reset()
	require.Equal(t, 1, run([]string{"tls", "ca", "--dir", dir}, &out, &errOut))
	require.Contains(t, errOut.String(), "not overwritten")
	require.Equal(t, 2, run([]string{"tls", "cert", "--dir", dir}, &out, &errOut), "--node is required")
	require.Equal(t, 2, run([]string{"tls", "cert", "--node", "x", "--ip", "nope", "--dir", dir}, &out, &errOut))
}
