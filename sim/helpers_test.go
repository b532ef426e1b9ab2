package sim_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pin/tftp/v3"
	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/bmm/relay"
	"github.com/mozpool/mozpool/fsm"
	"github.com/mozpool/mozpool/internal/testlog"
	"github.com/mozpool/mozpool/sim"
)

const (
	testWait = 10 * time.Second
	testPoll = 5 * time.Millisecond
	server   = "img1"
)

// PXE file contents naming each second stage the way Mozpool's configs do.
const (
	pxeB2G         = "default linux\nlabel linux\n  append ip=dhcp mobile-imaging-url=http://127.0.0.1/mobile-imaging/b2g-second-stage.sh\n"
	pxeAndroid     = "append mobile-imaging-url=http://127.0.0.1/mobile-imaging/android-second-stage.sh\n"
	pxeSelfTest    = "append mobile-imaging-url=http://127.0.0.1/mobile-imaging/selftest-second-stage.sh\n"
	pxeMaintenance = "append mobile-imaging-url=http://127.0.0.1/mobile-imaging/maintenance-second-stage.sh\n"
)

// subnets is how many 127.X.Y prefixes testSubnet hands out: X in 10..249.
const subnets = 240 * 256

// subnetBase is where this test binary starts handing out prefixes, and
// subnetNext counts the ones handed out.
var (
	subnetBase = rand.IntN(subnets)
	subnetNext atomic.Int64
)

// testSubnet returns a 127.X.Y prefix for one test's boards, so that
// parallel tests give their boards distinct addresses. Within this test
// binary a prefix is never handed out twice (random draws could repeat,
// and two labs on one prefix cannot both bind their boards); the random
// start keeps other test binaries that pick 127.X.Y prefixes (e2e's) out of
// the way.
func testSubnet() string {
	i := (subnetBase + int(subnetNext.Add(1))) % subnets
	return fmt.Sprintf("127.%d.%d", 10+i/256, i%256)
}

// testInventory describes n boards dev1..devN on subnet, each on its own
// relay of one relay board with a free port.
func testInventory(subnet string, n int) fsm.Inventory {
	inv := fsm.Inventory{
		ImagingServers: []fsm.InventoryServer{{Name: server}},
		HardwareTypes:  []fsm.InventoryHardwareType{{Type: "panda", Model: "ES Rev B2"}},
	}
	for i := 1; i <= n; i++ {
		inv.Devices = append(inv.Devices, fsm.InventoryDevice{
			Name: fmt.Sprintf("dev%d", i), FQDN: fmt.Sprintf("dev%d.lab", i), InventoryID: int64(i),
			MAC:           fmt.Sprintf("00:16:3e:00:00:%02x", i),
			ImagingServer: server,
			RelayInfo:     fmt.Sprintf("127.0.0.1:0:bank%d:relay%d", 1+(i-1)/8, 1+(i-1)%8),
			HardwareType:  "panda", HardwareModel: "ES Rev B2",
			IPAddress: fmt.Sprintf("%s.%d", subnet, i),
		})
	}
	return inv
}

// fakeAPI is an imaging server as the boards see it: the cluster status
// (naming a TFTP server and a syslog receiver run by the test), the event
// route and bootconfig.
type fakeAPI struct {
	t      *testing.T
	srv    *httptest.Server
	tftp   string
	dir    string // TFTP root
	syslog *syslogSink

	mu         sync.Mutex
	events     map[string][]string // device -> events, in arrival order
	remotes    map[string][]string // device -> client IPs
	bootConfig map[string]string
	fail       map[string]int // event -> status to answer
	hidden     bool           // the status lists no servers
}

func newFakeAPI(t *testing.T) *fakeAPI {
	t.Helper()
	a := &fakeAPI{
		t: t, dir: t.TempDir(),
		events: map[string][]string{}, remotes: map[string][]string{},
		bootConfig: map[string]string{}, fail: map[string]int{},
	}
	a.tftp = startTFTP(t, a.dir)
	a.syslog = startSyslog(t)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/cluster/status/", func(w http.ResponseWriter, r *http.Request) {
		servers := []map[string]any{{"name": server, "http_addr": a.srv.URL, "tftp_addr": a.tftp, "syslog_addr": a.syslog.addr}}
		a.mu.Lock()
		if a.hidden {
			servers = nil
		}
		a.mu.Unlock()
		json.NewEncoder(w).Encode(map[string]any{"servers": servers})
	})
	mux.HandleFunc("GET /api/device/{dev}/event/{ev}/", func(w http.ResponseWriter, r *http.Request) {
		dev, ev := r.PathValue("dev"), r.PathValue("ev")
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		a.mu.Lock()
		a.events[dev] = append(a.events[dev], ev)
		a.remotes[dev] = append(a.remotes[dev], host)
		status := a.fail[ev]
		a.mu.Unlock()
		if status != 0 {
			http.Error(w, "injected", status)
			return
		}
		io.WriteString(w, "{}")
	})
	mux.HandleFunc("GET /api/device/{dev}/bootconfig/", func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		bc := a.bootConfig[r.PathValue("dev")]
		a.mu.Unlock()
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		io.WriteString(w, bc)
	})
	a.srv = httptest.NewServer(mux)
	t.Cleanup(a.srv.Close)
	return a
}

// startTFTP serves dir read-only over TFTP on a loopback port.
func startTFTP(t *testing.T, dir string) string {
	t.Helper()
	s := tftp.NewServer(func(name string, rf io.ReaderFrom) error {
		clean := filepath.Clean(name)
		if filepath.IsAbs(clean) || strings.HasPrefix(clean, "..") {
			return errors.New("outside the root")
		}
		f, err := os.Open(filepath.Join(dir, clean))
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = rf.ReadFrom(f)
		return err
	}, nil)
	// A generous retransmission timeout: on a loaded machine a short one
	// makes the server give up on a board that is merely slow to ACK.
	s.SetTimeout(2 * time.Second)
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	done := make(chan struct{})
	// Exits when Shutdown closes conn at cleanup.
	go func() {
		defer close(done)
		s.Serve(conn)
	}()
	t.Cleanup(func() {
		s.Shutdown()
		<-done
	})
	return conn.LocalAddr().String()
}

// datagram is one syslog datagram the test's receiver got.
type datagram struct {
	from netip.Addr
	data string
}

// syslogSink is a UDP listener on loopback that keeps every datagram, as
// an imaging server's syslog receiver would get them.
type syslogSink struct {
	addr string
	mu   sync.Mutex
	got  []datagram
}

func startSyslog(t *testing.T) *syslogSink {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	s := &syslogSink{addr: conn.LocalAddr().String()}
	done := make(chan struct{})
	// Exits when the cleanup closes conn.
	go func() {
		defer close(done)
		buf := make([]byte, 65535)
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			s.mu.Lock()
			s.got = append(s.got, datagram{from: from.Addr().Unmap(), data: string(buf[:n])})
			s.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		conn.Close()
		<-done
	})
	return s
}

// datagrams returns what the sink got, oldest first.
func (s *syslogSink) datagrams() []datagram {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.got)
}

// setPXE writes dev's PXE file (as a node's bmm/pxe writer would).
func (a *fakeAPI) setPXE(mac, contents string) {
	a.t.Helper()
	name := "01-" + strings.ReplaceAll(strings.ToLower(mac), ":", "-")
	require.NoError(a.t, os.MkdirAll(filepath.Join(a.dir, "pxelinux.cfg"), 0o755))
	require.NoError(a.t, os.WriteFile(filepath.Join(a.dir, "pxelinux.cfg", name), []byte(contents), 0o644))
}

func (a *fakeAPI) eventsOf(dev string) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.events[dev])
}

func (a *fakeAPI) remotesOf(dev string) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.remotes[dev])
}

func (a *fakeAPI) setBootConfig(dev, bc string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.bootConfig[dev] = bc
}

func (a *fakeAPI) hide(hidden bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.hidden = hidden
}

func (a *fakeAPI) failEvent(ev string, status int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.fail[ev] = status
}

// testConfig is a fast lab: every delay a thousandth, no failures, a
// self-test that always passes, no relay recovery pause. The network
// timeouts are not shortened: a board's first boot network-boots only if
// Start's one discovery of the imaging servers succeeded, and a TFTP fetch
// that times out boots the SD card instead; on a loaded machine a short
// timeout would turn either into a different boot than the test expects.
// (Config.Discovery is also the HTTP timeout of discovery.)
func testConfig(t *testing.T, inv fsm.Inventory, api *fakeAPI) sim.Config {
	cfg := sim.DefaultConfig()
	cfg.Inventory = inv
	cfg.API = []string{api.srv.URL}
	cfg.Discovery = 2 * time.Second
	cfg.TimeScale = 0.001
	cfg.Failures = sim.Failures{SelfTestOK: 1}
	cfg.RelayRecovery = 0
	cfg.TFTPTimeout = 2 * time.Second
	cfg.TFTPRetries = 2
	cfg.HTTPTimeout = 5 * time.Second
	cfg.SDImage = "android"
	cfg.Logger = testlog.New(t)
	return cfg
}

// startLab starts a lab for cfg and shuts it down when the test ends.
func startLab(t *testing.T, cfg sim.Config) *sim.Lab {
	t.Helper()
	l, err := sim.New(cfg)
	require.NoError(t, err)
	require.NoError(t, l.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testWait)
		defer cancel()
		require.NoError(t, l.Shutdown(ctx))
	})
	return l
}

// relayOf returns the (bound) relay of dev in the lab's inventory.
func relayOf(t *testing.T, l *sim.Lab, dev string) relay.RelayInfo {
	t.Helper()
	for _, d := range l.Inventory().Devices {
		if d.Name == dev {
			ri, err := relay.ParseRelayInfo(d.RelayInfo)
			require.NoError(t, err)
			return ri
		}
	}
	t.Fatalf("no device %s", dev)
	return relay.RelayInfo{}
}

// relayClient is the real ProXR client with short timings.
func relayClient(t *testing.T) *relay.Client {
	t.Helper()
	cfg := relay.DefaultConfig()
	cfg.Recovery = 0
	cfg.OffTime = 10 * time.Millisecond
	cfg.OpTimeout = 5 * time.Second
	cfg.Logger = testlog.New(t)
	c, err := relay.New(cfg)
	require.NoError(t, err)
	return c
}

func board(t *testing.T, l *sim.Lab, name string) sim.BoardState {
	t.Helper()
	s := l.Board(name)
	require.Equal(t, name, s.Name, "board %s exists", name)
	return s
}

// waitPhase waits until dev is in phase.
func waitPhase(t *testing.T, l *sim.Lab, dev, phase string) {
	t.Helper()
	require.Eventually(t, func() bool { return board(t, l, dev).Phase == phase },
		testWait, testPoll, "%s never reached %s", dev, phase)
}

// waitEvents waits until the API has received exactly want from dev.
func waitEvents(t *testing.T, api *fakeAPI, dev string, want ...string) {
	t.Helper()
	require.Eventually(t, func() bool { return slices.Equal(api.eventsOf(dev), want) },
		testWait, testPoll, "%s never posted %v", dev, want)
}

// answers reports whether a TCP connection to addr succeeds. Loopback
// refuses a connection to an address nobody listens on at once, so the
// generous timeout only keeps a slow machine from turning "yes" into "no".
func answers(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, testWait)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// testroot asks the SUT agent at addr for its device root.
func testroot(t *testing.T, addr string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, testWait)
	require.NoError(t, err)
	defer c.Close()
	c.SetDeadline(time.Now().Add(testWait))
	r := bufio.NewReader(c)
	readPrompt := func() string {
		s, err := r.ReadString(0)
		require.NoError(t, err)
		return strings.TrimSpace(strings.TrimSuffix(s, "$>\x00"))
	}
	require.Empty(t, readPrompt())
	_, err = io.WriteString(c, "testroot\r\n")
	require.NoError(t, err)
	return readPrompt()
}

func pingAddr(ip string) string { return net.JoinHostPort(ip, "20700") }
func sutAddr(ip string) string  { return net.JoinHostPort(ip, "20701") }
