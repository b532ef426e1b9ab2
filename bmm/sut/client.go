package sut

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
)

var (
	// ErrConnect is returned when the agent cannot be reached: the
	// connection is refused, times out (then ErrTimeout is wrapped too)
	// or fails otherwise.
	ErrConnect = errors.New("cannot connect to SUT agent")
	// ErrTimeout is returned when a step does not complete within
	// Config.CommandTimeout or the caller's context deadline.
	ErrTimeout = errors.New("SUT agent timed out")
	// ErrAgentWarning is returned when the agent answers a command with
	// "##AGENT-WARNING##"; the error text carries the agent's message.
	ErrAgentWarning = errors.New("SUT agent warning")
	// ErrProtocol is returned when the agent does not follow the
	// protocol: it closes the connection before a prompt, sends an
	// over-long or empty answer where one is required, or sends data
	// nobody asked for.
	ErrProtocol = errors.New("SUT agent protocol error")
	// ErrMismatch is returned when an answer is well-formed but wrong:
	// isdir is not TRUE for the directory just made, or the MD5 of a
	// pushed file differs from the data sent.
	ErrMismatch = errors.New("SUT agent answer mismatch")
	// ErrEmptyHost is returned for an empty host.
	ErrEmptyHost = errors.New("empty host")
)

const (
	// prompt ends the agent's greeting and every response.
	prompt = "$>\x00"
	// warningPrefix starts a response reporting a failure.
	warningPrefix = "##AGENT-WARNING##"
	// maxResponse bounds a response; the commands used here answer in
	// a line.
	maxResponse = 64 << 10

	// sdcardDir, sdcardFile and sdcardData are what check_sdcard writes
	// under the device root (mozpool bmm/sut.py).
	sdcardDir  = "sdcardtest"
	sdcardFile = "sdcard_check"
	sdcardData = "autophone test\n"
)

// Client runs checks against SUT agents. It is safe for concurrent use;
// every check uses its own connection.
type Client struct {
	cfg    Config
	logger hclog.Logger
	dialer net.Dialer
}

// New returns a Client for cfg.
func New(cfg Config) (*Client, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Client{cfg: cfg, logger: cfg.Logger.Named(loggerName)}, nil
}

// Verify checks that the agent on host is up: it connects, reads the
// prompt and asks for the device root (testroot), which must be answered
// without a warning. host is a name or address, optionally with a port
// ("127.0.0.1:40123"); without one Config.Port is used.
func (c *Client) Verify(ctx context.Context, host string) error {
	s, err := c.connect(ctx, host)
	if err != nil {
		return err
	}
	defer s.close()
	_, err = s.testRoot()
	return err
}

// CheckSDCard checks that the device's storage works: under the device
// root it removes <root>/sdcardtest if present, creates it, checks isdir
// says TRUE, pushes <root>/sdcardtest/sdcard_check containing
// "autophone test\n", compares the MD5 the agent returns with the data's,
// and removes the directory again. Any failure is returned.
func (c *Client) CheckSDCard(ctx context.Context, host string) error {
	s, err := c.connect(ctx, host)
	if err != nil {
		return err
	}
	defer s.close()
	root, err := s.testRoot()
	if err != nil {
		return err
	}
	dir := path.Join(root, sdcardDir)

	// Left over from an interrupted check, or not there at all (a
	// warning, which is fine).
	if _, err := s.do("rmdr "+dir, nil); err != nil && !errors.Is(err, ErrAgentWarning) {
		return err
	}
	if _, err := s.do("mkdr "+dir, nil); err != nil {
		return err
	}
	resp, err := s.do("isdir "+dir, nil)
	if err != nil {
		return err
	}
	if got := strings.TrimSpace(resp); got != "TRUE" {
		return s.errorf("isdir "+dir, "%w: answered %q, want TRUE", ErrMismatch, got)
	}

	file := path.Join(dir, sdcardFile)
	pushCmd := "push " + file + " " + strconv.Itoa(len(sdcardData))
	resp, err = s.do(pushCmd, []byte(sdcardData))
	if err != nil {
		return err
	}
	sum := md5.Sum([]byte(sdcardData))
	want := hex.EncodeToString(sum[:])
	if got := strings.ToLower(strings.TrimSpace(resp)); got != want {
		return s.errorf(pushCmd, "%w: MD5 %q, want %q", ErrMismatch, got, want)
	}

	if _, err := s.do("rmdr "+dir, nil); err != nil {
		return err
	}
	return nil
}

// session is one connection to an agent.
type session struct {
	ctx     context.Context
	conn    net.Conn
	host    string
	timeout time.Duration
	logger  hclog.Logger
	// buf holds bytes read but not yet consumed.
	buf []byte
	// stop unregisters the AfterFunc that interrupts I/O when ctx ends.
	stop func() bool
}

// connect dials host and reads the agent's greeting prompt.
func (c *Client) connect(ctx context.Context, host string) (*session, error) {
	if strings.TrimSpace(host) == "" {
		return nil, ErrEmptyHost
	}
	addr := host
	if _, _, err := net.SplitHostPort(host); err != nil {
		addr = net.JoinHostPort(host, strconv.Itoa(c.cfg.Port))
	}
	c.logger.Debug("connecting to sut agent", "addr", addr)
	dctx, cancel := context.WithTimeout(ctx, c.cfg.CommandTimeout)
	conn, err := c.dialer.DialContext(dctx, "tcp", addr)
	cancel()
	s := &session{ctx: ctx, conn: conn, host: addr, timeout: c.cfg.CommandTimeout, logger: c.logger}
	if err != nil {
		return nil, s.wrap("connect", fmt.Errorf("%w: %w", ErrConnect, err))
	}
	// Unblocks a pending read or write as soon as ctx ends; the
	// deadlines set per command cover the timeouts.
	s.stop = context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	s.setDeadline()
	if _, err := s.readResponse("connect"); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// close closes the connection.
func (s *session) close() {
	s.stop()
	s.conn.Close()
}

// testRoot asks for the device root and checks the answer is one
// non-empty line.
func (s *session) testRoot() (string, error) {
	resp, err := s.do("testroot", nil)
	if err != nil {
		return "", err
	}
	root := strings.TrimSpace(resp)
	if root == "" || strings.ContainsAny(root, "\r\n") {
		return "", s.errorf("testroot", "%w: device root %q", ErrProtocol, root)
	}
	return root, nil
}

// do sends cmd, then data if any, and returns the response. A response
// starting with the warning prefix is ErrAgentWarning.
func (s *session) do(cmd string, data []byte) (string, error) {
	start := time.Now()
	if len(s.buf) > 0 {
		return "", s.errorf(cmd, "%w: unexpected data after prompt: %q", ErrProtocol, s.buf)
	}
	s.setDeadline()
	msg := make([]byte, 0, len(cmd)+2+len(data))
	msg = append(append(append(msg, cmd...), "\r\n"...), data...)
	if _, err := s.conn.Write(msg); err != nil {
		return "", s.wrap(cmd, err)
	}
	resp, err := s.readResponse(cmd)
	if err != nil {
		return "", err
	}
	s.logger.Debug("sut command", "addr", s.host, "command", cmd, "response", strings.TrimSpace(resp), "duration", time.Since(start))
	if msg, ok := strings.CutPrefix(strings.TrimLeft(resp, " \t\r\n"), warningPrefix); ok {
		return resp, s.errorf(cmd, "%w: %s", ErrAgentWarning, strings.TrimSpace(msg))
	}
	return resp, nil
}

// readResponse reads up to and including the next prompt and returns what
// came before it.
func (s *session) readResponse(op string) (string, error) {
	chunk := make([]byte, 1024)
	for {
		if i := bytes.Index(s.buf, []byte(prompt)); i >= 0 {
			resp := string(s.buf[:i])
			s.buf = s.buf[i+len(prompt):]
			return resp, nil
		}
		if len(s.buf) > maxResponse {
			return "", s.errorf(op, "%w: no prompt in %d bytes", ErrProtocol, len(s.buf))
		}
		n, err := s.conn.Read(chunk)
		s.buf = append(s.buf, chunk[:n]...)
		if errors.Is(err, io.EOF) {
			return "", s.errorf(op, "%w: connection closed before the prompt", ErrProtocol)
		}
		if err != nil {
			return "", s.wrap(op, err)
		}
	}
}

// setDeadline sets the connection's deadline for the next step: the
// earlier of CommandTimeout from now and the context's deadline.
func (s *session) setDeadline() {
	d := time.Now().Add(s.timeout)
	if cd, ok := s.ctx.Deadline(); ok && cd.Before(d) {
		d = cd
	}
	s.conn.SetDeadline(d)
	// If ctx ended before the line above, the AfterFunc's deadline was
	// just overwritten; restore it. (If ctx ends after this check, the
	// AfterFunc runs after it and wins.)
	if s.ctx.Err() != nil {
		s.conn.SetDeadline(time.Now())
	}
}

// wrap adds the host and step to a network error, and ErrTimeout or the
// context's error when that is why it failed.
func (s *session) wrap(op string, err error) error {
	ctxErr := s.ctx.Err()
	if d, ok := s.ctx.Deadline(); ok && ctxErr == nil && isTimeout(err) && !time.Now().Before(d) {
		// The socket deadline was the context's, and it fired a moment
		// before the context's own timer.
		ctxErr = context.DeadlineExceeded
	}
	switch {
	case errors.Is(ctxErr, context.DeadlineExceeded):
		return fmt.Errorf("sut %s: %s: %w: %w", s.host, op, ErrTimeout, ctxErr)
	case ctxErr != nil:
		return fmt.Errorf("sut %s: %s: %w", s.host, op, ctxErr)
	case isTimeout(err):
		return fmt.Errorf("sut %s: %s: %w after %s: %w", s.host, op, ErrTimeout, s.timeout, err)
	}
	return fmt.Errorf("sut %s: %s: %w", s.host, op, err)
}

// errorf formats an error about step op.
func (s *session) errorf(op, format string, args ...any) error {
	return fmt.Errorf("sut %s: %s: "+format, append([]any{s.host, op}, args...)...)
}

// isTimeout reports whether err is a deadline or timeout error.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) ||
		errors.Is(err, context.DeadlineExceeded) ||
		errors.As(err, &ne) && ne.Timeout()
}
