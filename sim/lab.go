package sim

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mozpool/mozpool/bmm/bmmtest"
	"github.com/mozpool/mozpool/bmm/relay"
	"github.com/mozpool/mozpool/fsm"
)

var (
	// ErrBadInventory is returned by New when a device cannot be simulated:
	// no relay_info or ip_address, a bad MAC, or a relay or address that
	// another device already uses.
	ErrBadInventory = errors.New("inventory cannot be simulated")
	// ErrStarted is returned by Start when the lab was started before.
	ErrStarted = errors.New("lab already started")
	// ErrShutdown is returned by Start after Shutdown.
	ErrShutdown = errors.New("lab is shut down")
	// ErrAddrInUse is returned by Start when a board's ping or SUT agent
	// address is taken, most likely by another lab on the same loopback
	// addresses and ports: such a board could never answer, and the other
	// lab's board would answer for it.
	ErrAddrInUse = errors.New("board address in use")
)

// Lab is a simulated device lab: relay boards and the boards they power.
type Lab struct {
	cfg    Config
	logger hclog.Logger
	// discoveryHC reads the cluster status, keeping its connections (a
	// TLS handshake per look-up would not fit a short Discovery).
	discoveryHC *http.Client

	boards []*board          // sorted by name
	byName map[string]*board // name -> board
	relays []*relayBoard     // sorted by configured address

	// cancel stops every goroutine the lab started; wg tracks them.
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	started  bool
	shutdown bool
	servers  map[string]server // imaging server name -> addresses
	// owners maps a board to the imaging server that acts on it now,
	// when the inventory gives a rack standby servers (followOwners):
	// a board boots from, logs to and asks its rack's owner, as a real
	// one would once its rack's DHCP names the new owner.
	owners       map[string]string
	followOwners bool
	tftpDown     map[string]bool // imaging servers whose TFTP does not serve (FaultyTFTP)
	inv          fsm.Inventory   // with bound relay ports after Start
}

// relayBoard is one simulated ProXR board and the boards it powers.
type relayBoard struct {
	// spec is the board's address as the inventory writes it (port 0
	// means "any"); wired never changes after New.
	spec  string
	wired map[[2]int]*board // (bank, relay) -> board

	// addr (the bound address) and fake are set by Start under Lab.mu.
	addr string
	fake *bmmtest.RelayBoard
}

// New checks cfg and builds the lab without binding anything.
func New(cfg Config) (*Lab, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	l := &Lab{
		discoveryHC: &http.Client{Transport: &http.Transport{TLSClientConfig: cfg.TLS, MaxIdleConnsPerHost: 2}},
		cfg:         cfg,
		logger:      cfg.Logger.Named(loggerName),
		byName:      map[string]*board{},
		inv:         cloneInventory(cfg.Inventory),
	}
	for _, r := range cfg.Inventory.Racks {
		l.followOwners = l.followOwners || len(r.Servers) > 1
	}
	relays := map[string]*relayBoard{}
	ips := map[string]string{}
	for _, d := range cfg.Inventory.Devices {
		ri, err := parseRelayInfo(d.RelayInfo)
		if err != nil {
			return nil, fmt.Errorf("%w: device %q: %v", ErrBadInventory, d.Name, err)
		}
		ip := net.ParseIP(d.IPAddress)
		if ip == nil {
			return nil, fmt.Errorf("%w: device %q needs an ip_address, got %q", ErrBadInventory, d.Name, d.IPAddress)
		}
		if other, dup := ips[ip.String()]; dup {
			return nil, fmt.Errorf("%w: devices %q and %q share ip_address %s", ErrBadInventory, other, d.Name, ip)
		}
		ips[ip.String()] = d.Name
		mac, err := fsm.NormalizeMAC(d.MAC)
		if err != nil {
			return nil, fmt.Errorf("%w: device %q: %v", ErrBadInventory, d.Name, err)
		}
		spec := ri.Addr()
		rb := relays[spec]
		if rb == nil {
			rb = &relayBoard{spec: spec, wired: map[[2]int]*board{}}
			relays[spec] = rb
		}
		wire := [2]int{ri.Bank, ri.Relay}
		if other := rb.wired[wire]; other != nil {
			return nil, fmt.Errorf("%w: devices %q and %q share relay %s bank %d relay %d",
				ErrBadInventory, other.name, d.Name, spec, ri.Bank, ri.Relay)
		}
		b := newBoard(l, d.Name, ip, mac, d.ImagingServer, rb, ri.Bank, ri.Relay)
		rb.wired[wire] = b
		l.boards = append(l.boards, b)
		l.byName[d.Name] = b
	}
	sort.Slice(l.boards, func(i, j int) bool { return l.boards[i].name < l.boards[j].name })
	for _, rb := range relays {
		l.relays = append(l.relays, rb)
	}
	sort.Slice(l.relays, func(i, j int) bool { return l.relays[i].spec < l.relays[j].spec })
	for _, name := range brokenBoards(cfg.Seed, cfg.BrokenFraction, l.boards) {
		l.byName[name].broken = true
	}
	for _, name := range flakyBoards(cfg.Seed, cfg.FlakyFraction, l.boards) {
		l.byName[name].flaky = true
	}
	if f := cfg.FaultyRelay; f != nil && f.Board >= len(l.relays) {
		return nil, fmt.Errorf("%w: FaultyRelay.Board %d, but the lab has %d relay boards", ErrBadInventory, f.Board, len(l.relays))
	}
	return l, nil
}

// Start checks that every board's ping and SUT agent addresses are free
// (ErrAddrInUse when one is not; nothing is started then), binds every
// relay board, learns the imaging servers' addresses
// (one attempt; failures are logged and retried every Config.Discovery),
// then starts the discovery goroutine and one goroutine per board. Every
// relay starts off, so every board starts powered and boots. ctx bounds
// only the start itself; the lab runs until Shutdown.
func (l *Lab) Start(ctx context.Context) error {
	l.mu.Lock()
	switch {
	case l.shutdown:
		l.mu.Unlock()
		return ErrShutdown
	case l.started:
		l.mu.Unlock()
		return ErrStarted
	}
	l.started = true
	l.mu.Unlock()

	// 0. Every board's ports are free, or nothing starts.
	if err := l.checkBoardAddrs(); err != nil {
		l.mu.Lock()
		l.started = false // nothing was bound: Start may be tried again
		l.mu.Unlock()
		return err
	}

	// 1. Relay boards, so that their ports are known.
	recovery := l.cfg.RelayRecovery
	if recovery == 0 {
		recovery = -1 // bmmtest: negative means no pause
	}
	for i, rb := range l.relays {
		fake, err := bmmtest.NewRelayBoard(bmmtest.RelayBoardOptions{
			Addr: rb.spec, Recovery: recovery, Logger: l.logger,
		})
		if err != nil {
			for _, done := range l.relays[:i] {
				done.fake.Close()
			}
			l.mu.Lock()
			l.shutdown = true // the bound boards are closed: no restart
			l.mu.Unlock()
			return fmt.Errorf("start relay board %s: %w", rb.spec, err)
		}
		l.mu.Lock()
		rb.fake, rb.addr = fake, fake.Addr()
		l.mu.Unlock()
		fake.OnChange(func(bank, relay int, powered bool) {
			if b := rb.wired[[2]int{bank, relay}]; b != nil {
				b.setPower(powered)
			}
		})
		l.logger.Info("relay board listening", "addr", rb.addr, "devices", len(rb.wired))
	}
	l.mu.Lock()
	l.inv = l.boundInventory()
	l.mu.Unlock()

	// 2. Imaging servers.
	if err := l.discover(ctx); err != nil {
		l.logger.Warn("imaging servers not known yet; boards boot their SD cards until they are", "error", err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	l.wg.Add(1)
	// Exits when Shutdown cancels runCtx.
	go func() {
		defer l.wg.Done()
		l.discoverLoop(runCtx)
	}()

	// 3. The faulty relay board's schedule.
	if f := l.cfg.FaultyRelay; f != nil {
		l.wg.Add(1)
		// Exits when the fault is over or Shutdown cancels runCtx.
		go func() {
			defer l.wg.Done()
			l.relayFault(runCtx, *f)
		}()
	}

	// The faulty TFTP's schedule.
	if f := l.cfg.FaultyTFTP; f != nil {
		l.wg.Add(1)
		// Exits when the fault is over or Shutdown cancels runCtx.
		go func() {
			defer l.wg.Done()
			l.tftpFault(runCtx, *f)
		}()
	}

	// 4. Boards.
	for _, b := range l.boards {
		l.wg.Add(1)
		// Exits when Shutdown cancels runCtx; power changes only abort
		// the current boot.
		go func() {
			defer l.wg.Done()
			b.run(runCtx)
		}()
	}
	l.logger.Info("lab started", "boards", len(l.boards), "relay_boards", len(l.relays),
		"broken", l.brokenCount(), "time_scale", l.cfg.TimeScale, "seed", l.cfg.Seed)
	return nil
}

// checkBoardAddrs listens on every board's ping and SUT agent address
// once, and closes the listeners at once: a board listens on them only
// while it answers, so an address taken now would leave it silent for
// good, and another lab's board on the same address and port would
// answer the pings and SUT agent checks meant for it.
func (l *Lab) checkBoardAddrs() error {
	for _, b := range l.boards {
		for _, port := range []int{l.cfg.PingPort, l.cfg.SUTPort} {
			addr := net.JoinHostPort(b.ip.String(), strconv.Itoa(port))
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return fmt.Errorf("%w: board %s cannot listen on %s (another simulated lab on the same addresses and ports?): %v",
					ErrAddrInUse, b.name, addr, err)
			}
			ln.Close()
		}
	}
	return nil
}

// Shutdown stops the lab; it is safe to call more than once, and before
// Start. Steps, in the reverse of Start's order:
//  1. stop the boards' and discovery goroutines and wait for them;
//  2. close every board's ping listener and SUT agent;
//  3. close the relay boards.
//
// It returns ctx.Err() if ctx ends before the goroutines have exited; the
// listeners are closed anyway.
func (l *Lab) Shutdown(ctx context.Context) error {
	l.mu.Lock()
	if l.shutdown {
		l.mu.Unlock()
		return nil
	}
	l.shutdown = true
	started := l.started
	l.mu.Unlock()
	defer l.discoveryHC.CloseIdleConnections()
	if !started {
		return nil
	}

	l.cancel()
	done := make(chan struct{})
	// Exits once every lab goroutine has exited; they all watch runCtx.
	go func() {
		l.wg.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	for _, b := range l.boards {
		b.stop()
	}
	for _, rb := range l.relays {
		rb.fake.Close()
	}
	l.logger.Info("lab stopped")
	return err
}

// Inventory returns the lab's inventory; after Start every relay_info
// names the relay board's bound port (a port 0 is replaced). Sync this one
// into the cluster.
func (l *Lab) Inventory() fsm.Inventory {
	l.mu.Lock()
	defer l.mu.Unlock()
	return cloneInventory(l.inv)
}

// boundInventory rewrites the configured inventory's relay_info fields
// with the bound relay addresses.
func (l *Lab) boundInventory() fsm.Inventory {
	inv := cloneInventory(l.cfg.Inventory)
	for i := range inv.Devices {
		d := &inv.Devices[i]
		b := l.byName[d.Name]
		host, port, _ := net.SplitHostPort(b.relay.addr)
		p, _ := strconv.Atoi(port)
		d.RelayInfo = relay.RelayInfo{Host: host, Port: p, Bank: b.bank, Relay: b.relayNum}.String()
	}
	return inv
}

// cloneInventory copies inv deeply enough that the caller may change the
// copy's slices.
func cloneInventory(inv fsm.Inventory) fsm.Inventory {
	inv.ImagingServers = slices.Clone(inv.ImagingServers)
	inv.RelayBoards = slices.Clone(inv.RelayBoards)
	inv.HardwareTypes = slices.Clone(inv.HardwareTypes)
	inv.Images = slices.Clone(inv.Images)
	inv.PXEConfigs = slices.Clone(inv.PXEConfigs)
	inv.ImagePXEConfigs = slices.Clone(inv.ImagePXEConfigs)
	inv.Devices = slices.Clone(inv.Devices)
	inv.Racks = slices.Clone(inv.Racks)
	for i := range inv.Racks {
		inv.Racks[i].Servers = slices.Clone(inv.Racks[i].Servers)
	}
	return inv
}

// parseRelayInfo parses host[:port]:bankB:relayR like relay.ParseRelayInfo
// but also accepts port 0, "any free port".
func parseRelayInfo(s string) (relay.RelayInfo, error) {
	parts := strings.Split(s, ":")
	if len(parts) == 4 && parts[1] == "0" {
		ri, err := relay.ParseRelayInfo(strings.Join([]string{parts[0], parts[2], parts[3]}, ":"))
		ri.Port = 0
		return ri, err
	}
	return relay.ParseRelayInfo(s)
}

// relayFault makes f's relay board stuck from f.After to f.After+f.For
// (scaled) after Start.
func (l *Lab) relayFault(ctx context.Context, f RelayFault) {
	rb := l.relays[f.Board]
	scale := func(d time.Duration) time.Duration { return time.Duration(float64(d) * l.cfg.TimeScale) }
	if sleep(ctx, scale(f.After)) != nil {
		return
	}
	_, fake := l.relayAddr(rb)
	fake.SetStuck(true)
	l.logger.Info("relay board stuck: relays stop switching", "addr", rb.addr, "for", scale(f.For))
	if sleep(ctx, scale(f.For)) != nil {
		return
	}
	fake.SetStuck(false)
	l.logger.Info("relay board recovered", "addr", rb.addr)
}

// tftpFault runs FaultyTFTP's schedule: the imaging server's TFTP stops
// serving the boards After the start, for For.
func (l *Lab) tftpFault(ctx context.Context, f TFTPFault) {
	scale := func(d time.Duration) time.Duration { return time.Duration(float64(d) * l.cfg.TimeScale) }
	if sleep(ctx, scale(f.After)) != nil {
		return
	}
	l.setTFTPDown(f.Server, true)
	l.logger.Info("TFTP stops serving the boards", "imaging_server", f.Server, "for", scale(f.For))
	if sleep(ctx, scale(f.For)) != nil {
		return
	}
	l.setTFTPDown(f.Server, false)
	l.logger.Info("TFTP serves again", "imaging_server", f.Server)
}

func (l *Lab) setTFTPDown(server string, down bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.tftpDown == nil {
		l.tftpDown = map[string]bool{}
	}
	l.tftpDown[server] = down
}

// TFTPDown reports whether the lab's TFTP fault keeps server's TFTP from
// serving its boards right now.
func (l *Lab) TFTPDown(server string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.tftpDown[server]
}

// flakyBoards picks round(fraction × boards) boards that brokenBoards did
// not, from seed alone, as brokenBoards does.
func flakyBoards(seed int64, fraction float64, boards []*board) []string {
	var healthy []*board
	for _, b := range boards {
		if !b.broken {
			healthy = append(healthy, b)
		}
	}
	n := int(fraction*float64(len(boards)) + 0.5)
	if n == 0 || len(healthy) == 0 {
		return nil
	}
	return brokenBoards(seed+1, float64(min(n, len(healthy)))/float64(len(healthy)), healthy)
}

// brokenBoards picks round(fraction × boards) boards from seed alone: the
// boards are ordered by a hash of the seed and their name and the first
// ones are broken, so the same seed and inventory give the same set.
func brokenBoards(seed int64, fraction float64, boards []*board) []string {
	n := int(fraction*float64(len(boards)) + 0.5)
	if n == 0 {
		return nil
	}
	type ranked struct {
		name string
		key  uint64
	}
	r := make([]ranked, len(boards))
	for i, b := range boards {
		r[i] = ranked{b.name, seedHash(seed, "broken/"+b.name)}
	}
	sort.Slice(r, func(i, j int) bool {
		if r[i].key != r[j].key {
			return r[i].key < r[j].key
		}
		return r[i].name < r[j].name
	})
	names := make([]string, n)
	for i := range names {
		names[i] = r[i].name
	}
	sort.Strings(names)
	return names
}

// seedHash mixes seed and s into 64 bits: FNV-1a, then the splitmix64
// finaliser, because FNV alone leaves names that differ in their last
// character (panda-0004, panda-0005) with neighbouring hashes.
func seedHash(seed int64, s string) uint64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%d/%s", seed, s)
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// boardRand returns the random source of the named board.
func boardRand(seed int64, name string) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(seed), seedHash(seed, name)))
}

func (l *Lab) brokenCount() int {
	n := 0
	for _, b := range l.boards {
		if b.broken {
			n++
		}
	}
	return n
}
