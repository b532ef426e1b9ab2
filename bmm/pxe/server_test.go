package pxe

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pin/tftp/v3"
	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/internal/testlog"
)

const (
	testWait = 5 * time.Second
	testPoll = 10 * time.Millisecond
)

// testServer starts a Server for root on a loopback port and stops it when
// the test ends.
func testServer(t *testing.T, root string) *Server {
	t.Helper()
	s, err := NewServer(Config{
		Root:    root,
		Addr:    "127.0.0.1:0",
		Timeout: 500 * time.Millisecond,
		Retries: 3,
		Logger:  testlog.New(t),
	})
	require.NoError(t, err)
	require.NoError(t, s.Start())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testWait)
		defer cancel()
		require.NoError(t, s.Shutdown(ctx))
	})
	return s
}

// testClient returns a pin/tftp client for s with short timeouts.
func testClient(t *testing.T, s *Server) *tftp.Client {
	t.Helper()
	c, err := tftp.NewClient(s.Addr().String())
	require.NoError(t, err)
	c.SetTimeout(500 * time.Millisecond)
	c.SetRetries(2)
	return c
}

// fetch reads name from s with a real TFTP client.
func fetch(t *testing.T, s *Server, name string) ([]byte, error) {
	t.Helper()
	wt, err := testClient(t, s).Receive(name, "octet")
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if _, err := wt.WriteTo(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func TestServerServesWriterFiles(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	w, err := NewWriter(root, "192.168.1.10")
	require.NoError(t, err)
	s := testServer(t, root)

	require.NoError(t, w.Set(ctx, "00:00:00:00:00:07", "append mobile-imaging-url=http://%IPADDRESS%/b2g-second-stage.sh\n"))
	got, err := fetch(t, s, "pxelinux.cfg/01-00-00-00-00-00-07")
	require.NoError(t, err)
	require.Equal(t, "append mobile-imaging-url=http://192.168.1.10/b2g-second-stage.sh\n", string(got))

	// A file of many blocks, not a multiple of the block size.
	big := make([]byte, 300*1024+17)
	_, err = rand.Read(big)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(root, "pxelinux.0"), big, 0o644))
	got, err = fetch(t, s, "pxelinux.0")
	require.NoError(t, err)
	require.Equal(t, big, got)

	// A symlink that stays inside the root is followed.
	require.NoError(t, os.Symlink("pxelinux.0", filepath.Join(root, "alias")))
	got, err = fetch(t, s, "alias")
	require.NoError(t, err)
	require.Equal(t, big, got)

	// The server counts a transfer once the client acknowledges the last
	// block, which can be just after the client returns.
	require.Eventually(t, func() bool { return s.Stats().Served == 3 }, testWait, testPoll)
	require.Equal(t, Stats{Served: 3}, s.Stats())
}

func TestServerMissingFile(t *testing.T) {
	s := testServer(t, t.TempDir())
	_, err := fetch(t, s, "pxelinux.cfg/01-aa-bb-cc-dd-ee-ff")
	require.Error(t, err)
	require.Contains(t, err.Error(), "file not found")
	require.Eventually(t, func() bool { return s.Stats().NotFound == 1 }, testWait, testPoll)
	require.Equal(t, Stats{NotFound: 1}, s.Stats())
}

func TestServerRefusesEscapes(t *testing.T) {
	root := t.TempDir()
	outsideDir := t.TempDir()
	secret := filepath.Join(outsideDir, "secret")
	require.NoError(t, os.WriteFile(secret, []byte("do not serve"), 0o644))
	require.NoError(t, os.MkdirAll(filepath.Join(root, ConfigDir), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(root, "x"), []byte("inside"), 0o644))
	require.NoError(t, os.Symlink(secret, filepath.Join(root, "link-out")))
	require.NoError(t, os.Symlink(outsideDir, filepath.Join(root, "dir-out")))
	require.NoError(t, os.Symlink("../"+filepath.Base(outsideDir)+"/secret", filepath.Join(root, "rel-out")))
	require.NoError(t, syscall.Mkfifo(filepath.Join(root, "fifo"), 0o644))
	s := testServer(t, root)

	tests := []struct {
		name string
		file string
	}{
		{"parent", "../etc/passwd"},
		{"absolute", "/etc/passwd"},
		{"absolute to a real file", secret},
		{"dotdot inside the name", "pxelinux.cfg/../../x"},
		{"dotdot that stays inside", "pxelinux.cfg/../x"},
		{"trailing dotdot", "pxelinux.cfg/.."},
		{"symlink to an outside file", "link-out"},
		{"symlink to an outside dir", "dir-out/secret"},
		{"relative symlink out", "rel-out"},
		{"directory", "pxelinux.cfg"},
		{"root", "."},
		{"fifo", "fifo"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := fetch(t, s, tc.file)
			require.Error(t, err, "fetch(%q) = %q, want an error", tc.file, got)
			require.Contains(t, err.Error(), "access violation")
			require.Eventually(t, func() bool { return s.Stats().Refused == uint64(i+1) }, testWait, testPoll)
		})
	}
	require.Equal(t, Stats{Refused: uint64(len(tests))}, s.Stats())
}

func TestServerRefusesWrites(t *testing.T) {
	root := t.TempDir()
	s := testServer(t, root)

	rf, err := testClient(t, s).Send("pxelinux.cfg/01-aa-bb-cc-dd-ee-ff", "octet")
	if err == nil {
		// Should the request have been acknowledged, the data must
		// still be refused.
		_, err = rf.ReadFrom(strings.NewReader("default evil\n"))
	}
	require.Error(t, err)
	require.Contains(t, err.Error(), "read-only")
	require.Eventually(t, func() bool { return s.Stats().Refused == 1 }, testWait, testPoll)

	entries, err := os.ReadDir(root)
	require.NoError(t, err)
	require.Empty(t, entries, "a write request created files")
}

func TestLocalName(t *testing.T) {
	ok := []struct{ in, want string }{
		{"pxelinux.0", "pxelinux.0"},
		{"pxelinux.cfg/01-aa-bb-cc-dd-ee-ff", filepath.Join("pxelinux.cfg", "01-aa-bb-cc-dd-ee-ff")},
		{"./pxelinux.cfg//default", filepath.Join("pxelinux.cfg", "default")},
	}
	for _, tc := range ok {
		got, err := localName(tc.in)
		require.NoError(t, err, "localName(%q)", tc.in)
		require.Equal(t, tc.want, got, "localName(%q)", tc.in)
	}
	for _, in := range []string{"", ".", "/", "/etc/passwd", "..", "../x", "a/../../x", "a/..", "a\x00b"} {
		_, err := localName(in)
		require.Error(t, err, "localName(%q)", in)
	}
}

func TestServerLifecycle(t *testing.T) {
	s, err := NewServer(Config{Root: t.TempDir(), Addr: "127.0.0.1:0", Logger: testlog.New(t)})
	require.NoError(t, err)
	require.Nil(t, s.Addr())

	require.NoError(t, s.Start())
	require.NotNil(t, s.Addr())
	require.ErrorIs(t, s.Start(), ErrServerStarted)

	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	require.NoError(t, s.Shutdown(ctx))
	require.NoError(t, s.Shutdown(ctx), "a second Shutdown")
	require.ErrorIs(t, s.Start(), ErrServerClosed)

	// Shutdown before Start is fine too.
	s2, err := NewServer(Config{Root: t.TempDir(), Addr: "127.0.0.1:0"})
	require.NoError(t, err)
	require.NoError(t, s2.Shutdown(ctx))
}

func TestServerRun(t *testing.T) {
	root := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(root, "f"), []byte("hello"), 0o644))
	s, err := NewServer(Config{Root: root, Addr: "127.0.0.1:0", Logger: testlog.New(t)})
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	// Exits when cancel below ends Run.
	go func() { done <- s.Run(ctx) }()
	require.Eventually(t, func() bool { return s.Addr() != nil }, testWait, testPoll)

	got, err := fetch(t, s, "f")
	require.NoError(t, err)
	require.Equal(t, "hello", string(got))

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(testWait):
		t.Fatal("Run did not return after its context was canceled")
	}
}

func TestConfigValidate(t *testing.T) {
	require.NoError(t, func() error { c := DefaultConfig(); c.Root = "/srv/tftp"; return c.Validate() }())
	for name, c := range map[string]Config{
		"no root":          {Addr: ":69", Timeout: time.Second, Retries: 1},
		"negative timeout": {Root: "/r", Addr: ":69", Timeout: -time.Second, Retries: 1},
		"negative retries": {Root: "/r", Addr: ":69", Timeout: time.Second, Retries: -1},
	} {
		_, err := NewServer(c)
		require.Error(t, err, name)
	}
}
