package daemontest

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/api"
	"github.com/mozpool/mozpool/client"
	"github.com/mozpool/mozpool/internal/tlsutil"
)

// TestTLSCluster: three whole nodes with TLS serve HTTPS, join each other
// and replicate a write made on a follower; a plain HTTP client cannot
// use the API; a node with a certificate of another CA cannot join.
func TestTLSCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-node cluster test")
	}
	c := New(t, 3)
	leader := c.WaitLeader()
	var f *Node
	for _, n := range c.Followers() {
		f = n
	}
	require.True(t, strings.HasPrefix(f.URL, "https://"), f.URL)
	img, err := f.Client().UpsertImage(context.Background(), api.ImageSpec{Name: "tls-image"})
	require.NoError(t, err)
	require.Equal(t, "tls-image", img.Name)
	c.WaitConverged()
	for _, n := range c.Nodes {
		imgs, err := n.Client().Images(context.Background(), true)
		require.NoError(t, err)
		require.Contains(t, names(imgs), "tls-image", n.Name)
	}

	// Plain HTTP on the HTTPS port is answered 400 by the TLS server.
	resp, err := http.Get("http" + strings.TrimPrefix(leader.URL, "https") + "/api/version/")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)

	// A node certificate of another CA: its join is refused at the
	// handshake (the cluster refuses its certificate, it refuses the
	// cluster's), though it holds the cluster token.
	dir := t.TempDir()
	caCert, caKey, err := tlsutil.CreateCA("other", time.Hour)
	require.NoError(t, err)
	cert, key, err := tlsutil.CreateNodeCert(caCert, caKey, "intruder", nil, nil, time.Hour)
	require.NoError(t, err)
	files := tlsutil.Files{CA: filepath.Join(dir, "ca.pem"), Cert: filepath.Join(dir, "n.pem"), Key: filepath.Join(dir, "n-key.pem")}
	for p, b := range map[string][]byte{files.CA: caCert, files.Cert: cert, files.Key: key} {
		require.NoError(t, os.WriteFile(p, b, 0o600))
	}
	b, err := tlsutil.Load(files)
	require.NoError(t, err)
	foreign := client.New(leader.URL, client.WithToken(Token),
		client.WithHTTPClient(&http.Client{Transport: &http.Transport{TLSClientConfig: b.ClientConfig()}}))
	_, err = foreign.Join(context.Background(), api.Identity{ID: "intruder", Name: "intruder", RaftAddr: "127.0.0.1:1", HTTPAddr: "https://127.0.0.1:2"})
	require.Error(t, err)
	require.Len(t, leader.Cluster.Status().Servers, 3)
}

func names(imgs []api.Image) []string {
	var out []string
	for _, i := range imgs {
		out = append(out, i.Name)
	}
	return out
}
