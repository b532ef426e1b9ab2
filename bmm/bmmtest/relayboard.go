package bmmtest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Banks and Relays give the fake board's size; both are numbered from 1.
const (
	Banks  = 4
	Relays = 8
)

// ProXR bytes, written out here rather than shared with bmm/relay so that a
// mistake on one side cannot hide the same mistake on the other.
const (
	cmdStart     = 0xFE
	cmdTestComms = 0x21
	replyOK      = 0x55
)

// DefaultRecovery is the pause after each connection when
// RelayBoardOptions.Recovery is zero.
const DefaultRecovery = time.Second

// RelayBoardOptions configures a RelayBoard.
type RelayBoardOptions struct {
	// Addr is the address to listen on. Default: "127.0.0.1:0".
	Addr string
	// Recovery is how long the board pauses after each connection closes
	// before it accepts the next; connections made meanwhile wait in the
	// listen backlog. Zero means DefaultRecovery (1 s); negative means no
	// pause.
	Recovery time.Duration
	// FailFirst makes the first FailFirst commands fail: the board does not
	// act on them and, unless FailReply is set, closes the connection
	// without answering.
	FailFirst int
	// FailReply, when set, is sent instead of closing the connection for
	// each failed command, and the connection stays open.
	FailReply []byte
	// ByteDelay is a pause before each byte the board reads, to simulate a
	// slow board. Default: none.
	ByteDelay time.Duration
	// Refuse starts the board refusing connections, as SetRefuse(true).
	Refuse bool
	// Logger receives a line per connection and per command. Default: a
	// null logger.
	Logger hclog.Logger
}

// Command is one command the board received.
type Command struct {
	// At is when the board had read the whole command.
	At time.Time
	// Text is "set bankB relayR on" or "... off" (the relay's new state:
	// "on" means the device is unpowered), "get bankB relayR", "test", or
	// "unknown" followed by the bytes read.
	Text string
	// Failed is set for commands the board did not act on (FailFirst,
	// unknown commands).
	Failed bool
	// From is the peer address (host:port) of the connection the command
	// came on, and Conn that connection's number (from 0, as in
	// Connections): which client did what.
	From string
	Conn int
}

func (c Command) String() string {
	s := c.At.Format("15:04:05.000") + " " + c.Text
	if c.Failed {
		s += " (failed)"
	}
	return s
}

// Connection is one connection the board served.
type Connection struct {
	// From is the peer address, host:port.
	From     string
	Accepted time.Time
	Closed   time.Time // zero while open
}

// RelayBoard is a fake ProXR relay board on a TCP port.
type RelayBoard struct {
	opts     RelayBoardOptions
	recovery time.Duration
	logger   hclog.Logger
	addr     string

	// serveMu is held while a connection is served and during the pause
	// after it, so that the board never serves two connections at once,
	// even across SetRefuse calls.
	serveMu sync.Mutex
	wg      sync.WaitGroup
	closing chan struct{}

	mu       sync.Mutex
	closed   bool
	ln       net.Listener // nil while refusing
	conn     net.Conn     // the connection being served, if any
	relays   [Banks][Relays]bool
	commands []Command
	conns    []Connection
	failLeft int
	stuck    bool
	onChange []func(bank, relay int, powered bool)
}

// NewRelayBoard starts a fake board listening on opts.Addr.
func NewRelayBoard(opts RelayBoardOptions) (*RelayBoard, error) {
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if opts.FailFirst < 0 || opts.ByteDelay < 0 {
		return nil, errors.New("bmmtest: FailFirst and ByteDelay must not be negative")
	}
	b := &RelayBoard{
		opts:     opts,
		recovery: opts.Recovery,
		logger:   opts.Logger.Named("fakerelay"),
		closing:  make(chan struct{}),
		failLeft: opts.FailFirst,
	}
	switch {
	case b.recovery == 0:
		b.recovery = DefaultRecovery
	case b.recovery < 0:
		b.recovery = 0
	}
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("fake relay board: %w", err)
	}
	b.addr = ln.Addr().String()
	b.logger = b.logger.With("board", b.addr)
	if opts.Refuse {
		ln.Close()
		return b, nil
	}
	b.mu.Lock()
	b.startLocked(ln)
	b.mu.Unlock()
	return b, nil
}

// startLocked starts serving ln.
func (b *RelayBoard) startLocked(ln net.Listener) {
	b.ln = ln
	b.wg.Add(1)
	// Exits when ln is closed, by Close or SetRefuse(true).
	go func() {
		defer b.wg.Done()
		b.acceptLoop(ln)
	}()
}

// Addr returns the board's address, host:port. It stays the same while
// the board refuses connections.
func (b *RelayBoard) Addr() string { return b.addr }

// Host returns the host half of Addr.
func (b *RelayBoard) Host() string {
	h, _, _ := net.SplitHostPort(b.addr)
	return h
}

// Port returns the port half of Addr.
func (b *RelayBoard) Port() int {
	_, p, _ := net.SplitHostPort(b.addr)
	n, _ := strconv.Atoi(p)
	return n
}

// Commands returns a copy of every command received so far, oldest first.
func (b *RelayBoard) Commands() []Command {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.commands)
}

// CommandTexts returns the Text of every command received so far.
func (b *RelayBoard) CommandTexts() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]string, len(b.commands))
	for i, c := range b.commands {
		out[i] = c.Text
	}
	return out
}

// Connections returns a copy of the record of every connection served.
func (b *RelayBoard) Connections() []Connection {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.conns)
}

// Relay reports whether relay (bank, relay) is energised. Out-of-range
// numbers report false.
func (b *RelayBoard) Relay(bank, relay int) (energised bool) {
	if !inRange(bank, relay) {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.relays[bank-1][relay-1]
}

// DevicePowered reports whether the device wired to (bank, relay) has
// power: wiring is normally closed, so that is when the relay is off.
func (b *RelayBoard) DevicePowered(bank, relay int) bool {
	return inRange(bank, relay) && !b.Relay(bank, relay)
}

// OnChange registers f to be called whenever a set command changes a
// relay, with the device's new power state. Callbacks run on the board's
// serving goroutine before it answers, in registration order; they must
// not call back into the board's serving (they may call its accessors).
func (b *RelayBoard) OnChange(f func(bank, relay int, powered bool)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.onChange = append(b.onChange, f)
}

// SetStuck makes the board's relays stop switching (or switch again): set
// commands are answered as if acted on, but no relay changes and each is
// recorded as failed; get and test commands answer as usual. This is a
// board whose relay coils or driver have failed while its controller
// still talks.
func (b *RelayBoard) SetStuck(stuck bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.stuck = stuck
}

// Stuck reports whether SetStuck(true) is in force.
func (b *RelayBoard) Stuck() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stuck
}

// SetRefuse makes the board go down (stop listening, drop the connection
// being served, so that connections are refused) or come back up on the
// same address.
func (b *RelayBoard) SetRefuse(refuse bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return errors.New("fake relay board is closed")
	}
	if refuse {
		if b.ln != nil {
			b.ln.Close()
			b.ln = nil
		}
		if b.conn != nil {
			b.conn.Close()
		}
		return nil
	}
	if b.ln != nil {
		return nil
	}
	ln, err := net.Listen("tcp", b.addr)
	if err != nil {
		return fmt.Errorf("fake relay board: listen again: %w", err)
	}
	b.startLocked(ln)
	return nil
}

// Close stops the board: it stops listening, drops the connection being
// served and waits for its goroutine. It is safe to call more than once.
func (b *RelayBoard) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	close(b.closing)
	if b.ln != nil {
		b.ln.Close()
		b.ln = nil
	}
	if b.conn != nil {
		b.conn.Close()
	}
	b.mu.Unlock()
	b.wg.Wait()
	return nil
}

// acceptLoop serves ln's connections one at a time, pausing for the
// recovery time after each, until ln is closed.
func (b *RelayBoard) acceptLoop(ln net.Listener) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			return // closed by Close or SetRefuse
		}
		b.serveMu.Lock()
		b.serve(conn)
		ok := b.sleep(b.recovery)
		b.serveMu.Unlock()
		if !ok {
			return
		}
	}
}

// sleep pauses for d, or until the board closes; it reports whether the
// board is still open.
func (b *RelayBoard) sleep(d time.Duration) bool {
	if d <= 0 {
		select {
		case <-b.closing:
			return false
		default:
			return true
		}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-b.closing:
		return false
	}
}

// serve answers the commands on conn until the peer closes it, a command
// fails, or the board closes.
func (b *RelayBoard) serve(conn net.Conn) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		conn.Close()
		return
	}
	b.conn = conn
	from := conn.RemoteAddr().String()
	b.conns = append(b.conns, Connection{From: from, Accepted: time.Now()})
	idx := len(b.conns) - 1
	b.mu.Unlock()
	b.logger.Debug("connection accepted", "peer", conn.RemoteAddr().String())

	defer func() {
		conn.Close()
		b.mu.Lock()
		b.conn = nil
		b.conns[idx].Closed = time.Now()
		b.mu.Unlock()
		b.logger.Debug("connection closed")
	}()
	for {
		frame, err := b.readFrame(conn)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				b.logger.Debug("read failed", "error", err)
			}
			return
		}
		reply, keep := b.execute(frame, from, idx)
		if len(reply) > 0 {
			if _, err := conn.Write(reply); err != nil {
				b.logger.Debug("write failed", "error", err)
				return
			}
		}
		if !keep {
			return
		}
	}
}

// readFrame reads one command a byte at a time: the start byte (not
// checked, as on the real board), the command, and a bank byte for every
// command but the comms test.
func (b *RelayBoard) readFrame(conn net.Conn) ([]byte, error) {
	frame := make([]byte, 0, 3)
	for want := 2; len(frame) < want; {
		c, err := b.readByte(conn)
		if err != nil {
			return nil, err
		}
		frame = append(frame, c)
		if len(frame) == 2 && c != cmdTestComms {
			want = 3
		}
	}
	return frame, nil
}

func (b *RelayBoard) readByte(conn net.Conn) (byte, error) {
	if b.opts.ByteDelay > 0 && !b.sleep(b.opts.ByteDelay) {
		return 0, net.ErrClosed
	}
	var buf [1]byte
	if _, err := io.ReadFull(conn, buf[:]); err != nil {
		return 0, err
	}
	return buf[0], nil
}

// execute acts on one frame and returns the reply and whether to keep the
// connection open.
func (b *RelayBoard) execute(frame []byte, from string, conn int) (reply []byte, keep bool) {
	cmd := int(frame[1])
	var bank, relay int
	var text string
	var set, energise bool
	switch {
	case cmd == cmdTestComms:
		text = "test"
	case cmd >= 116 && cmd <= 123:
		bank, relay = int(frame[2]), cmd-115
		text = fmt.Sprintf("get bank%d relay%d", bank, relay)
	case cmd >= 108 && cmd <= 115:
		bank, relay = int(frame[2]), cmd-107
		set, energise = true, true
		text = fmt.Sprintf("set bank%d relay%d on", bank, relay)
	case cmd >= 100 && cmd <= 107:
		bank, relay = int(frame[2]), cmd-99
		set = true
		text = fmt.Sprintf("set bank%d relay%d off", bank, relay)
	}
	if frame[0] != cmdStart {
		b.logger.Warn("frame does not start with FE", "frame", fmt.Sprintf("% x", frame))
	}

	b.mu.Lock()
	now := time.Now()
	if text == "" || (cmd != cmdTestComms && !inRange(bank, relay)) {
		b.commands = append(b.commands, Command{At: now, Text: fmt.Sprintf("unknown % x", frame), Failed: true, From: from, Conn: conn})
		b.mu.Unlock()
		b.logger.Warn("unknown command, dropping the connection", "frame", fmt.Sprintf("% x", frame))
		return nil, false
	}
	if b.failLeft > 0 {
		b.failLeft--
		b.commands = append(b.commands, Command{At: now, Text: text, Failed: true, From: from, Conn: conn})
		failReply := b.opts.FailReply
		b.mu.Unlock()
		b.logger.Debug("failing command", "command", text)
		if failReply == nil {
			return nil, false
		}
		return slices.Clone(failReply), true
	}
	if set && b.stuck {
		b.commands = append(b.commands, Command{At: now, Text: text, Failed: true, From: from, Conn: conn})
		b.mu.Unlock()
		b.logger.Debug("relay stuck, command not acted on", "command", text)
		return []byte{replyOK}, true
	}
	b.commands = append(b.commands, Command{At: now, Text: text, From: from, Conn: conn})
	var hooks []func(int, int, bool)
	switch {
	case cmd == cmdTestComms:
		reply = []byte{replyOK}
	case !set:
		reply = []byte{0}
		if b.relays[bank-1][relay-1] {
			reply[0] = 1
		}
	default:
		if b.relays[bank-1][relay-1] != energise {
			b.relays[bank-1][relay-1] = energise
			hooks = slices.Clone(b.onChange)
		}
		reply = []byte{replyOK}
	}
	b.mu.Unlock()

	b.logger.Debug("command", "command", text)
	for _, f := range hooks {
		f(bank, relay, !energise)
	}
	return reply, true
}

func inRange(bank, relay int) bool {
	return bank >= 1 && bank <= Banks && relay >= 1 && relay <= Relays
}
