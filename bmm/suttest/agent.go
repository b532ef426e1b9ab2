package suttest

import (
	"bufio"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

var (
	// errLineTooLong ends a connection whose command line exceeds
	// maxLine.
	errLineTooLong = errors.New("command line too long")
)

const (
	// Prompt is what the agent sends on connect and after every response.
	Prompt = "$>\x00"
	// WarningPrefix starts every failure response.
	WarningPrefix = "##AGENT-WARNING##"
	// Version is the agent's answer to ver.
	Version = "SUTAgentAndroid Version 1.20"

	// DefaultRoot is the device root testroot reports by default.
	DefaultRoot = "/mnt/sdcard"

	// maxLine bounds a command line; maxPush bounds push data.
	maxLine = 4096
	maxPush = 16 << 20
	// writeTimeout bounds each response write, so a client that stops
	// reading cannot pin a connection goroutine.
	writeTimeout = 10 * time.Second
	// acceptRetry is the pause after a failed Accept (for example when
	// out of file descriptors) before trying again.
	acceptRetry = 50 * time.Millisecond
)

// AgentOptions configures an Agent. A zero field takes its default.
type AgentOptions struct {
	// Addr is the TCP address to listen on. Default: "127.0.0.1:0".
	Addr string
	// Root is the device root answered to testroot; it and its parents
	// exist as directories from the start. Default: "/mnt/sdcard".
	Root string
	// Warn lists commands (first word, e.g. "mkdr") answered with a
	// "##AGENT-WARNING##" response instead of being carried out.
	Warn map[string]bool
	// Silent makes the agent accept connections but never send anything,
	// not even the first prompt: clients time out.
	Silent bool
	// BrokenSDCard makes push store corrupted data and answer its MD5,
	// which differs from the MD5 of the data sent.
	BrokenSDCard bool
	// Logger receives connection and command details at trace and
	// debug. Default: a null logger.
	Logger hclog.Logger
}

// Agent is a fake SUT agent. Its methods are safe for concurrent use.
type Agent struct {
	ln     net.Listener
	logger hclog.Logger
	root   string
	done   chan struct{} // closed by Close
	wg     sync.WaitGroup

	// mu guards everything below.
	mu       sync.Mutex
	warn     map[string]bool
	silent   bool
	broken   bool
	offline  bool
	dirs     map[string]bool
	files    map[string][]byte
	commands []string
	conns    map[net.Conn]struct{}
	closed   bool
}

// NewAgent starts an agent listening on opts.Addr.
func NewAgent(opts AgentOptions) (*Agent, error) {
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	if opts.Root == "" {
		opts.Root = DefaultRoot
	}
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if !path.IsAbs(opts.Root) {
		return nil, fmt.Errorf("suttest: Root must be absolute, got %q", opts.Root)
	}
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("suttest: listen %s: %w", opts.Addr, err)
	}
	a := &Agent{
		ln:     ln,
		logger: opts.Logger.Named("suttest"),
		root:   path.Clean(opts.Root),
		done:   make(chan struct{}),
		warn:   map[string]bool{},
		silent: opts.Silent,
		broken: opts.BrokenSDCard,
		dirs:   map[string]bool{},
		files:  map[string][]byte{},
		conns:  map[net.Conn]struct{}{},
	}
	for cmd, w := range opts.Warn {
		a.warn[cmd] = w
	}
	a.mkdirAllLocked(a.root)
	a.wg.Add(1)
	// Exits when Close closes the listener.
	go func() {
		defer a.wg.Done()
		a.acceptLoop()
	}()
	return a, nil
}

// Addr returns the agent's "host:port", which sut.Client and ping's TCP
// mode accept as a host.
func (a *Agent) Addr() string { return a.ln.Addr().String() }

// Root returns the device root.
func (a *Agent) Root() string { return a.root }

// Commands returns every command line received so far, on all connections,
// in arrival order (push data not included).
func (a *Agent) Commands() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.commands)
}

// SetWarn makes cmd (its first word) answer with a warning, or stop doing
// so.
func (a *Agent) SetWarn(cmd string, warn bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.warn[cmd] = warn
}

// SetSilent switches silence on or off (see AgentOptions.Silent). A
// connection that was accepted while silent stays without its greeting.
func (a *Agent) SetSilent(silent bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.silent = silent
}

// SetBrokenSDCard switches SD-card corruption on or off (see
// AgentOptions.BrokenSDCard).
func (a *Agent) SetBrokenSDCard(broken bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.broken = broken
}

// SetOffline switches offline mode: while on, new connections are reset as
// soon as they are accepted, and existing ones are reset at their next
// command, as if the board had lost power.
func (a *Agent) SetOffline(offline bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.offline = offline
}

// IsDir reports whether p is a directory in the agent's file system.
func (a *Agent) IsDir(p string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.dirs[path.Clean(p)]
}

// File returns the contents of the file p, if it exists.
func (a *Agent) File(p string) ([]byte, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	b, ok := a.files[path.Clean(p)]
	return slices.Clone(b), ok
}

// Close stops the agent: it closes the listener and every connection, and
// waits for their goroutines. It may be called more than once.
func (a *Agent) Close() error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		a.wg.Wait()
		return nil
	}
	a.closed = true
	close(a.done)
	err := a.ln.Close()
	for c := range a.conns {
		c.Close()
	}
	a.mu.Unlock()
	a.wg.Wait()
	return err
}

func (a *Agent) acceptLoop() {
	for {
		conn, err := a.ln.Accept()
		if err != nil {
			select {
			case <-a.done:
				return
			default:
			}
			a.logger.Warn("accept failed", "error", err)
			t := time.NewTimer(acceptRetry)
			select {
			case <-a.done:
				t.Stop()
				return
			case <-t.C:
			}
			continue
		}
		a.mu.Lock()
		if a.closed {
			a.mu.Unlock()
			conn.Close()
			return
		}
		a.conns[conn] = struct{}{}
		a.wg.Add(1)
		a.mu.Unlock()
		// Exits when the client disconnects or Close closes conn.
		go func() {
			defer a.wg.Done()
			defer a.untrack(conn)
			a.serve(conn)
		}()
	}
}

func (a *Agent) untrack(conn net.Conn) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.conns, conn)
	conn.Close()
}

// serve runs one connection until the client leaves, sends quit, breaks
// the protocol, or the agent goes offline or closes.
func (a *Agent) serve(conn net.Conn) {
	a.logger.Trace("connection", "remote", conn.RemoteAddr().String())
	if a.isOffline() {
		reset(conn)
		return
	}
	r := bufio.NewReaderSize(conn, maxLine)
	if !a.isSilent() {
		if err := a.send(conn, ""); err != nil {
			return
		}
	}
	for {
		line, err := readLine(r)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				a.logger.Debug("connection ended", "remote", conn.RemoteAddr().String(), "error", err)
			}
			return
		}
		a.logger.Debug("command", "remote", conn.RemoteAddr().String(), "line", line)
		a.mu.Lock()
		a.commands = append(a.commands, line)
		silent, offline := a.silent, a.offline
		a.mu.Unlock()
		if offline {
			reset(conn)
			return
		}
		// push data must be consumed whatever the answer (even none),
		// or the stream falls out of step.
		data, err := readPushData(line, r)
		if err != nil {
			a.logger.Debug("bad push, closing", "remote", conn.RemoteAddr().String(), "error", err)
			return
		}
		if silent {
			continue
		}
		resp, quit := a.exec(line, data)
		if quit {
			return
		}
		if err := a.send(conn, resp); err != nil {
			return
		}
	}
}

// readPushData reads the data that follows a "push <path> <size>" line. It
// returns nil for other lines, and for a push whose size is missing (which
// exec answers with a warning). An unparseable or out-of-range size is an
// error: the data's extent is unknown, so the stream cannot continue.
func readPushData(line string, r *bufio.Reader) ([]byte, error) {
	fields := strings.Fields(line)
	if len(fields) != 3 || fields[0] != "push" {
		return nil, nil
	}
	size, err := strconv.Atoi(fields[2])
	if err != nil || size < 0 || size > maxPush {
		return nil, fmt.Errorf("push size %q", fields[2])
	}
	data := make([]byte, size)
	if _, err := io.ReadFull(r, data); err != nil {
		return nil, fmt.Errorf("push data: %w", err)
	}
	return data, nil
}

// send writes resp (if any) followed by the prompt.
func (a *Agent) send(conn net.Conn, resp string) error {
	msg := Prompt
	if resp != "" {
		msg = resp + "\n" + Prompt
	}
	conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err := io.WriteString(conn, msg)
	return err
}

// exec carries out one command line; data is what followed a push line.
// quit means the connection must end.
func (a *Agent) exec(line string, data []byte) (resp string, quit bool) {
	fields := strings.Fields(line)
	if len(fields) == 0 {
		return "", false
	}
	cmd, args := fields[0], fields[1:]
	if cmd == "push" && len(args) != 2 {
		return warning("push needs a path and a size"), false
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	if a.warn[cmd] {
		return warning(cmd + " failed (injected fault)"), false
	}
	switch cmd {
	case "quit":
		return "", true
	case "ver":
		return Version, false
	case "testroot":
		return a.root, false
	case "isdir", "mkdr", "rmdr":
		if len(args) != 1 || !path.IsAbs(args[0]) {
			return warning(cmd + " needs one absolute path"), false
		}
	}
	switch cmd {
	case "isdir":
		if a.dirs[path.Clean(args[0])] {
			return "TRUE", false
		}
		return "FALSE", false
	case "mkdr":
		p := path.Clean(args[0])
		if _, isFile := a.files[p]; isFile || a.fileAncestorLocked(p) {
			return warning("Could not create directory " + p), false
		}
		a.mkdirAllLocked(p)
		return p + " successfully created", false
	case "rmdr":
		p := path.Clean(args[0])
		if !a.dirs[p] {
			return warning("Unable to delete directory " + p + ": not a directory"), false
		}
		a.removeAllLocked(p)
		return "Deleting file(s) from " + p, false
	case "push":
		p := path.Clean(args[0])
		if !path.IsAbs(p) || !a.dirs[path.Dir(p)] || a.dirs[p] {
			return warning("Could not create file " + p), false
		}
		if a.broken && len(data) > 0 {
			data[len(data)-1] ^= 0x01
		} else if a.broken {
			data = []byte{0}
		}
		a.files[p] = data
		sum := md5.Sum(data)
		return hex.EncodeToString(sum[:]), false
	}
	return warning("Unknown command: " + cmd), false
}

func (a *Agent) mkdirAllLocked(p string) {
	for ; !a.dirs[p]; p = path.Dir(p) {
		a.dirs[p] = true
		if p == "/" {
			break
		}
	}
}

// fileAncestorLocked reports whether a parent of p is a file.
func (a *Agent) fileAncestorLocked(p string) bool {
	for p != "/" {
		p = path.Dir(p)
		if _, ok := a.files[p]; ok {
			return true
		}
	}
	return false
}

func (a *Agent) removeAllLocked(p string) {
	prefix := p + "/"
	if p == "/" {
		prefix = "/"
	}
	for d := range a.dirs {
		if d == p || strings.HasPrefix(d, prefix) {
			delete(a.dirs, d)
		}
	}
	for f := range a.files {
		if strings.HasPrefix(f, prefix) {
			delete(a.files, f)
		}
	}
	// The root of the file system always exists.
	a.dirs["/"] = true
}

func (a *Agent) isSilent() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.silent
}

func (a *Agent) isOffline() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.offline
}

func warning(msg string) string { return WarningPrefix + " " + msg }

// readLine reads one command line ending in "\n" (with or without "\r").
func readLine(r *bufio.Reader) (string, error) {
	line, err := r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return "", errLineTooLong
	}
	if err != nil {
		return "", err
	}
	return strings.TrimRight(string(line), "\r\n"), nil
}

// reset closes conn so that the peer sees a reset rather than an orderly
// end of stream.
func reset(conn net.Conn) {
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	conn.Close()
}
