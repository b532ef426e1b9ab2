package pxe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/pin/tftp/v3"
)

var (
	// ErrServerStarted is returned by Start on a Server already started.
	ErrServerStarted = errors.New("tftp server already started")
	// ErrServerClosed is returned by Start after Shutdown.
	ErrServerClosed = errors.New("tftp server closed")
)

// Errors sent to TFTP clients as the message of an ERROR packet. They say
// no more than a client needs: never a local path.
var (
	// errNotFound: no such file under the root.
	errNotFound = errors.New("file not found")
	// errAccess: the name is not allowed (absolute, "..", escapes the
	// root, or not a regular file).
	errAccess = errors.New("access violation")
	// errReadOnly: a write request.
	errReadOnly = errors.New("server is read-only")
	// errServer: the root itself cannot be opened.
	errServer = errors.New("server error")
)

// Stats counts requests since the Server was created.
type Stats struct {
	// Served is the number of read transfers completed.
	Served uint64
	// NotFound is the number of reads of a missing file. pxelinux asks
	// for several names per boot (01-<mac>, then the IP in hex, then
	// "default"), so misses are normal and only logged at debug.
	NotFound uint64
	// Refused is the number of requests refused: names that are absolute,
	// contain "..", leave the root or are not regular files, and writes.
	Refused uint64
	// Failed is the number of reads that started but did not complete
	// (the client went away or stopped acknowledging).
	Failed uint64
}

// Server is a read-only TFTP server for one directory. Create it with
// NewServer, then either call Start and later Shutdown, or call Run.
type Server struct {
	cfg    Config
	logger hclog.Logger
	tftp   *tftp.Server

	// mu guards conn, started and closed.
	mu      sync.Mutex
	conn    net.PacketConn
	started bool
	closed  bool

	serveDone    chan struct{} // closed when tftp.Serve returns
	stopOnce     sync.Once
	shutdownDone chan struct{} // closed when Shutdown's work is complete

	served, notFound, refused, failed atomic.Uint64
}

// NewServer returns a Server for cfg. It does not open a socket; Start does.
func NewServer(cfg Config) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("pxe: Root %q: %w", cfg.Root, err)
	}
	cfg.Root = abs
	s := &Server{
		cfg:          cfg,
		logger:       cfg.Logger.Named(loggerName),
		serveDone:    make(chan struct{}),
		shutdownDone: make(chan struct{}),
	}
	s.tftp = tftp.NewServer(s.handleRead, s.handleWrite)
	s.tftp.SetTimeout(cfg.Timeout)
	s.tftp.SetRetries(cfg.Retries)
	return s, nil
}

// Start binds the UDP socket and starts serving in the background. Addr is
// valid once Start returns nil.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return ErrServerClosed
	case s.started:
		return ErrServerStarted
	}
	conn, err := net.ListenPacket("udp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("pxe: listen %s: %w", s.cfg.Addr, err)
	}
	s.conn = conn
	s.started = true
	s.logger.Info("tftp server listening", "addr", conn.LocalAddr().String(), "root", s.cfg.Root)
	// Exits when Shutdown stops the tftp server and closes conn.
	go func() {
		defer close(s.serveDone)
		if err := s.tftp.Serve(conn); err != nil {
			s.logger.Error("tftp server stopped", "error", err)
		}
	}()
	return nil
}

// Run starts the server and blocks until ctx is done, then shuts it down,
// giving in-flight transfers up to Timeout × Retries to finish. It returns
// nil after a clean stop.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Start(); err != nil {
		return err
	}
	<-ctx.Done()
	// ctx is already done, so Shutdown needs a context of its own.
	drain := s.cfg.Timeout*time.Duration(s.cfg.Retries) + time.Second
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), drain)
	defer cancel()
	return s.Shutdown(sctx)
}

// Addr returns the address the server listens on, or nil before Start.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return nil
	}
	return s.conn.LocalAddr()
}

// Stats returns the request counters.
func (s *Server) Stats() Stats {
	return Stats{
		Served:   s.served.Load(),
		NotFound: s.notFound.Load(),
		Refused:  s.refused.Load(),
		Failed:   s.failed.Load(),
	}
}

// Shutdown stops the server:
//
//  1. it marks the server closed, so Start fails from now on;
//  2. it stops pin/tftp from accepting requests and waits for in-flight
//     transfers, each of which ends within Timeout × Retries;
//  3. it closes the socket and waits for the serving goroutine to return.
//
// If ctx ends first, Shutdown returns ctx.Err() and the steps go on in the
// background. Shutdown may be called more than once, and before Start.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		started, conn := s.started, s.conn
		s.mu.Unlock()
		if !started {
			close(s.shutdownDone)
			return
		}
		// Exits when pin/tftp's Shutdown has waited out in-flight
		// transfers and Serve has returned.
		go func() {
			defer close(s.shutdownDone)
			s.tftp.Shutdown()
			// pin/tftp closes conn only if Serve got as far as
			// recording it; close it in any case.
			conn.Close()
			<-s.serveDone
			s.logger.Info("tftp server stopped")
		}()
	})
	select {
	case <-s.shutdownDone:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// handleRead serves one read request: it resolves name under the root and
// sends the file if it is a regular file that stays inside the root.
func (s *Server) handleRead(name string, rf io.ReaderFrom) error {
	client := clientAddr(rf)
	f, err := s.open(name)
	switch {
	case errors.Is(err, errNotFound):
		s.notFound.Add(1)
		s.logger.Debug("tftp file not found", "file", name, "client", client)
		return errNotFound
	case errors.Is(err, errServer):
		s.failed.Add(1)
		s.logger.Error("cannot open tftp root", "root", s.cfg.Root, "error", err)
		return errServer
	case err != nil:
		s.refused.Add(1)
		s.logger.Warn("refused tftp read", "file", name, "client", client, "reason", err)
		return errAccess
	}
	defer f.Close()
	start := time.Now()
	n, err := rf.ReadFrom(f)
	if err != nil {
		s.failed.Add(1)
		s.logger.Warn("tftp transfer failed", "file", name, "client", client, "bytes", n, "error", err)
		return err
	}
	s.served.Add(1)
	s.logger.Debug("tftp transfer", "file", name, "client", client, "bytes", n, "duration", time.Since(start))
	return nil
}

// handleWrite refuses every write request.
func (s *Server) handleWrite(name string, wt io.WriterTo) error {
	s.refused.Add(1)
	client := "unknown"
	if it, ok := wt.(tftp.IncomingTransfer); ok {
		a := it.RemoteAddr()
		client = a.String()
	}
	s.logger.Warn("refused tftp write", "file", name, "client", client)
	return errReadOnly
}

// open opens the regular file name (a TFTP request path, '/'-separated)
// under the root. Errors wrap errNotFound for a missing file, errServer if
// the root cannot be opened, and otherwise say why the name is refused.
func (s *Server) open(name string) (*os.File, error) {
	rel, err := localName(name)
	if err != nil {
		return nil, err
	}
	// A belt-and-braces lexical check; os.Root below enforces the same
	// thing against symlinks and races.
	full := filepath.Join(s.cfg.Root, rel)
	if r, err := filepath.Rel(s.cfg.Root, full); err != nil || !filepath.IsLocal(r) {
		return nil, fmt.Errorf("%q escapes the root", name)
	}
	// The root is opened per request so that a root directory replaced
	// on disk is picked up; it costs one open(2).
	root, err := os.OpenRoot(s.cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errServer, err)
	}
	defer root.Close()
	// Stat first so that device nodes and FIFOs are never opened at all.
	fi, err := root.Stat(rel)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, errNotFound
	case err != nil:
		// Includes a symlink that leads out of the root.
		return nil, err
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("%q is not a regular file (%s)", name, fi.Mode())
	}
	f, err := root.OpenFile(rel, openFlags, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errNotFound
	} else if err != nil {
		return nil, err
	}
	// Check again on the open file: the name may have been replaced since
	// the Stat.
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%q is not a regular file", name)
	}
	return f, nil
}

// localName turns a TFTP request path into a clean relative path in the OS's
// syntax, refusing names that are empty, absolute or contain "..".
func localName(name string) (string, error) {
	switch {
	case name == "":
		return "", errors.New("empty file name")
	case strings.ContainsRune(name, 0):
		return "", errors.New("file name contains NUL")
	case path.IsAbs(name) || filepath.IsAbs(name) || filepath.VolumeName(name) != "":
		return "", fmt.Errorf("%q is an absolute path", name)
	}
	for _, elem := range strings.Split(name, "/") {
		if elem == ".." {
			return "", fmt.Errorf("%q contains ..", name)
		}
	}
	clean := path.Clean(name)
	if clean == "." {
		return "", fmt.Errorf("%q names the root directory", name)
	}
	rel := filepath.FromSlash(clean)
	if !filepath.IsLocal(rel) {
		return "", fmt.Errorf("%q is not a local path", name)
	}
	return rel, nil
}

// clientAddr returns the requesting client's address for logs.
func clientAddr(rf io.ReaderFrom) string {
	if ot, ok := rf.(tftp.OutgoingTransfer); ok {
		a := ot.RemoteAddr()
		return a.String()
	}
	return "unknown"
}
