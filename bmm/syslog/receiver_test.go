package syslog

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/fsm"
	"github.com/mozpool/mozpool/internal/testlog"
)

const (
	testWait = 5 * time.Second
	testPoll = 5 * time.Millisecond

	// receiptSlack is how far from the test's clock an entry stamped on
	// receipt may be: far more than any machine takes between the receipt
	// and the check, far less than the distance to a board's stale
	// timestamp or a zero one.
	receiptSlack = time.Minute

	// testServer is the imaging server the receiver under test belongs to.
	testServer = "mobile-imaging-001"
)

// lab is a real FSM with a small inventory and a Propose that applies to it
// directly, recording the log entries the FSM hands to Notify.
//
//   - panda-0001 (this server) has ip_address 127.0.0.1, the tests' sender;
//   - panda-0002 (this server) has none and is found by its hostname;
//   - panda-0003 (another server) is found by its hostname;
//   - panda-0004 (another server) has ip_address 127.0.0.2.
type lab struct {
	f *fsm.FSM

	mu        sync.Mutex // serialises proposals, like the Raft log
	index     uint64
	proposals int   // LogAppend proposals applied
	fail      error // returned by Propose when set

	logMu sync.Mutex
	logs  []fsm.LogEntry

	inv fsm.Inventory // as synced
}

func newLab(t testing.TB) *lab {
	t.Helper()
	l := &lab{}
	l.f = fsm.New(fsm.Config{Logger: testlog.New(t), Notify: func(n fsm.Notification) {
		l.logMu.Lock()
		defer l.logMu.Unlock()
		l.logs = append(l.logs, n.Logs...)
	}})
	inv := fsm.Inventory{
		ImagingServers: []fsm.InventoryServer{{Name: testServer, Rack: "rack-1"}, {Name: "mobile-imaging-002", Rack: "rack-2"}},
		HardwareTypes:  []fsm.InventoryHardwareType{{Type: "panda", Model: "ES Rev B2"}},
	}
	for i, ip := range []string{"127.0.0.1", "", "", "127.0.0.2"} {
		inv.Devices = append(inv.Devices, fsm.InventoryDevice{
			Name: fmt.Sprintf("panda-%04d", i+1), FQDN: fmt.Sprintf("panda-%04d.lab", i+1), InventoryID: int64(101 + i),
			MAC: fmt.Sprintf("00:11:22:33:44:%02x", i+1), ImagingServer: fmt.Sprintf("mobile-imaging-%03d", 1+i/2),
			RelayInfo: fmt.Sprintf("relay-%d.lab:bank1:relay%d", 1+i/2, 1+i%2), HardwareType: "panda", HardwareModel: "ES Rev B2",
			IPAddress: ip,
		})
	}
	l.sync(t, inv)
	return l
}

// sync applies inv as the inventory.
func (l *lab) sync(t testing.TB, inv fsm.Inventory) {
	t.Helper()
	res, err := l.propose(context.Background(), fsm.CmdInventorySync, &fsm.InventorySync{Inventory: inv, ShipIt: true})
	require.NoError(t, err)
	require.NoError(t, res.Error())
	l.inv = inv
}

// propose stands in for cluster.Node.Apply.
func (l *lab) propose(ctx context.Context, typ fsm.CommandType, cmd fsm.Command) (fsm.Result, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fail != nil {
		return fsm.Result{}, l.fail
	}
	if err := ctx.Err(); err != nil {
		return fsm.Result{}, err
	}
	if h := cmd.Head(); h.At.IsZero() {
		h.At = time.Now().UTC()
	}
	b, err := fsm.Encode(typ, cmd)
	if err != nil {
		return fsm.Result{}, err
	}
	l.index++
	if typ == fsm.CmdLogAppend {
		l.proposals++
	}
	return l.f.ApplyCommand(l.index, b), nil
}

func (l *lab) setFail(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.fail = err
}

func (l *lab) logAppends() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.proposals
}

// entries returns the log entries filed with source "device" (the
// inventory sync files its own).
func (l *lab) entries() []fsm.LogEntry {
	l.logMu.Lock()
	defer l.logMu.Unlock()
	var out []fsm.LogEntry
	for _, e := range l.logs {
		if e.Source == Source {
			out = append(out, e)
		}
	}
	return out
}

// testConfig returns a config for a receiver of testServer on a loopback
// port; edit may change it.
func testConfig(t testing.TB, l *lab) Config {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Addr, cfg.Server, cfg.FSM, cfg.Propose = "127.0.0.1:0", testServer, l.f, l.propose
	cfg.FlushInterval, cfg.Logger = 20*time.Millisecond, testlog.New(t)
	return cfg
}

// startReceiver starts a receiver and shuts it down when the test ends.
func startReceiver(t *testing.T, cfg Config) *Receiver {
	t.Helper()
	r, err := New(cfg)
	require.NoError(t, err)
	require.NoError(t, r.Start())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testWait)
		defer cancel()
		require.NoError(t, r.Shutdown(ctx))
	})
	return r
}

// sender returns a UDP socket from local (e.g. "127.0.0.1") to r.
func sender(t *testing.T, r *Receiver, local string) *net.UDPConn {
	t.Helper()
	laddr := &net.UDPAddr{IP: net.ParseIP(local)}
	c, err := net.DialUDP("udp", laddr, r.Addr().(*net.UDPAddr))
	if err != nil && local != "127.0.0.1" {
		t.Skipf("cannot send from %s on this system: %v", local, err)
	}
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

func send(t *testing.T, c *net.UDPConn, msgs ...string) {
	t.Helper()
	for _, m := range msgs {
		_, err := c.Write([]byte(m))
		require.NoError(t, err)
	}
}

// waitStats waits until the receiver's counters satisfy cond.
func waitStats(t *testing.T, r *Receiver, cond func(Stats) bool, msg string) {
	t.Helper()
	require.Eventually(t, func() bool { return cond(r.Stats()) }, testWait, testPoll, "%s; stats %+v", msg, r.Stats())
}

func TestReceiver_FilesBothFormats(t *testing.T) {
	l := newLab(t)
	r := startReceiver(t, testConfig(t, l))
	own := sender(t, r, "127.0.0.1")       // panda-0001's address
	elsewhere := sender(t, r, "127.0.0.3") // no device's address

	now := time.Now().UTC()
	stamp3164 := now.Add(-3 * time.Second).Truncate(time.Second)
	stamp5424 := now.Add(-2 * time.Second).Truncate(time.Millisecond)
	// Found by address.
	send(t, own, fmt.Sprintf("<134>%s panda-0001 kernel: [   1.234] mmc0: new SD card\n", stamp3164.Format(time.Stamp)))
	waitStats(t, r, func(s Stats) bool { return s.Filed == 1 }, "first message filed")
	// Found by hostname: panda-0002 has no address; the fqdn and the
	// name (in any case) both work.
	send(t, elsewhere,
		fmt.Sprintf("<134>1 %s panda-0002.lab sutagent 42 - - agent up", stamp5424.Format(time.RFC3339Nano)),
		"<134>1 - PANDA-0002 b2g - - - no timestamp",
	)
	waitStats(t, r, func(s Stats) bool { return s.Filed == 3 }, "three messages filed")
	// The address wins over the hostname: 127.0.0.1 is panda-0001 even
	// though this message names panda-0002.
	send(t, own, "<134>1 - panda-0002 app - - - from panda-0001's address")
	waitStats(t, r, func(s Stats) bool { return s.Filed == 4 }, "fourth message filed")

	got := l.entries()
	require.Len(t, got, 4)
	for _, e := range got {
		require.Equal(t, fsm.LogDevice, e.Kind, "entry %+v kind", e)
		require.Equal(t, "device", e.Source, "entry %+v source", e)
		require.Equal(t, time.UTC, e.At.Location(), "entry %+v time zone", e)
	}
	require.Equal(t, "panda-0001", got[0].Name)
	require.Equal(t, "kernel: [   1.234] mmc0: new SD card", got[0].Message)
	require.True(t, got[0].At.Equal(stamp3164), "rfc3164 entry at %s, want the board's %s", got[0].At, stamp3164)

	require.Equal(t, "panda-0002", got[1].Name)
	require.Equal(t, "sutagent[42]: agent up", got[1].Message)
	require.True(t, got[1].At.Equal(stamp5424), "rfc5424 entry at %s, want the board's %s", got[1].At, stamp5424)

	require.Equal(t, "panda-0002", got[2].Name)
	require.Equal(t, "b2g: no timestamp", got[2].Message)
	require.WithinDuration(t, time.Now(), got[2].At, receiptSlack, "an entry without a timestamp is stamped on receipt")

	require.Equal(t, "panda-0001", got[3].Name)
	require.Equal(t, "app: from panda-0001's address", got[3].Message)

	require.Equal(t, Stats{Received: 4, Filed: 4}, r.Stats())
}

// TestReceiver_Lookup checks how a sender is matched to a board, calling
// the handler directly so that any sender address can be used.
func TestReceiver_Lookup(t *testing.T) {
	l := newLab(t)
	r, err := New(testConfig(t, l))
	require.NoError(t, err)
	now := time.Now()
	tests := []struct {
		name     string
		from     string
		hostname string
		want     string // "" for dropped
	}{
		{"address", "127.0.0.1", "-", "panda-0001"},
		{"address as IPv4-mapped IPv6", "::ffff:127.0.0.1", "-", "panda-0001"},
		{"address wins over hostname", "127.0.0.1", "panda-0002", "panda-0001"},
		{"name", "10.0.0.9", "panda-0002", "panda-0002"},
		{"fqdn with a trailing dot", "10.0.0.9", "panda-0002.lab.", "panda-0002"},
		{"name in another case", "10.0.0.9", "Panda-0002", "panda-0002"},
		{"hostname is the device address", "10.0.0.9", "127.0.0.1", "panda-0001"},
		{"another server's board by name", "10.0.0.9", "panda-0003", ""},
		{"another server's board by address", "127.0.0.2", "panda-0002", ""},
		{"unknown", "10.0.0.9", "laptop", ""},
		{"no hostname", "10.0.0.9", "-", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := r.Stats()
			r.handle([]byte("<134>1 - "+tc.hostname+" app - - - hi"), netip.MustParseAddr(tc.from), now)
			after := r.Stats()
			if tc.want == "" {
				require.Equal(t, before.UnknownSender+1, after.UnknownSender, "handle from %s as %s: want dropped", tc.from, tc.hostname)
				require.Empty(t, r.queue, "nothing queued")
				return
			}
			require.Len(t, r.queue, 1, "handle from %s as %s: want one entry queued", tc.from, tc.hostname)
			e := <-r.queue
			require.Equal(t, tc.want, e.Name, "handle from %s as %s", tc.from, tc.hostname)
		})
	}
}

// TestReceiver_LookupFollowsInventory checks that lines are filed by the
// inventory as it is now, not as it was when the receiver last looked a
// sender up: a board given a new address is found there, and nothing
// more is filed from its old one.
func TestReceiver_LookupFollowsInventory(t *testing.T) {
	l := newLab(t)
	r, err := New(testConfig(t, l))
	require.NoError(t, err)
	lookup := func(from, hostname string) string {
		device, _ := r.lookup(netip.MustParseAddr(from), hostname)
		return device
	}
	require.Equal(t, "panda-0001", lookup("127.0.0.1", "-"))
	require.Equal(t, "", lookup("127.0.0.3", "-"))

	inv := l.inv
	inv.Devices = slices.Clone(inv.Devices)
	inv.Devices[0].IPAddress = "127.0.0.3"
	inv.Devices[1].FQDN = "renamed.lab"
	l.sync(t, inv)
	require.Equal(t, "panda-0001", lookup("127.0.0.3", "-"), "the new address")
	require.Equal(t, "", lookup("127.0.0.1", "-"), "the old address")
	require.Equal(t, "panda-0002", lookup("10.0.0.9", "renamed.lab"), "the new fqdn")
	require.Equal(t, "", lookup("10.0.0.9", "panda-0002.lab"), "the old fqdn")
}

func TestReceiver_FarTimestampFallsBackToReceiveTime(t *testing.T) {
	l := newLab(t)
	r := startReceiver(t, testConfig(t, l))
	c := sender(t, r, "127.0.0.1")

	before := time.Now().UTC()
	send(t, c,
		"<134>1 2001-01-01T00:00:00Z panda-0001 app - - - board clock never set",
		fmt.Sprintf("<134>1 %s panda-0001 app - - - board clock ahead", before.Add(49*time.Hour).Format(time.RFC3339)),
	)
	waitStats(t, r, func(s Stats) bool { return s.Filed == 2 }, "two messages filed")
	for _, e := range l.entries() {
		require.False(t, e.At.Before(before.Truncate(time.Second)), "entry %q at %s, want the receive time (after %s)", e.Message, e.At, before)
		require.WithinDuration(t, time.Now(), e.At, receiptSlack, "entry %q", e.Message)
	}
}

func TestReceiver_DropsOtherSenders(t *testing.T) {
	l := newLab(t)
	r := startReceiver(t, testConfig(t, l))

	// From an address no device has: an unknown hostname, and a board of
	// another imaging server found by hostname.
	stranger := sender(t, r, "127.0.0.3")
	send(t, stranger,
		"<134>1 - laptop app - - - who am i",
		"<134>Mar  1 11:59:58 panda-0003 kernel: I belong to mobile-imaging-002",
	)
	waitStats(t, r, func(s Stats) bool { return s.UnknownSender == 2 }, "two unknown senders")

	// From another server's board's address, claiming to be ours.
	other := sender(t, r, "127.0.0.2")
	send(t, other, "<134>1 - panda-0002 app - - - spoofed name")
	waitStats(t, r, func(s Stats) bool { return s.UnknownSender == 3 }, "address of another server's board")

	// A name that matches this server's board is still filed from an
	// unknown address.
	send(t, stranger, "<134>1 - panda-0002.lab app - - - relayed")
	waitStats(t, r, func(s Stats) bool { return s.Filed == 1 }, "hostname match filed")

	got := l.entries()
	require.Len(t, got, 1)
	require.Equal(t, "panda-0002", got[0].Name)
	require.Equal(t, Stats{Received: 4, Filed: 1, UnknownSender: 3}, r.Stats())
}

func TestReceiver_Malformed(t *testing.T) {
	l := newLab(t)
	r := startReceiver(t, testConfig(t, l))
	c := sender(t, r, "127.0.0.1")

	send(t, c, "not syslog at all", "<999>x", "\x00\x01\x02\xff", "<134>", "<<<>>>")
	waitStats(t, r, func(s Stats) bool { return s.Malformed == 5 }, "five malformed datagrams")
	// The receiver still works.
	send(t, c, "<134>1 - - app - - - still here")
	waitStats(t, r, func(s Stats) bool { return s.Filed == 1 }, "a good message after bad ones")
	require.Equal(t, Stats{Received: 6, Filed: 1, Malformed: 5}, r.Stats())
	require.Len(t, l.entries(), 1)
}

// TestReceiver_Batches proves that messages are filed in batches of
// MaxBatch, in their order, rather than one proposal each. FlushInterval is
// an hour, so only a full batch is filed before Shutdown, whatever the
// machine's speed: 120 messages make two batches of 50, and Shutdown files
// the other 20 as a third.
func TestReceiver_Batches(t *testing.T) {
	l := newLab(t)
	cfg := testConfig(t, l)
	cfg.FlushInterval, cfg.MaxBatch = time.Hour, 50
	r := startReceiver(t, cfg)
	c := sender(t, r, "127.0.0.1")

	const n = 120
	for i := range n {
		send(t, c, fmt.Sprintf("<134>1 - panda-0001 app - - - line %d", i))
	}
	waitStats(t, r, func(s Stats) bool { return s.Received == n && s.Filed == 100 }, "two full batches filed")
	require.Equal(t, 2, l.logAppends(), "LogAppend proposals for two full batches")

	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	require.NoError(t, r.Shutdown(ctx))
	require.Equal(t, Stats{Received: n, Filed: n}, r.Stats())
	require.Equal(t, 3, l.logAppends(), "Shutdown files the partial batch")
	got := l.entries()
	require.Len(t, got, n)
	for i, e := range got {
		require.Equal(t, fmt.Sprintf("app: line %d", i), e.Message, "entries keep their order")
	}
}

func TestReceiver_ShutdownFlushes(t *testing.T) {
	l := newLab(t)
	cfg := testConfig(t, l)
	cfg.FlushInterval = time.Hour // only Shutdown will flush
	r, err := New(cfg)
	require.NoError(t, err)
	require.NoError(t, r.Start())
	c := sender(t, r, "127.0.0.1")

	send(t, c, "<134>1 - - app - - - one", "<134>1 - - app - - - two")
	waitStats(t, r, func(s Stats) bool { return s.Received == 2 }, "two messages received")
	require.Zero(t, l.logAppends(), "nothing is proposed before the interval")

	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	require.NoError(t, r.Shutdown(ctx))
	require.NoError(t, r.Shutdown(ctx), "Shutdown is idempotent")
	require.Equal(t, 1, l.logAppends(), "one LogAppend for the queued messages")
	require.Len(t, l.entries(), 2)
	require.Equal(t, uint64(2), r.Stats().Filed)
	require.ErrorIs(t, r.Start(), ErrClosed)
}

func TestReceiver_FailedProposalIsDropped(t *testing.T) {
	l := newLab(t)
	r := startReceiver(t, testConfig(t, l))
	c := sender(t, r, "127.0.0.1")

	l.setFail(errors.New("no leader"))
	send(t, c, "<134>1 - - app - - - lost")
	waitStats(t, r, func(s Stats) bool { return s.Dropped == 1 }, "the failed batch is dropped")

	l.setFail(nil)
	send(t, c, "<134>1 - - app - - - filed")
	waitStats(t, r, func(s Stats) bool { return s.Filed == 1 }, "later messages are filed")
	require.Len(t, l.entries(), 1)
	require.Equal(t, "app: filed", l.entries()[0].Message)
}

func TestReceiver_FullQueueDropsWithoutBlocking(t *testing.T) {
	l := newLab(t)
	cfg := testConfig(t, l)
	cfg.QueueSize, cfg.MaxBatch = 4, 1
	r := startReceiver(t, cfg)
	c := sender(t, r, "127.0.0.1")

	// Hold the proposal lock so the flusher blocks in its first proposal.
	l.mu.Lock()
	const n = 20
	for i := range n {
		send(t, c, fmt.Sprintf("<134>1 - - app - - - %d", i))
	}
	// The reader keeps reading while the flusher is stuck.
	waitStats(t, r, func(s Stats) bool { return s.Received == n }, "every datagram read")
	l.mu.Unlock()
	waitStats(t, r, func(s Stats) bool { return s.Filed+s.Dropped == n }, "every message filed or dropped")
	s := r.Stats()
	require.NotZero(t, s.Dropped, "a full queue drops")
	require.LessOrEqual(t, s.Filed, uint64(cfg.QueueSize+1), "at most the queue and the batch in flight are filed")
}

func TestReceiver_ShutdownDeadline(t *testing.T) {
	l := newLab(t)
	cfg := testConfig(t, l)
	cfg.FlushInterval = time.Hour
	r, err := New(cfg)
	require.NoError(t, err)
	require.NoError(t, r.Start())
	c := sender(t, r, "127.0.0.1")
	send(t, c, "<134>1 - - app - - - queued")
	waitStats(t, r, func(s Stats) bool { return s.Received == 1 }, "message received")

	// The flush blocks on the lock; Shutdown gives up at its deadline and
	// the batch is dropped once the proposal can see it was cancelled.
	l.mu.Lock()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, r.Shutdown(ctx), context.DeadlineExceeded)
	l.mu.Unlock()
	waitStats(t, r, func(s Stats) bool { return s.Dropped == 1 }, "the batch is dropped")
	require.Zero(t, r.Stats().Filed)
}

func TestReceiver_Run(t *testing.T) {
	l := newLab(t)
	r, err := New(testConfig(t, l))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	errCh := make(chan error, 1)
	// Exits when cancel ends Run.
	go func() { errCh <- r.Run(ctx) }()
	require.Eventually(t, func() bool { return r.Addr() != nil }, testWait, testPoll, "listening")
	send(t, sender(t, r, "127.0.0.1"), "<134>1 - - app - - - via Run")
	waitStats(t, r, func(s Stats) bool { return s.Filed == 1 }, "filed")
	cancel()
	select {
	case err := <-errCh:
		require.NoError(t, err)
	case <-time.After(testWait):
		t.Fatal("Run did not return after its context ended")
	}
}

func TestReceiver_StartTwice(t *testing.T) {
	l := newLab(t)
	r := startReceiver(t, testConfig(t, l))
	require.ErrorIs(t, r.Start(), ErrStarted)
}

func TestReceiver_ShutdownBeforeStart(t *testing.T) {
	l := newLab(t)
	r, err := New(testConfig(t, l))
	require.NoError(t, err)
	require.NoError(t, r.Shutdown(context.Background()))
	require.Nil(t, r.Addr())
	require.ErrorIs(t, r.Start(), ErrClosed)
}

func TestConfig_Validate(t *testing.T) {
	l := newLab(t)
	tests := []struct {
		name string
		edit func(*Config)
	}{
		{"no server", func(c *Config) { c.Server = "" }},
		{"no fsm", func(c *Config) { c.FSM = nil }},
		{"no propose", func(c *Config) { c.Propose = nil }},
		{"negative interval", func(c *Config) { c.FlushInterval = -time.Second }},
		{"negative batch", func(c *Config) { c.MaxBatch = -1 }},
		{"queue smaller than a batch", func(c *Config) { c.QueueSize, c.MaxBatch = 10, 20 }},
		{"tiny message cap", func(c *Config) { c.MaxMessage = 3 }},
		{"negative propose timeout", func(c *Config) { c.ProposeTimeout = -time.Second }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t, l)
			tc.edit(&cfg)
			_, err := New(cfg)
			require.Error(t, err, "New with %s", tc.name)
		})
	}
	cfg := Config{Server: testServer, FSM: l.f, Propose: l.propose}
	r, err := New(cfg)
	require.NoError(t, err, "zero fields take their defaults")
	require.Equal(t, ":514", r.cfg.Addr)
	require.Equal(t, 500*time.Millisecond, r.cfg.FlushInterval)
	require.Equal(t, 256, r.cfg.MaxBatch)
}
