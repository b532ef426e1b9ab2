package cluster

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/fsm"
	"github.com/mozpool/mozpool/internal/testlog"
	"github.com/mozpool/mozpool/internal/tlsutil"
)

// testCA is a CA in a temporary directory that issues node bundles.
type testCA struct {
	t         *testing.T
	dir       string
	cert, key []byte
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	cert, key, err := tlsutil.CreateCA("test CA", time.Hour)
	require.NoError(t, err)
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ca.pem"), cert, 0o600))
	return &testCA{t: t, dir: dir, cert: cert, key: key}
}

// bundle issues a certificate for node and loads it with the CA.
func (ca *testCA) bundle(node string) *tlsutil.Bundle {
	ca.t.Helper()
	cert, key, err := tlsutil.CreateNodeCert(ca.cert, ca.key, node, nil, nil, time.Hour)
	require.NoError(ca.t, err)
	f := tlsutil.Files{CA: filepath.Join(ca.dir, "ca.pem"), Cert: filepath.Join(ca.dir, node+".pem"), Key: filepath.Join(ca.dir, node+"-key.pem")}
	require.NoError(ca.t, os.WriteFile(f.Cert, cert, 0o600))
	require.NoError(ca.t, os.WriteFile(f.Key, key, 0o600))
	b, err := tlsutil.Load(f)
	require.NoError(ca.t, err)
	return b
}

func withTLS(ca *testCA) func(*Config) {
	return func(c *Config) { c.TLS = ca.bundle(c.Name) }
}

// TestTLS_ClusterOverMutualTLS: a cluster whose Raft transport, forwarded
// writes and API run over TLS replicates a write made on a follower.
func TestTLS_ClusterOverMutualTLS(t *testing.T) {
	skipShort(t)
	ca := newTestCA(t)
	nodes := startCluster(t, 3, withTLS(ca))
	leader := waitLeader(t, nodes...)
	require.Contains(t, leader.n.Self().HTTPAddr, "https://")
	f := followers(nodes, leader)[0]
	res, err := f.n.Apply(context.Background(), fsm.CmdImageUpsert, imageCmd("over-tls"))
	require.NoError(t, err)
	require.NoError(t, res.Error())
	for _, tn := range nodes {
		require.Eventually(t, func() bool { return hasImage(tn.fsm, "over-tls") }, 10*time.Second, 10*time.Millisecond)
	}
}

// TestTLS_RaftPortRefusesStrangers: on a node with TLS, a raw TCP client
// of the Raft port gets no Raft answer; a TLS client without a certificate,
// or with one from another CA, fails the handshake; a Raft transport with
// a foreign certificate can send no RPC, and the node's own transport
// cannot reach a node of another CA either, so neither can join the other.
func TestTLS_RaftPortRefusesStrangers(t *testing.T) {
	skipShort(t)
	ca := newTestCA(t)
	good := startNode(t, "srv1", "", "", true, withTLS(ca))
	waitLeader(t, good)
	addr := good.n.Self().RaftAddr

	// Raw TCP: a RequestVote as raft's TCP transport would send it.
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	var buf bytes.Buffer
	buf.WriteByte(1) // rpcRequestVote
	buf.Write([]byte{0x82, 0xa4, 'T', 'e', 'r', 'm', 0x63, 0xa9, 'C', 'a', 'n', 'd', 'i', 'd', 'a', 't', 'e', 0xa1, 'x'})
	_, err = conn.Write(buf.Bytes())
	require.NoError(t, err)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*time.Second)))
	got, _ := io.ReadAll(conn)
	conn.Close()
	// Nothing, or a TLS alert record (content type 21): never Raft.
	require.True(t, len(got) == 0 || got[0] == 21, "raw TCP got %q", got)

	// TLS without a client certificate.
	noCert := &tls.Config{RootCAs: good.n.cfg.TLS.Pool(), ServerName: tlsutil.NodeServerName}
	require.Error(t, handshake(addr, noCert), "no client certificate")

	// A node of another CA: its transport cannot talk to the cluster's
	// node, nor the cluster's node to it.
	other := newTestCA(t)
	foreign := other.bundle("srv9")
	require.Error(t, handshake(addr, foreign.ClientConfig()), "certificate of another CA")
	ftr, err := newTLSTransport("127.0.0.1:0", nil, foreign, testlog.New(t).Named("foreign"))
	require.NoError(t, err)
	defer ftr.Close()
	var vote raft.RequestVoteResponse
	err = ftr.RequestVote("x", raft.ServerAddress(addr), &raft.RequestVoteRequest{RPCHeader: raft.RPCHeader{ID: []byte("x"), Addr: []byte(ftr.LocalAddr())}, Term: 99}, &vote)
	require.Error(t, err, "a foreign node's RPC")
	gtr, err := newTLSTransport("127.0.0.1:0", nil, ca.bundle("srv2"), testlog.New(t).Named("probe"))
	require.NoError(t, err)
	defer gtr.Close()
	var app raft.AppendEntriesResponse
	err = gtr.AppendEntries("y", ftr.LocalAddr(), &raft.AppendEntriesRequest{RPCHeader: raft.RPCHeader{ID: []byte("y"), Addr: []byte(gtr.LocalAddr())}, Term: 1}, &app)
	require.Error(t, err, "the cluster's node reaching a foreign node")
	// The cluster's certificate works: the same probe transport talks.
	err = gtr.RequestVote("y", raft.ServerAddress(addr), &raft.RequestVoteRequest{RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("y"), Addr: []byte(gtr.LocalAddr())}, Term: 0}, &vote)
	require.NoError(t, err, "a node certificate of the cluster's CA")
}

func handshake(addr string, cfg *tls.Config) error {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	// TLS 1.3: the server checks the client certificate after the
	// client's handshake ends; its refusal arrives on the first read.
	if err := conn.SetReadDeadline(time.Now().Add(2 * time.Second)); err != nil {
		return err
	}
	_, err = conn.Read(make([]byte, 1))
	if err == nil || errors.Is(err, io.EOF) {
		return errors.New("connection closed")
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return nil // accepted: the server waits for a request
	}
	return err
}

// TestTLS_ForwardedWriteNeedsNodeCertificate: the leader's internal
// endpoints refuse a forwarded write from a client without a node
// certificate (403, even with the cluster token) or with one of another CA
// (handshake refused); a node certificate of the cluster's CA is accepted.
func TestTLS_ForwardedWriteNeedsNodeCertificate(t *testing.T) {
	skipShort(t)
	ca := newTestCA(t)
	leader := startNode(t, "srv1", "", "", true, withTLS(ca))
	waitLeader(t, leader)
	body, err := fsm.Encode(fsm.CmdImageUpsert, imageCmd("forged"))
	require.NoError(t, err)
	post := func(cfg *tls.Config) (int, error) {
		hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
		req, err := http.NewRequest(http.MethodPost, leader.n.Self().HTTPAddr+pathApply, bytes.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := hc.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	status, err := post(&tls.Config{RootCAs: leader.n.cfg.TLS.Pool(), ServerName: tlsutil.NodeServerName})
	require.NoError(t, err)
	require.Equal(t, http.StatusForbidden, status, "no client certificate")
	_, err = post(newTestCA(t).bundle("srv9").ClientConfig())
	require.Error(t, err, "a certificate of another CA")
	require.False(t, hasImage(leader.fsm, "forged"))

	status, err = post(ca.bundle("srv2").ClientConfig())
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, status, "a node certificate of the cluster")
	require.True(t, hasImage(leader.fsm, "forged"))
}

// TestGossip_WithoutKeyIgnored: gossip is encrypted with a key derived
// from the cluster token; a memberlist without it cannot join the node's
// gossip, and the node keeps seeing only itself.
func TestGossip_WithoutKeyIgnored(t *testing.T) {
	skipShort(t)
	tn := startNode(t, "srv1", "", "", true)
	waitLeader(t, tn)
	for _, key := range [][]byte{nil, bytes.Repeat([]byte{7}, 32)} {
		mc := memberlist.DefaultLANConfig()
		mc.Name, mc.BindAddr, mc.BindPort = "intruder", "127.0.0.1", 0
		mc.Label = gossipLabel
		mc.SecretKey = key
		mc.LogOutput = io.Discard
		ml, err := memberlist.Create(mc)
		require.NoError(t, err)
		_, err = ml.Join([]string{tn.n.Self().GossipAddr})
		require.Error(t, err, "join with key %x", key)
		require.Equal(t, 1, ml.NumMembers())
		require.NoError(t, ml.Shutdown())
	}
	require.Equal(t, 1, tn.n.ml.NumMembers(), "the node saw no intruder")

	// With the right key the same join succeeds.
	k := sha256.Sum256([]byte("mozpool-gossip:" + testToken))
	mc := memberlist.DefaultLANConfig()
	mc.Name, mc.BindAddr, mc.BindPort = "friend", "127.0.0.1", 0
	mc.Label, mc.SecretKey, mc.LogOutput = gossipLabel, k[:], io.Discard
	ml, err := memberlist.Create(mc)
	require.NoError(t, err)
	defer ml.Shutdown()
	_, err = ml.Join([]string{tn.n.Self().GossipAddr})
	require.NoError(t, err)
}
