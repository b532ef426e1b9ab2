package relay

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/bmm/bmmtest"
	"github.com/mozpool/mozpool/internal/testlog"
	"github.com/mozpool/mozpool/internal/testwait"
)

// testConfig returns a Config with short timeouts and no recovery pause;
// tests that need other values change them.
func testConfig(t *testing.T) Config {
	cfg := DefaultConfig()
	cfg.Logger = testlog.New(t)
	cfg.Recovery = 0
	cfg.OpTimeout = 5 * time.Second
	cfg.CommsTimeout = 5 * time.Second
	cfg.OffTime = 10 * time.Millisecond
	return cfg
}

func newClient(t *testing.T, cfg Config) *Client {
	t.Helper()
	c, err := New(cfg)
	require.NoError(t, err)
	return c
}

// newBoard starts a fake board; Recovery 0 in opts means none (rather than
// the fake's 1 s default) so that tests measure the client's pause.
func newBoard(t *testing.T, opts bmmtest.RelayBoardOptions) *bmmtest.RelayBoard {
	t.Helper()
	if opts.Recovery == 0 {
		opts.Recovery = -1
	}
	opts.Logger = testlog.New(t)
	b, err := bmmtest.NewRelayBoard(opts)
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	return b
}

func relayOn(b *bmmtest.RelayBoard, bank, relay int) RelayInfo {
	return RelayInfo{Host: b.Host(), Port: b.Port(), Bank: bank, Relay: relay}
}

// scriptBoard is a board that records every chunk it reads and answers the
// n-th with replies[n]; a nil reply (or running out) closes the connection.
type scriptBoard struct {
	ln      net.Listener
	replies [][]byte

	mu     sync.Mutex
	frames [][]byte
}

func newScriptBoard(t *testing.T, replies ...[]byte) *scriptBoard {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := &scriptBoard{ln: ln, replies: replies}
	done := make(chan struct{})
	// Exits when the listener is closed at cleanup.
	go func() {
		defer close(done)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			s.serve(conn)
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return s
}

func (s *scriptBoard) serve(conn net.Conn) {
	defer conn.Close()
	buf := make([]byte, 64)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			return
		}
		s.mu.Lock()
		i := len(s.frames)
		s.frames = append(s.frames, append([]byte(nil), buf[:n]...))
		s.mu.Unlock()
		if i >= len(s.replies) || s.replies[i] == nil {
			return
		}
		if _, err := conn.Write(s.replies[i]); err != nil {
			return
		}
	}
}

func (s *scriptBoard) relay(bank, relay int) RelayInfo {
	a := s.ln.Addr().(*net.TCPAddr)
	return RelayInfo{Host: a.IP.String(), Port: a.Port, Bank: bank, Relay: relay}
}

func (s *scriptBoard) received() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]byte(nil), s.frames...)
}

func TestWireBytes(t *testing.T) {
	ok := []byte{0x55}
	cases := []struct {
		name    string
		replies [][]byte
		op      func(c *Client, ri RelayInfo) error
		want    [][]byte // frames, each seen in one read
	}{
		{
			name:    "power on bank 2 relay 3",
			replies: [][]byte{ok},
			op:      func(c *Client, ri RelayInfo) error { return c.SetPower(context.Background(), ri, true) },
			want:    [][]byte{{0xFE, 0x66, 0x02}},
		},
		{
			name:    "power off bank 2 relay 3",
			replies: [][]byte{ok},
			op:      func(c *Client, ri RelayInfo) error { return c.SetPower(context.Background(), ri, false) },
			want:    [][]byte{{0xFE, 0x6E, 0x02}},
		},
		{
			name:    "status bank 2 relay 3",
			replies: [][]byte{{0}},
			op: func(c *Client, ri RelayInfo) error {
				_, err := c.Status(context.Background(), ri)
				return err
			},
			want: [][]byte{{0xFE, 0x76, 0x02}},
		},
		{
			name:    "power-cycle bank 2 relay 3",
			replies: [][]byte{ok, {1}, ok, {0}},
			op:      func(c *Client, ri RelayInfo) error { return c.PowerCycle(context.Background(), ri) },
			want:    [][]byte{{0xFE, 0x6E, 0x02}, {0xFE, 0x76, 0x02}, {0xFE, 0x66, 0x02}, {0xFE, 0x76, 0x02}},
		},
		{
			name:    "comms test",
			replies: [][]byte{ok},
			op:      func(c *Client, ri RelayInfo) error { return c.TestComms(context.Background(), ri.Host, ri.Port) },
			want:    [][]byte{{0xFE, 0x21}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newScriptBoard(t, tc.replies...)
			c := newClient(t, testConfig(t))
			require.NoError(t, tc.op(c, s.relay(2, 3)))
			require.Equal(t, tc.want, s.received())
		})
	}
}

// TestWireBytesEveryRelay checks FE (107+R) B and FE (99+R) B and
// FE (115+R) B over the whole board.
func TestWireBytesEveryRelay(t *testing.T) {
	for bank := 1; bank <= Banks; bank++ {
		for relay := 1; relay <= Relays; relay++ {
			ri := RelayInfo{Host: "h", Port: 1, Bank: bank, Relay: relay}
			require.Equal(t, []byte{0xFE, byte(107 + relay), byte(bank)}, setFrame(ri, false), "device off %v", ri)
			require.Equal(t, []byte{0xFE, byte(99 + relay), byte(bank)}, setFrame(ri, true), "device on %v", ri)
			require.Equal(t, []byte{0xFE, byte(115 + relay), byte(bank)}, statusFrame(ri), "status %v", ri)
		}
	}
}

func TestReplies(t *testing.T) {
	cases := []struct {
		name    string
		replies [][]byte
		op      string // "on", "status", "cycle", "test"
		wantOn  bool   // for status
		wantErr error
		errText string
	}{
		{name: "set ok", replies: [][]byte{{0x55}}, op: "on"},
		{name: "set wrong byte", replies: [][]byte{{0x00}}, op: "on", wantErr: ErrBadReply, errText: "got 00, want 55"},
		{name: "set extra bytes", replies: [][]byte{{0x55, 0x55}}, op: "on", wantErr: ErrBadReply, errText: "got 55 55"},
		{name: "set no reply", replies: [][]byte{nil}, op: "on", wantErr: ErrBadReply, errText: "closed the connection"},
		{name: "status 0 is on", replies: [][]byte{{0}}, op: "status", wantOn: true},
		{name: "status 1 is off", replies: [][]byte{{1}}, op: "status", wantOn: false},
		{name: "status other is on", replies: [][]byte{{0x55}}, op: "status", wantOn: true},
		{name: "status no reply", replies: [][]byte{nil}, op: "status", wantErr: ErrBadReply},
		{name: "cycle still on after off", replies: [][]byte{{0x55}, {0}}, op: "cycle", wantErr: ErrStatusMismatch, errText: "device reads on after power-off"},
		{name: "cycle still off after on", replies: [][]byte{{0x55}, {1}, {0x55}, {1}}, op: "cycle", wantErr: ErrStatusMismatch, errText: "device reads off after power-on"},
		{name: "cycle second set fails", replies: [][]byte{{0x55}, {1}, {0x56}}, op: "cycle", wantErr: ErrBadReply},
		{name: "comms 55", replies: [][]byte{{0x55}}, op: "test"},
		{name: "comms 0 passes as in mozpool", replies: [][]byte{{0}}, op: "test"},
		{name: "comms 1 fails", replies: [][]byte{{1}}, op: "test", wantErr: ErrBadReply},
		{name: "comms no reply", replies: [][]byte{nil}, op: "test", wantErr: ErrBadReply},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newScriptBoard(t, tc.replies...)
			c := newClient(t, testConfig(t))
			ri := s.relay(1, 1)
			ctx := context.Background()
			var err error
			var on bool
			switch tc.op {
			case "on":
				err = c.SetPower(ctx, ri, true)
			case "status":
				on, err = c.Status(ctx, ri)
			case "cycle":
				err = c.PowerCycle(ctx, ri)
			case "test":
				err = c.TestComms(ctx, ri.Host, ri.Port)
			}
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
				require.ErrorContains(t, err, tc.errText)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.wantOn, on)
		})
	}
}

func TestBadRelayInfoRejectedBeforeQueueing(t *testing.T) {
	c := newClient(t, testConfig(t))
	ctx := context.Background()
	bad := RelayInfo{Host: "127.0.0.1", Port: 1, Bank: 0, Relay: 1}
	require.ErrorIs(t, c.PowerCycle(ctx, bad), ErrBadRelayInfo)
	require.ErrorIs(t, c.SetPower(ctx, bad, true), ErrBadRelayInfo)
	_, err := c.Status(ctx, bad)
	require.ErrorIs(t, err, ErrBadRelayInfo)
	require.ErrorIs(t, c.TestComms(ctx, "", 2101), ErrBadRelayInfo)
	require.ErrorIs(t, c.TestComms(ctx, "h", 0), ErrBadRelayInfo)
	require.False(t, c.q.held(bad.Addr()))
}

// The board sees set off, get, set on, get, with at least
// OffTime (1 s) between off and on.
func TestPowerCycle(t *testing.T) {
	b := newBoard(t, bmmtest.RelayBoardOptions{})
	cfg := testConfig(t)
	cfg.OffTime = time.Second
	c := newClient(t, cfg)

	var mu sync.Mutex
	var powered []bool
	b.OnChange(func(bank, relay int, on bool) {
		mu.Lock()
		defer mu.Unlock()
		powered = append(powered, on)
	})

	require.NoError(t, c.PowerCycle(context.Background(), relayOn(b, 2, 3)))
	require.Equal(t, []string{"set bank2 relay3 on", "get bank2 relay3", "set bank2 relay3 off", "get bank2 relay3"}, b.CommandTexts())
	cmds := b.Commands()
	require.GreaterOrEqual(t, cmds[2].At.Sub(cmds[0].At), time.Second, "device off for at least 1 s")
	require.True(t, b.DevicePowered(2, 3))
	require.Len(t, b.Connections(), 1, "one connection")
	mu.Lock()
	require.Equal(t, []bool{false, true}, powered)
	mu.Unlock()
}

// Power-off sends FE (107+R) B and leaves the device
// unpowered; power-on brings it back.
func TestSetPowerAndStatus(t *testing.T) {
	b := newBoard(t, bmmtest.RelayBoardOptions{})
	c := newClient(t, testConfig(t))
	ctx := context.Background()
	ri := relayOn(b, 4, 8)

	on, err := c.Status(ctx, ri)
	require.NoError(t, err)
	require.True(t, on, "devices start powered")

	require.NoError(t, c.SetPower(ctx, ri, false))
	require.False(t, b.DevicePowered(4, 8))
	require.True(t, b.Relay(4, 8))
	on, err = c.Status(ctx, ri)
	require.NoError(t, err)
	require.False(t, on)

	require.NoError(t, c.SetPower(ctx, ri, true))
	require.True(t, b.DevicePowered(4, 8))
	on, err = c.Status(ctx, ri)
	require.NoError(t, err)
	require.True(t, on)

	require.Equal(t, []string{"get bank4 relay8", "set bank4 relay8 on", "get bank4 relay8", "set bank4 relay8 off", "get bank4 relay8"}, b.CommandTexts())
}

// testWait bounds how long a test waits for an operation that should end
// soon; the slow alternatives the tests tell apart take a minute or more.
const testWait = 20 * time.Second

// within runs op and returns its error, failing the test, with why, if op
// has not returned within testWait.
func within(t *testing.T, why string, op func() error) error {
	t.Helper()
	return testwait.Within(t, testWait, why, op)
}

// The comms test passes against a working board and fails
// against a refusing, a slow or a failing one, each with its own error,
// within its deadline. The slow board takes an hour over each byte, so
// TestComms must give up at CommsTimeout with ErrTimeout rather than wait
// for it; the others have a CommsTimeout of a minute, so they must fail at
// once rather than at the deadline. Either way the call must return within
// testWait.
func TestTestComms(t *testing.T) {
	cases := []struct {
		name     string
		opts     bmmtest.RelayBoardOptions
		deadline time.Duration
		wantErr  error
	}{
		{name: "working board", opts: bmmtest.RelayBoardOptions{}, deadline: time.Minute},
		{name: "refusing board", opts: bmmtest.RelayBoardOptions{Refuse: true}, deadline: time.Minute, wantErr: ErrRefused},
		{name: "slow board", opts: bmmtest.RelayBoardOptions{ByteDelay: time.Hour}, deadline: 300 * time.Millisecond, wantErr: ErrTimeout},
		{name: "failing board", opts: bmmtest.RelayBoardOptions{FailFirst: 1}, deadline: time.Minute, wantErr: ErrBadReply},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := newBoard(t, tc.opts)
			cfg := testConfig(t)
			cfg.CommsTimeout = tc.deadline
			c := newClient(t, cfg)

			err := within(t, "TestComms did not give up within its deadline", func() error {
				return c.TestComms(context.Background(), b.Host(), b.Port())
			})
			if tc.wantErr == nil {
				require.NoError(t, err)
				require.Equal(t, []string{"test"}, b.CommandTexts())
				return
			}
			require.ErrorIs(t, err, tc.wantErr)
		})
	}
}

func TestFailFirstThenRetry(t *testing.T) {
	b := newBoard(t, bmmtest.RelayBoardOptions{FailFirst: 1})
	c := newClient(t, testConfig(t))
	ri := relayOn(b, 1, 5)
	require.ErrorIs(t, c.PowerCycle(context.Background(), ri), ErrBadReply)
	require.NoError(t, c.PowerCycle(context.Background(), ri))
	require.True(t, b.DevicePowered(1, 5))
}

func TestCallerCancelDuringOperation(t *testing.T) {
	b := newBoard(t, bmmtest.RelayBoardOptions{ByteDelay: time.Hour})
	c := newClient(t, testConfig(t))
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	// Exits when the operation gives up after the cancel.
	go func() { errc <- c.SetPower(ctx, relayOn(b, 1, 1), false) }()
	require.Eventually(t, func() bool { return len(b.Connections()) == 1 }, 5*time.Second, time.Millisecond)
	cancel()
	select {
	case err := <-errc:
		require.ErrorIs(t, err, context.Canceled)
		require.NotErrorIs(t, err, ErrTimeout)
	case <-time.After(5 * time.Second):
		t.Fatal("operation did not notice its ctx was cancelled")
	}
}

// TestOpTimeoutDuringPowerCycleWait proves that OpTimeout, counted from the
// start of the operation, also bounds the wait with the device off. The
// board pauses 100 ms before each byte it reads, so the first set and get
// take at least 600 ms, and the 1.9 s off time cannot end before the 2 s
// OpTimeout has passed; 1.4 s are left for the set and get themselves.
func TestOpTimeoutDuringPowerCycleWait(t *testing.T) {
	b := newBoard(t, bmmtest.RelayBoardOptions{ByteDelay: 100 * time.Millisecond})
	cfg := testConfig(t)
	cfg.OffTime = 1900 * time.Millisecond
	cfg.OpTimeout = 2 * time.Second
	c := newClient(t, cfg)
	err := c.PowerCycle(context.Background(), relayOn(b, 1, 1))
	require.ErrorIs(t, err, ErrTimeout)
	require.ErrorContains(t, err, "wait with the device off")
	require.Equal(t, []string{"set bank1 relay1 on", "get bank1 relay1"}, b.CommandTexts())
}

// recordingDialer records when each connection opened and closed and how
// many were open at once.
type recordingDialer struct {
	d net.Dialer

	mu      sync.Mutex
	open    int
	maxOpen int
	spans   []span
}

type span struct{ opened, closed time.Time }

func (r *recordingDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	r.mu.Lock()
	r.open++
	r.maxOpen = max(r.maxOpen, r.open)
	r.spans = append(r.spans, span{opened: time.Now()})
	i := len(r.spans) - 1
	r.mu.Unlock()
	conn, err := r.d.DialContext(ctx, network, addr)
	if err != nil {
		r.closed(i)
		return nil, err
	}
	return &recordedConn{Conn: conn, close: func() { r.closed(i) }}, nil
}

func (r *recordingDialer) closed(i int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.open--
	r.spans[i].closed = time.Now()
}

func (r *recordingDialer) snapshot() (maxOpen int, spans []span) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.maxOpen, append([]span(nil), r.spans...)
}

type recordedConn struct {
	net.Conn
	once  sync.Once
	close func()
}

func (c *recordedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.close)
	return err
}

// startQueued starts n operations on one board, each only once the ones
// before it hold or wait for the board, so their arrival order is 0..n-1.
// It returns their errors (in start order) and their completion times.
func startQueued(t *testing.T, c *Client, addr string, n int, op func(i int) error) (errs []error, done []time.Time) {
	t.Helper()
	errs = make([]error, n)
	done = make([]time.Time, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		// Exits when its operation returns.
		go func() {
			defer wg.Done()
			errs[i] = op(i)
			done[i] = time.Now()
		}()
		if i == 0 {
			require.Eventually(t, func() bool { return c.q.held(addr) }, 5*time.Second, time.Millisecond)
		} else {
			require.Eventually(t, func() bool { return c.q.waiting(addr) == i }, 5*time.Second, time.Millisecond)
		}
	}
	wg.Wait()
	return errs, done
}

// Five simultaneous power-cycles on one board run one at a
// time, in arrival order, each connection at least Recovery after the last
// closed, and none fails (no connection is refused).
func TestConcurrentPowerCyclesAreSerialised(t *testing.T) {
	const recovery = 100 * time.Millisecond
	b := newBoard(t, bmmtest.RelayBoardOptions{Recovery: recovery})
	rd := &recordingDialer{}
	cfg := testConfig(t)
	cfg.Dialer = rd
	cfg.Recovery = recovery
	cfg.OffTime = 50 * time.Millisecond
	c := newClient(t, cfg)

	const n = 5
	errs, _ := startQueued(t, c, relayOn(b, 1, 1).Addr(), n, func(i int) error {
		return c.PowerCycle(context.Background(), relayOn(b, 1, i+1))
	})
	for i, err := range errs {
		require.NoError(t, err, "power-cycle %d", i)
	}

	var want []string
	for i := range n {
		r := relayOn(b, 1, i+1)
		want = append(want,
			fmt.Sprintf("set bank1 relay%d on", r.Relay), fmt.Sprintf("get bank1 relay%d", r.Relay),
			fmt.Sprintf("set bank1 relay%d off", r.Relay), fmt.Sprintf("get bank1 relay%d", r.Relay))
	}
	require.Equal(t, want, b.CommandTexts(), "one cycle after another, in arrival order")

	maxOpen, spans := rd.snapshot()
	require.Equal(t, 1, maxOpen, "never two connections at once")
	require.Len(t, spans, n)
	for i := 1; i < n; i++ {
		gap := spans[i].opened.Sub(spans[i-1].closed)
		require.GreaterOrEqual(t, gap, recovery, "connection %d opened %s after %d closed", i, gap, i-1)
	}
	require.Len(t, b.Connections(), n)
	for _, cmd := range b.Commands() {
		require.False(t, cmd.Failed, cmd.String())
	}
}

// The deadline starts when an operation leaves the queue: behind a long
// queue, an operation whose own timeout is shorter than its wait still
// succeeds. (Mozpool started the clock before the wait, so the last ones
// would have timed out.) The last of six operations waits out five
// recovery pauses, 2 s, longer than its 1 s OpTimeout; each operation has
// that second for its own exchange.
func TestDeadlineStartsAtDequeue(t *testing.T) {
	const (
		recovery  = 400 * time.Millisecond
		opTimeout = time.Second
		n         = 6
	)
	b := newBoard(t, bmmtest.RelayBoardOptions{})
	cfg := testConfig(t)
	cfg.Recovery = recovery
	cfg.OpTimeout = opTimeout
	cfg.OffTime = 0
	c := newClient(t, cfg)

	start := time.Now()
	errs, done := startQueued(t, c, relayOn(b, 1, 1).Addr(), n, func(i int) error {
		return c.SetPower(context.Background(), relayOn(b, 2, i+1), false)
	})
	for i, err := range errs {
		require.NoError(t, err, "operation %d", i)
	}
	require.Greater(t, done[n-1].Sub(start), opTimeout+recovery, "the last operation waited longer than its own timeout")
	for i := range n {
		require.False(t, b.DevicePowered(2, i+1))
	}
}

func TestCancelWhileQueued(t *testing.T) {
	b := newBoard(t, bmmtest.RelayBoardOptions{})
	cfg := testConfig(t)
	cfg.Recovery = time.Hour // the board stays reserved after the first op
	c := newClient(t, cfg)
	ri := relayOn(b, 1, 1)
	require.NoError(t, c.SetPower(context.Background(), ri, false))
	require.True(t, c.q.held(ri.Addr()), "reserved for the recovery pause")

	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	// Exits when its ctx is cancelled.
	go func() { errc <- c.SetPower(ctx, ri, true) }()
	require.Eventually(t, func() bool { return c.q.waiting(ri.Addr()) == 1 }, 5*time.Second, time.Millisecond)
	cancel()
	select {
	case err := <-errc:
		require.ErrorIs(t, err, context.Canceled)
		require.ErrorContains(t, err, "wait for board")
	case <-time.After(5 * time.Second):
		t.Fatal("a queued operation did not return when its ctx was cancelled")
	}
	require.Equal(t, 0, c.q.waiting(ri.Addr()))
	require.Equal(t, []string{"set bank1 relay1 on"}, b.CommandTexts(), "the cancelled operation never reached the board")

	// A caller deadline while queued is the caller's, not ErrTimeout.
	ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := c.SetPower(ctx, ri, true)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.NotErrorIs(t, err, ErrTimeout)
}

func TestRecoveryKeepsBoardReservedAfterFailure(t *testing.T) {
	// A refused connection still reserves the board; the next operation
	// waits out the recovery pause.
	// The dialer's record is taken before the pause starts and after it
	// ends, so the gap it shows is at least the pause.
	b := newBoard(t, bmmtest.RelayBoardOptions{Refuse: true})
	const recovery = 100 * time.Millisecond
	rd := &recordingDialer{}
	cfg := testConfig(t)
	cfg.Dialer = rd
	cfg.Recovery = recovery
	c := newClient(t, cfg)
	ri := relayOn(b, 1, 1)

	require.ErrorIs(t, c.SetPower(context.Background(), ri, false), ErrRefused)
	require.NoError(t, b.SetRefuse(false))
	require.NoError(t, c.SetPower(context.Background(), ri, false))
	_, spans := rd.snapshot()
	require.Len(t, spans, 2)
	require.GreaterOrEqual(t, spans[1].opened.Sub(spans[0].closed), recovery, "the second connection waited out the pause")
	require.Eventually(t, func() bool { return !c.q.held(ri.Addr()) }, 5*time.Second, 5*time.Millisecond,
		"released after the pause with nobody waiting")
}

func TestRefusedIsNotTimeout(t *testing.T) {
	b := newBoard(t, bmmtest.RelayBoardOptions{Refuse: true})
	c := newClient(t, testConfig(t))
	err := c.PowerCycle(context.Background(), relayOn(b, 1, 1))
	require.ErrorIs(t, err, ErrRefused)
	require.NotErrorIs(t, err, ErrTimeout)
	var opErr *net.OpError
	require.True(t, errors.As(err, &opErr), "the net error is kept: %v", err)
}

// BenchmarkStatus reports the round trip of a Status against the fake board
// on loopback, with no recovery pause: connect, one command, one reply.
func BenchmarkStatus(b *testing.B) {
	board, err := bmmtest.NewRelayBoard(bmmtest.RelayBoardOptions{Recovery: -1})
	require.NoError(b, err)
	b.Cleanup(func() { board.Close() })
	cfg := DefaultConfig()
	cfg.Recovery = 0
	c, err := New(cfg)
	require.NoError(b, err)
	ri := relayOn(board, 1, 1)
	ctx := context.Background()
	for b.Loop() {
		if _, err := c.Status(ctx, ri); err != nil {
			b.Fatal(err)
		}
	}
}
