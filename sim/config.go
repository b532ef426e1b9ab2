package sim

import (
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mozpool/mozpool/fsm"
)

// loggerName is the name of the simulator's sub-logger.
const loggerName = "sim"

// Delay is a duration drawn uniformly from [Mean-Jitter, Mean+Jitter]
// (never below zero), then multiplied by Config.TimeScale.
type Delay struct {
	Mean   time.Duration `json:"mean"`
	Jitter time.Duration `json:"jitter"`
}

// draw returns one delay from d, scaled.
func (d Delay) draw(rng *rand.Rand, scale float64) time.Duration {
	v := d.Mean
	if d.Jitter > 0 {
		v += time.Duration((2*rng.Float64() - 1) * float64(d.Jitter))
	}
	return time.Duration(float64(max(v, 0)) * scale)
}

// Delays are how long each phase of a board's life lasts, before
// Config.TimeScale. Defaults are those of Mozpool's own fake device.
type Delays struct {
	// Booting is how long u-boot runs (pingable) before it asks for the
	// PXE file. Default: 7±3 s.
	Booting Delay
	// MobileInit is the pause between mobile_init_started and the second
	// stage's first step. Default: 1 s.
	MobileInit Delay
	// Downloading, Extracting and Rebooting are the phases of the b2g and
	// android second stages. Defaults: 60±30 s, 90±60 s, 3±2 s.
	Downloading Delay
	Extracting  Delay
	Rebooting   Delay
	// SelfTest is how long the self-test runs before it reports. Default:
	// 60 s.
	SelfTest Delay
	// Maintenance is how long the maintenance live image stays up before
	// it hangs (unpingable until powered off), as Mozpool's fake did.
	// Default: 3600 s.
	Maintenance Delay
	// Running is how long a board hit by the Running failure stays up
	// before it reboots by itself. Default: 60±30 s.
	Running Delay
}

// Failures are the probabilities (0..1) that a board fails at the start of
// each phase; a failure restarts the boot sequence at once, power still on,
// like a spontaneous reboot. Defaults are those of Mozpool's fake device. The
// android_* phases share the b2g probabilities.
type Failures struct {
	// Booting: u-boot. Default: 0.05.
	Booting float64
	// MobileInit: right after mobile_init_started. Default: 0.01.
	MobileInit float64
	// Downloading, Extracting, Rebooting: the imaging phases. Defaults:
	// 0.05, 0.08, 0.08.
	Downloading float64
	Extracting  float64
	Rebooting   float64
	// Running: a board booted from its SD card reboots after
	// Delays.Running. Default: 0.05.
	Running float64
	// SelfTestOK is the probability that the self-test reports
	// self_test_ok; SelfTestFailed that it reports failed_self_test; the
	// rest of the time it hangs (stays pingable, reports nothing), as in
	// Mozpool's fake. Defaults: 0.8 and 0.
	SelfTestOK     float64
	SelfTestFailed float64
}

// RelayFault is a relay board whose relays stop switching for a while and
// then recover: its controller still answers every command (a set is
// acknowledged) but the relays stay as they were, so its boards are
// neither powered off nor on.
type RelayFault struct {
	// Board is the index of the relay board in the lab's relay boards
	// sorted by configured address (Lab.Relays order).
	Board int `json:"board"`
	// After is when the fault starts, from Start; For how long it
	// lasts. Both are multiplied by Config.TimeScale.
	After time.Duration `json:"after"`
	For   time.Duration `json:"for"`
}

// TFTPFault is an imaging server whose TFTP stops serving the boards for
// a while and then serves again: their boot loaders' PXE file requests go
// unanswered, so after TFTPTimeout × TFTPRetries each logs that there is
// no PXE file and boots its SD card, as a Panda's u-boot does when the
// TFTP server is down.
type TFTPFault struct {
	// Server is the imaging server's name.
	Server string `json:"server"`
	// After is when the fault starts, from Start; For how long it
	// lasts. Both are multiplied by Config.TimeScale.
	After time.Duration `json:"after"`
	For   time.Duration `json:"for"`
}

// Config configures a Lab.
type Config struct {
	// Inventory is the lab: every device with a relay_info and an
	// ip_address becomes a board. A relay host with port 0 (for example
	// 127.0.0.1:0:bank1:relay2) gets a free port at Start; Lab.Inventory
	// returns the inventory with the bound ports. Required.
	Inventory fsm.Inventory
	// API lists cluster nodes' base URLs. The lab reads
	// /api/cluster/status/ from the first that answers to learn each
	// imaging server's HTTP, TFTP and syslog addresses. Required.
	API []string
	// TLS, when set, is the client configuration of the boards' calls and
	// of discovery (the cluster's CA), for nodes that serve HTTPS.
	TLS *tls.Config
	// Discovery is how often the imaging servers' addresses are read
	// again (nodes restart on new ports). Default: 3 s.
	Discovery time.Duration
	// TimeScale multiplies every phase delay: 0.1 makes 60 s take 6 s.
	// Network timeouts and RelayRecovery are not scaled. Default: 1.
	TimeScale float64
	// Seed seeds every board's random source (with the board's name) and
	// the choice of broken boards, so that runs are reproducible.
	// Default: 0.
	Seed int64
	// Delays per phase. Default: as documented on Delays.
	Delays Delays
	// Failures per phase. Default: as documented on Failures.
	Failures Failures
	// BrokenFraction (0..1) of the boards are permanently broken: they
	// power up and boot but never answer ping or the SUT agent. Which
	// ones is decided by Seed. Default: 0.
	BrokenFraction float64
	// FlakyFraction (0..1) of the boards are flaky: every third boot
	// sequence of theirs hangs at the end of u-boot, silent (no ping, no
	// PXE fetch) until its power is cycled, as a board with a marginal
	// power supply or SD slot does; the others succeed. Which ones is decided by Seed, among boards that are not
	// broken. Default: 0.
	FlakyFraction float64
	// FaultyRelay, if set, makes one relay board's relays stop switching
	// for a while (see RelayFault). Default: none.
	FaultyRelay *RelayFault
	// FaultyTFTP, if set, makes one imaging server's TFTP stop serving
	// the boards for a while (see TFTPFault). Default: none.
	FaultyTFTP *TFTPFault
	// SDImage is the image on every board's SD card when the lab starts.
	// Default: "b2g".
	SDImage string
	// PingPort is the TCP port that answers "ping" on a board's address
	// while it is powered and pingable. Default: 20700.
	PingPort int
	// SUTPort is the SUT agent's TCP port on a board's address. Default:
	// 20701.
	SUTPort int
	// RelayRecovery is how long a relay board pauses after each
	// connection before it accepts the next; zero means no pause.
	// Default: 1 s.
	RelayRecovery time.Duration
	// TFTPTimeout is the TFTP client's per-packet timeout; a fetch gives
	// up after TFTPRetries of them and the board boots its SD card, as a
	// Panda's u-boot does. Defaults: 1 s and 3.
	TFTPTimeout time.Duration
	TFTPRetries int
	// HTTPTimeout bounds each event post and bootconfig read. Default:
	// 30 s.
	HTTPTimeout time.Duration
	// EventHistory is how many event posts the ground truth keeps per
	// board. Default: 50.
	EventHistory int
	// Syslog makes every board log to its imaging server's syslog
	// receiver (its syslog_addr in the cluster status), as a Panda's
	// u-boot, kernel, live image and SUT agent do: a few RFC 5424 lines
	// per boot phase over UDP, from the board's own address, with the
	// board's name as HOSTNAME. Lines are never retried or waited for.
	// Default: true.
	Syslog bool
	// Logger receives the lab's log lines. Default: a null logger.
	Logger hclog.Logger
}

// DefaultConfig returns a Config with every default set; Inventory and
// API are left empty.
func DefaultConfig() Config {
	s := time.Second
	return Config{
		Discovery: 3 * s,
		TimeScale: 1,
		Delays: Delays{
			Booting:     Delay{7 * s, 3 * s},
			MobileInit:  Delay{Mean: s},
			Downloading: Delay{60 * s, 30 * s},
			Extracting:  Delay{90 * s, 60 * s},
			Rebooting:   Delay{3 * s, 2 * s},
			SelfTest:    Delay{Mean: 60 * s},
			Maintenance: Delay{Mean: 3600 * s},
			Running:     Delay{60 * s, 30 * s},
		},
		Failures: Failures{
			Booting:     0.05,
			MobileInit:  0.01,
			Downloading: 0.05,
			Extracting:  0.08,
			Rebooting:   0.08,
			Running:     0.05,
			SelfTestOK:  0.8,
		},
		SDImage:       "b2g",
		PingPort:      20700,
		SUTPort:       20701,
		RelayRecovery: s,
		TFTPTimeout:   s,
		TFTPRetries:   3,
		HTTPTimeout:   30 * s,
		EventHistory:  50,
		Syslog:        true,
		Logger:        hclog.NewNullLogger(),
	}
}

// Validate reports the first field that is missing or out of range. It
// does not look at the inventory's devices; New does.
func (c Config) Validate() error {
	probs := []struct {
		name string
		p    float64
	}{
		{"Failures.Booting", c.Failures.Booting},
		{"Failures.MobileInit", c.Failures.MobileInit},
		{"Failures.Downloading", c.Failures.Downloading},
		{"Failures.Extracting", c.Failures.Extracting},
		{"Failures.Rebooting", c.Failures.Rebooting},
		{"Failures.Running", c.Failures.Running},
		{"Failures.SelfTestOK", c.Failures.SelfTestOK},
		{"Failures.SelfTestFailed", c.Failures.SelfTestFailed},
		{"BrokenFraction", c.BrokenFraction},
		{"FlakyFraction", c.FlakyFraction},
	}
	for _, p := range probs {
		if p.p < 0 || p.p > 1 {
			return fmt.Errorf("sim: %s must be in 0..1, got %g", p.name, p.p)
		}
	}
	delays := []struct {
		name string
		d    Delay
	}{
		{"Booting", c.Delays.Booting},
		{"MobileInit", c.Delays.MobileInit},
		{"Downloading", c.Delays.Downloading},
		{"Extracting", c.Delays.Extracting},
		{"Rebooting", c.Delays.Rebooting},
		{"SelfTest", c.Delays.SelfTest},
		{"Maintenance", c.Delays.Maintenance},
		{"Running", c.Delays.Running},
	}
	for _, d := range delays {
		if d.d.Mean < 0 || d.d.Jitter < 0 {
			return fmt.Errorf("sim: Delays.%s must not be negative, got %s±%s", d.name, d.d.Mean, d.d.Jitter)
		}
	}
	if f := c.FaultyRelay; f != nil && (f.Board < 0 || f.After < 0 || f.For <= 0) {
		return fmt.Errorf("sim: FaultyRelay needs Board >= 0, After >= 0 and For > 0, got %+v", *f)
	}
	if f := c.FaultyTFTP; f != nil && (f.Server == "" || f.After < 0 || f.For <= 0) {
		return fmt.Errorf("sim: FaultyTFTP needs Server, After >= 0 and For > 0, got %+v", *f)
	}
	switch {
	case c.BrokenFraction+c.FlakyFraction > 1:
		return fmt.Errorf("sim: BrokenFraction + FlakyFraction must not exceed 1, got %g", c.BrokenFraction+c.FlakyFraction)
	case len(c.API) == 0:
		return errors.New("sim: API needs at least one cluster node URL")
	case c.Discovery <= 0:
		return fmt.Errorf("sim: Discovery must be positive, got %s", c.Discovery)
	case c.TimeScale <= 0:
		return fmt.Errorf("sim: TimeScale must be positive, got %g", c.TimeScale)
	case c.Failures.SelfTestOK+c.Failures.SelfTestFailed > 1:
		return fmt.Errorf("sim: Failures.SelfTestOK + SelfTestFailed must not exceed 1, got %g",
			c.Failures.SelfTestOK+c.Failures.SelfTestFailed)
	case c.SDImage == "":
		return errors.New("sim: SDImage is required")
	case c.PingPort < 1 || c.PingPort > 65535:
		return fmt.Errorf("sim: PingPort must be in 1..65535, got %d", c.PingPort)
	case c.SUTPort < 1 || c.SUTPort > 65535:
		return fmt.Errorf("sim: SUTPort must be in 1..65535, got %d", c.SUTPort)
	case c.PingPort == c.SUTPort:
		return fmt.Errorf("sim: PingPort and SUTPort must differ, both are %d", c.PingPort)
	case c.RelayRecovery < 0:
		return fmt.Errorf("sim: RelayRecovery must not be negative, got %s", c.RelayRecovery)
	case c.TFTPTimeout <= 0:
		return fmt.Errorf("sim: TFTPTimeout must be positive, got %s", c.TFTPTimeout)
	case c.TFTPRetries < 1:
		return fmt.Errorf("sim: TFTPRetries must be at least 1, got %d", c.TFTPRetries)
	case c.HTTPTimeout <= 0:
		return fmt.Errorf("sim: HTTPTimeout must be positive, got %s", c.HTTPTimeout)
	case c.EventHistory < 1:
		return fmt.Errorf("sim: EventHistory must be at least 1, got %d", c.EventHistory)
	case c.Logger == nil:
		return errors.New("sim: Logger is required")
	}
	return nil
}
