package daemon

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/cluster"
	"github.com/mozpool/mozpool/fsm"
	"github.com/mozpool/mozpool/internal/testlog"
)

func TestAdvertised(t *testing.T) {
	tests := []struct {
		bound, host, want string
	}{
		{"127.0.0.1:514", "10.0.0.5", "127.0.0.1:514"},
		{"0.0.0.0:514", "10.0.0.5", "10.0.0.5:514"},
		{"[::]:69", "10.0.0.5", "10.0.0.5:69"},
		{"[::]:69", "::1", "[::1]:69"},
		{"not an address", "10.0.0.5", "not an address"},
	}
	for _, tc := range tests {
		require.Equal(t, tc.want, advertised(tc.bound, tc.host), "advertised(%q, %q)", tc.bound, tc.host)
	}
}

// TestStart_AdvertisesSyslogAndTFTP: a node started on port 0 advertises
// the addresses its syslog receiver and TFTP server bound, in its
// identity, node.json and the replicated server table, as boards and the
// simulator need them.
func TestStart_AdvertisesSyslogAndTFTP(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DataDir, cfg.Name, cfg.Rack = t.TempDir(), "mobile-imaging-001", "rack1"
	cfg.HTTPBind, cfg.RaftBind, cfg.GossipBind = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.TFTPAddr, cfg.SyslogAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Bootstrap, cfg.RaftTimeout, cfg.PingMode = true, 300*time.Millisecond, "tcp"
	cfg.Logger = testlog.New(t)
	d, err := Start(cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		d.Shutdown(ctx)
	})

	syslogAddr, tftpAddr := d.Syslog.Addr().String(), d.TFTPServer.Addr().String()
	require.NotEqual(t, "127.0.0.1:0", syslogAddr)
	self := d.Node.Self()
	require.Equal(t, syslogAddr, self.SyslogAddr)
	require.Equal(t, tftpAddr, self.TFTPAddr)

	b, err := os.ReadFile(filepath.Join(cfg.DataDir, "node.json"))
	require.NoError(t, err)
	var id cluster.Identity
	require.NoError(t, json.Unmarshal(b, &id))
	require.Equal(t, syslogAddr, id.SyslogAddr, "node.json: %s", b)

	require.Eventually(t, func() bool {
		var srv fsm.ImagingServer
		d.FSM.Read(func(s *fsm.State) {
			if p := s.Servers[cfg.Name]; p != nil {
				srv = *p
			}
		})
		return srv.SyslogAddr == syslogAddr && srv.TFTPAddr == tftpAddr
	}, 10*time.Second, 20*time.Millisecond, "the server table has the advertised addresses")
}

// TestStart_FailureUndoes: a start that fails after the HTTP, TFTP and
// syslog listeners are up (here, the Raft address is taken) returns the
// error and closes them, rather than panicking in its undo steps.
func TestStart_FailureUndoes(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer taken.Close()
	cfg := DefaultConfig()
	cfg.DataDir, cfg.Name, cfg.Rack = t.TempDir(), "mobile-imaging-001", "rack1"
	cfg.HTTPBind, cfg.RaftBind, cfg.GossipBind = "127.0.0.1:0", taken.Addr().String(), "127.0.0.1:0"
	cfg.TFTPAddr, cfg.SyslogAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Bootstrap, cfg.RaftTimeout, cfg.PingMode = true, 300*time.Millisecond, "tcp"
	cfg.Logger = testlog.New(t)
	d, err := Start(cfg)
	require.ErrorIs(t, err, syscall.EADDRINUSE)
	require.Nil(t, d)
	// The log store was closed: another start may open it.
	cfg.RaftBind = "127.0.0.1:0"
	d, err = Start(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d.Shutdown(ctx)
}

// TestStart_PprofListener: with PprofAddr the node serves Go's profiler on
// a listener of its own, and the API does not serve it; Shutdown closes it.
func TestStart_PprofListener(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DataDir, cfg.Name, cfg.Rack = t.TempDir(), "mobile-imaging-001", "rack1"
	cfg.HTTPBind, cfg.RaftBind, cfg.GossipBind = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.PprofAddr = "127.0.0.1:0"
	cfg.Bootstrap, cfg.PingMode = true, "tcp"
	cfg.Logger = testlog.New(t)
	d, err := Start(cfg)
	require.NoError(t, err)
	require.NotEmpty(t, d.PprofURL)

	get := func(url string) int {
		resp, err := http.Get(url)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, http.StatusOK, get(d.PprofURL+"/debug/pprof/cmdline"))
	require.Equal(t, http.StatusNotFound, get(d.URL+"/debug/pprof/cmdline"), "the API does not serve the profiler")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, d.Shutdown(ctx))
	_, err = http.Get(d.PprofURL + "/debug/pprof/cmdline")
	require.Error(t, err, "the debug listener is closed on shutdown")
}
