package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestTLSOrPlainHTTP: a node starts with TLS files or with -plain-http,
// not with neither nor with both.
func TestTLSOrPlainHTTP(t *testing.T) {
	t.Setenv("MOZPOOL_TLS_CA", "")
	t.Setenv("MOZPOOL_TLS_CERT", "")
	t.Setenv("MOZPOOL_TLS_KEY", "")
	base := []string{"-data", t.TempDir(), "-name", "n1"}
	_, _, err := parseFlags(base)
	require.ErrorContains(t, err, "-plain-http")
	_, _, err = parseFlags(append(base, "-tls-ca", "ca.pem", "-tls-cert", "n1.pem"))
	require.ErrorContains(t, err, "-tls-key", "all three files")

	c, _, err := parseFlags(append(base, "-plain-http"))
	require.NoError(t, err)
	require.False(t, c.TLS.Enabled())
	c, _, err = parseFlags(append(base, "-tls-ca", "ca.pem", "-tls-cert", "n1.pem", "-tls-key", "n1-key.pem"))
	require.NoError(t, err)
	require.Equal(t, "n1-key.pem", c.TLS.Key)
	_, _, err = parseFlags(append(base, "-plain-http", "-tls-ca", "ca.pem"))
	require.ErrorContains(t, err, "exclude")
}
