package sim

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mozpool/mozpool/bmm/suttest"
	"github.com/mozpool/mozpool/lifeguard"
)

var (
	// errInjected ends a boot when a failure probability fires.
	errInjected = errors.New("injected failure")
)

// Phases a board reports in its ground truth. Imaging phases are
// "<image>_downloading" and so on; SD-card boots are "running_<image>".
const (
	PhaseOff         = "off"              // unpowered
	PhaseBooting     = "booting"          // u-boot, pingable
	PhasePXE         = "pxe"              // u-boot fetching the PXE file
	PhaseMobileInit  = "mobile_init"      // live image up, second stage starting
	PhaseSelfTest    = "self_test"        // self-test running
	PhaseSelfTestOK  = "self_test_ok"     // self-test passed, live image idles
	PhaseSelfTestBad = "self_test_failed" // self-test failed, live image idles
	PhaseMaintenance = "maintenance"      // maintenance live image
	PhaseHung        = "hung"             // live image up, its script stuck or done
)

// board is one simulated device. Its goroutine (run) owns rng and drives
// the boot; setPower runs on the relay board's goroutine; everything in
// the mutex-guarded block is also read by the ground-truth accessors.
type board struct {
	lab      *Lab
	logger   hclog.Logger
	name     string
	ip       net.IP
	mac      string // 12 lower-case hex digits
	server   string // imaging server name
	relay    *relayBoard
	bank     int
	relayNum int
	broken   bool
	flaky    bool // every third boot hangs in u-boot

	rng     *rand.Rand // board goroutine only
	http    *http.Client
	powerCh chan struct{} // poked (never blocking) when power comes on

	mu          sync.Mutex
	powered     bool
	stopped     bool               // Shutdown: open nothing more
	cancelBoot  context.CancelFunc // cancels the boot in progress
	phase       string
	sdImage     string
	boots       int
	failures    int
	lastFailure string
	tftpFetches int
	events      []EventPost
	ping        *pingListener
	agent       *suttest.Agent
}

func newBoard(l *Lab, name string, ip net.IP, mac, server string, rb *relayBoard, bank, relayNum int) *board {
	b := &board{
		lab: l, name: name, ip: ip, mac: mac, server: server,
		relay: rb, bank: bank, relayNum: relayNum,
		logger:  l.logger.With("board", name),
		rng:     boardRand(l.cfg.Seed, name),
		powerCh: make(chan struct{}, 1),
		powered: true, // every relay starts off: devices are powered
		phase:   PhaseOff,
		sdImage: l.cfg.SDImage,
	}
	b.http = &http.Client{
		Timeout:   l.cfg.HTTPTimeout,
		Transport: &http.Transport{DialContext: b.dial, DisableKeepAlives: true, TLSClientConfig: l.cfg.TLS},
	}
	return b
}

// dial connects from the board's own address when both ends are loopback
// addresses (localIP), so that servers see each board as a distinct host.
func (b *board) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	if host, _, err := net.SplitHostPort(addr); err == nil {
		if ip := b.localIP(net.ParseIP(host)); ip != nil {
			d.LocalAddr = &net.TCPAddr{IP: ip}
		}
	}
	return d.DialContext(ctx, network, addr)
}

// setPower follows the board's relay: power off aborts whatever the board
// was doing and takes it off the network; power on wakes its goroutine.
func (b *board) setPower(on bool) {
	b.mu.Lock()
	if b.powered == on {
		b.mu.Unlock()
		return
	}
	b.powered = on
	if on {
		b.mu.Unlock()
		b.logger.Debug("power on")
		select {
		case b.powerCh <- struct{}{}:
		default:
		}
		return
	}
	if b.cancelBoot != nil {
		b.cancelBoot()
		b.cancelBoot = nil
	}
	b.phase = PhaseOff
	ping, agent := b.takeListenersLocked()
	b.mu.Unlock()
	closeListeners(ping, agent)
	b.logger.Debug("power off")
}

// run is the board's goroutine: it waits for power, then boots again and
// again (after injected failures) until the power goes off; it returns
// when ctx ends.
func (b *board) run(ctx context.Context) {
	for {
		b.mu.Lock()
		for !b.powered {
			b.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-b.powerCh:
			}
			b.mu.Lock()
		}
		bootCtx, cancel := context.WithCancel(ctx)
		b.cancelBoot = cancel
		b.mu.Unlock()

		for bootCtx.Err() == nil {
			err := b.boot(bootCtx)
			if bootCtx.Err() != nil {
				break
			}
			b.mu.Lock()
			b.failures++
			b.lastFailure = fmt.Sprintf("%s: %v", b.phase, err)
			b.mu.Unlock()
			b.logger.Debug("boot failed; rebooting", "phase", b.Phase(), "error", err)
		}
		cancel()
		if ctx.Err() != nil {
			return
		}
	}
}

// boot runs one boot sequence: u-boot, the PXE file, then a second stage
// or the SD card. It returns only on failure or when ctx ends (power off).
func (b *board) boot(ctx context.Context) error {
	cfg := &b.lab.cfg
	b.mu.Lock()
	b.boots++
	flakyHang := b.flaky && b.boots%3 == 0
	b.mu.Unlock()

	if err := b.enter(ctx, PhaseBooting, true, false); err != nil {
		return err
	}
	b.syslog(ctx, appUBoot, uBootBanner, "OMAP4430 ES2.3, DRAM: 1 GiB, MMC: OMAP SD/MMC: 0")
	if err := b.wait(ctx, cfg.Failures.Booting, cfg.Delays.Booting); err != nil {
		return err
	}
	if flakyHang {
		// Every third boot of a flaky board hangs in u-boot, silent
		// until its power is cycled.
		b.syslog(ctx, appUBoot, "data abort")
		return b.hang(ctx, PhaseHung, false)
	}
	if err := b.enter(ctx, PhasePXE, false, false); err != nil {
		return err
	}
	b.syslog(ctx, appUBoot, "pxe get "+b.pxeFileName())
	stage := secondStage(b.fetchPXE(ctx))
	if stage == "" {
		if err := ctx.Err(); err != nil {
			return err
		}
		b.syslog(ctx, appUBoot, "no PXE file, booting from mmc")
		return b.runSDCard(ctx)
	}
	b.syslog(ctx, appUBoot, "booting via PXE: "+stage)
	switch stage {
	case "b2g-second-stage":
		return b.imaging(ctx, "b2g", true)
	case "android-second-stage":
		return b.imaging(ctx, "android", false)
	case "selftest-second-stage":
		return b.selfTest(ctx)
	case "maintenance-second-stage":
		return b.maintenance(ctx)
	default:
		// The live image's mobile-init.sh cannot fetch a script it does
		// not know: it reports that it started and then sits there.
		b.logger.Warn("unknown second stage", "script", stage)
		if err := b.mobileInit(ctx, stage); err != nil {
			return err
		}
		b.syslog(ctx, appMobileInit, "cannot fetch second stage "+stage+".sh")
		return b.hang(ctx, PhaseHung, true)
	}
}

// mobileInit is the start of every second stage: the live image is up
// (pingable), fetches the stage's script and reports mobile_init_started,
// then pauses.
func (b *board) mobileInit(ctx context.Context, stage string) error {
	cfg := &b.lab.cfg
	if err := b.enter(ctx, PhaseMobileInit, true, false); err != nil {
		return err
	}
	b.logKernel(ctx)
	b.syslog(ctx, appMobileInit, "fetching second stage "+stage+".sh")
	b.post(ctx, lifeguard.EventMobileInitStarted)
	return b.wait(ctx, cfg.Failures.MobileInit, cfg.Delays.MobileInit)
}

// imaging runs the b2g or android second stage: download, extract (the SD
// card is corrupt from here until the end), reboot into the new image.
// Mozpool's fake never finished android imaging; this one does.
func (b *board) imaging(ctx context.Context, image string, needBootConfig bool) error {
	cfg := &b.lab.cfg
	stage := image + "-second-stage"
	if err := b.mobileInit(ctx, stage); err != nil {
		return err
	}
	source := image + " image"
	if needBootConfig {
		base, err := b.checkBootConfig(ctx)
		if err != nil {
			b.syslog(ctx, stage, "bad boot config: "+err.Error()+"; rebooting")
			return err
		}
		source = base
	}
	steps := []struct {
		step string
		line string
		p    float64
		d    Delay
	}{
		{"downloading", "downloading " + source, cfg.Failures.Downloading, cfg.Delays.Downloading},
		{"extracting", "extracting to mmcblk0", cfg.Failures.Extracting, cfg.Delays.Extracting},
		{"rebooting", "rebooting", cfg.Failures.Rebooting, cfg.Delays.Rebooting},
	}
	for _, s := range steps {
		phase := image + "_" + s.step
		if s.step == "extracting" {
			if err := b.setSDImage(ctx, "corrupt"); err != nil {
				return err
			}
		}
		if err := b.enter(ctx, phase, true, false); err != nil {
			return err
		}
		b.syslog(ctx, stage, s.line)
		// The phase is named as the report lifeguard expects (b2g_downloading, …).
		b.post(ctx, lifeguard.Event(phase))
		if err := b.wait(ctx, s.p, s.d); err != nil {
			return err
		}
	}
	if err := b.enter(ctx, image+"_rebooting", false, false); err != nil {
		return err
	}
	if err := b.setSDImage(ctx, image); err != nil {
		return err
	}
	return b.runSDCard(ctx)
}

// selfTest runs the self-test second stage: after Delays.SelfTest it
// reports self_test_ok or failed_self_test, or nothing (a hang), and the
// live image stays up.
func (b *board) selfTest(ctx context.Context) error {
	cfg := &b.lab.cfg
	if err := b.mobileInit(ctx, "selftest-second-stage"); err != nil {
		return err
	}
	if err := b.enter(ctx, PhaseSelfTest, true, false); err != nil {
		return err
	}
	b.syslog(ctx, appSelfTest, "running self-test: SD card, network")
	b.post(ctx, lifeguard.EventSelfTestRunning)
	if err := b.wait(ctx, 0, cfg.Delays.SelfTest); err != nil {
		return err
	}
	switch u := b.rng.Float64(); {
	case u < cfg.Failures.SelfTestOK:
		if err := b.enter(ctx, PhaseSelfTestOK, true, false); err != nil {
			return err
		}
		b.syslog(ctx, appSelfTest, "self-test passed")
		b.post(ctx, lifeguard.EventSelfTestOK)
		return b.hang(ctx, PhaseSelfTestOK, true)
	case u < cfg.Failures.SelfTestOK+cfg.Failures.SelfTestFailed:
		if err := b.enter(ctx, PhaseSelfTestBad, true, false); err != nil {
			return err
		}
		b.syslog(ctx, appSelfTest, "self-test failed: SD card check failed")
		b.post(ctx, lifeguard.EventFailedSelfTest)
		return b.hang(ctx, PhaseSelfTestBad, true)
	default:
		return b.hang(ctx, PhaseHung, true)
	}
}

// maintenance runs the maintenance second stage: maint_mode, then the
// live image stays up for Delays.Maintenance and its script ends; the
// board stays pingable until it is powered off.
func (b *board) maintenance(ctx context.Context) error {
	cfg := &b.lab.cfg
	if err := b.mobileInit(ctx, "maintenance-second-stage"); err != nil {
		return err
	}
	if err := b.enter(ctx, PhaseMaintenance, true, false); err != nil {
		return err
	}
	b.syslog(ctx, appMaint, "maintenance mode: live image up, waiting")
	b.post(ctx, lifeguard.EventMaintMode)
	if err := b.wait(ctx, 0, cfg.Delays.Maintenance); err != nil {
		return err
	}
	return b.hang(ctx, PhaseHung, true)
}

// runSDCard boots the SD card's image. A b2g or android image answers
// ping and runs a SUT agent (unless the board is broken); anything else
// (corrupt, blank) boots nothing that answers. If the Running failure
// fires the board reboots by itself after Delays.Running.
func (b *board) runSDCard(ctx context.Context) error {
	cfg := &b.lab.cfg
	image := b.SDImage()
	up := image == "b2g" || image == "android"
	if err := b.enter(ctx, "running_"+image, up, up); err != nil {
		return err
	}
	b.logKernel(ctx)
	switch {
	case !up:
		b.syslog(ctx, appKernel, "VFS: Cannot open root device \"mmcblk0p2\"", "Kernel panic - not syncing: VFS: Unable to mount root fs")
	case !b.broken:
		b.syslog(ctx, appSUTAgent, "SUTAgent listening on "+strconv.Itoa(cfg.SUTPort))
	}
	if !b.chance(cfg.Failures.Running) {
		<-ctx.Done()
		return ctx.Err()
	}
	if err := sleep(ctx, cfg.Delays.Running.draw(b.rng, cfg.TimeScale)); err != nil {
		return err
	}
	return fmt.Errorf("%w: spontaneous reboot", errInjected)
}

// hang keeps the board in phase until power goes off.
func (b *board) hang(ctx context.Context, phase string, pingable bool) error {
	if err := b.enter(ctx, phase, pingable, false); err != nil {
		return err
	}
	<-ctx.Done()
	return ctx.Err()
}

// wait starts a phase's wait of a draw of d. With probability p, decided
// now, the phase fails instead: the board crashes at a random point of
// the wait (at least a millisecond in, so that a certain failure cannot
// spin) and wait returns errInjected.
func (b *board) wait(ctx context.Context, p float64, d Delay) error {
	dur := d.draw(b.rng, b.lab.cfg.TimeScale)
	if !b.chance(p) {
		return sleep(ctx, dur)
	}
	crash := max(time.Duration(b.rng.Float64()*float64(dur)), time.Millisecond)
	if err := sleep(ctx, crash); err != nil {
		return err
	}
	return errInjected
}

// chance reports true with probability p.
func (b *board) chance(p float64) bool {
	return p > 0 && b.rng.Float64() < p
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// enter moves the board to phase and makes it answer ping and run a SUT
// agent as asked (a broken board does neither). It fails, changing
// nothing, if ctx has ended: the power went off meanwhile.
func (b *board) enter(ctx context.Context, phase string, pingable, agent bool) error {
	pingable = pingable && !b.broken
	agent = agent && !b.broken
	b.mu.Lock()
	if err := ctx.Err(); err != nil {
		b.mu.Unlock()
		return err
	}
	if b.stopped {
		b.mu.Unlock()
		return context.Canceled
	}
	if b.phase != phase {
		b.logger.Debug("phase", "phase", phase)
	}
	b.phase = phase
	var oldPing *pingListener
	var oldAgent *suttest.Agent
	if !pingable {
		oldPing, b.ping = b.ping, nil
	} else if b.ping == nil {
		ln, err := listenPing(net.JoinHostPort(b.ip.String(), strconv.Itoa(b.lab.cfg.PingPort)))
		if err != nil {
			b.logger.Warn("cannot answer ping", "error", err)
		}
		b.ping = ln
	}
	if !agent {
		oldAgent, b.agent = b.agent, nil
	} else if b.agent == nil {
		a, err := suttest.NewAgent(suttest.AgentOptions{
			Addr:   net.JoinHostPort(b.ip.String(), strconv.Itoa(b.lab.cfg.SUTPort)),
			Logger: b.logger,
		})
		if err != nil {
			b.logger.Warn("cannot start the SUT agent", "error", err)
		}
		b.agent = a
	}
	b.mu.Unlock()
	closeListeners(oldPing, oldAgent)
	return nil
}

// stop closes the board's listeners for good (Shutdown).
func (b *board) stop() {
	b.mu.Lock()
	b.stopped = true
	ping, agent := b.takeListenersLocked()
	b.mu.Unlock()
	closeListeners(ping, agent)
	b.http.CloseIdleConnections()
}

func (b *board) takeListenersLocked() (*pingListener, *suttest.Agent) {
	ping, agent := b.ping, b.agent
	b.ping, b.agent = nil, nil
	return ping, agent
}

func closeListeners(ping *pingListener, agent *suttest.Agent) {
	if ping != nil {
		ping.Close()
	}
	if agent != nil {
		agent.Close()
	}
}

// setSDImage writes the SD card, unless the power went off (ctx ended).
func (b *board) setSDImage(ctx context.Context, image string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	b.sdImage = image
	return nil
}

// SDImage returns the image on the board's SD card.
func (b *board) SDImage() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sdImage
}

// Phase returns the board's phase.
func (b *board) Phase() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.phase
}

// pingListener answers "ping" in TCP mode: it accepts connections and
// closes them at once.
type pingListener struct {
	ln   net.Listener
	done chan struct{}
}

func listenPing(addr string) (*pingListener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	p := &pingListener{ln: ln, done: make(chan struct{})}
	// Exits when Close closes the listener.
	go func() {
		defer close(p.done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return p, nil
}

// Close stops listening and waits for the accept goroutine.
func (p *pingListener) Close() error {
	err := p.ln.Close()
	<-p.done
	return err
}
