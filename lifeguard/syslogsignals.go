package lifeguard

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mozpool/mozpool/fsm"
	"github.com/mozpool/mozpool/internal/retry"
)

// A board's syslog (bmm/syslog) says at once what a state's timeout says
// only when it passes: the boot loader's banner in the middle of an imaging
// step means the board reset, a data abort that the net boot hangs, a
// failed TFTP fetch that the PXE file never arrived, a kernel panic that
// the image just written does not boot. SyslogSignals reads the lines of
// this imaging server's boards and proposes the matching event
// (vocabulary.go), tagged with the generation of the state the device was
// in when the line was written, when that state accepts it. Lines written
// before the device entered its current state are old news and ignored,
// as is everything when the queue is full: the state's timeout remains the
// safety net.

// signalOf returns the event a syslog message ("app: text", as
// bmm/syslog files it) signals, or "".
func signalOf(message string) Event {
	app, text, ok := strings.Cut(message, ": ")
	if !ok {
		return ""
	}
	if i := strings.IndexByte(app, '['); i >= 0 {
		app = app[:i] // procid
	}
	switch strings.ToLower(app) {
	case "u-boot":
		switch {
		case strings.HasPrefix(text, "U-Boot "):
			return EventBoardRebooted
		case strings.Contains(text, "data abort"), strings.Contains(text, "prefetch abort"), strings.Contains(text, "undefined instruction"):
			return EventBootHung
		case strings.Contains(text, "no PXE file"), strings.Contains(text, "TFTP error"), strings.Contains(text, "Retry count exceeded"):
			return EventPXEFetchFailed
		}
	case "kernel":
		if strings.HasPrefix(text, "Kernel panic") {
			return EventKernelPanic
		}
	}
	return ""
}

// SyslogSignalsConfig configures SyslogSignals.
type SyslogSignalsConfig struct {
	// FSM is the local replica. Required.
	FSM *fsm.FSM
	// Propose proposes a command through the cluster. Required.
	Propose func(ctx context.Context, t fsm.CommandType, cmd fsm.Command) (fsm.Result, error)
	// Logger is the parent logger. Default: null logger.
	Logger hclog.Logger
}

// syslogSignalQueue bounds the signals waiting to be proposed.
const syslogSignalQueue = 1024

// SyslogSignals turns boards' syslog lines into device events. Message is
// the bmm/syslog receiver's hook; Run proposes.
type SyslogSignals struct {
	cfg    SyslogSignalsConfig
	logger hclog.Logger
	queue  chan signal
	wg     sync.WaitGroup
}

type signal struct {
	device string
	event  Event
	gen    uint64
}

// NewSyslogSignals returns a SyslogSignals; Run starts it.
func NewSyslogSignals(cfg SyslogSignalsConfig) *SyslogSignals {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	return &SyslogSignals{cfg: cfg, logger: cfg.Logger.Named("lifeguard.syslog"), queue: make(chan signal, syslogSignalQueue)}
}

// Message looks at one line of device's syslog, written at at. It never
// blocks: a line that signals an event the device's current state accepts
// is queued for Run.
func (s *SyslogSignals) Message(device string, at time.Time, message string) {
	ev := signalOf(message)
	if ev == "" {
		return
	}
	var sig signal
	s.cfg.FSM.Read(func(st *fsm.State) {
		d, ok := st.Devices[device]
		if !ok || at.Before(d.StateEntered) {
			return
		}
		if _, accepts := spec(State(d.State)).Events[ev]; accepts {
			sig = signal{device, ev, d.Generation}
		}
	})
	if sig.device == "" {
		return
	}
	select {
	case s.queue <- sig:
	default:
		s.logger.Debug("syslog signal queue full; the state's timeout will do", "device", device, "event", string(ev))
	}
}

// Run proposes queued signals until ctx ends, each until it is committed
// or its state entry has passed.
func (s *SyslogSignals) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			s.wg.Wait()
			return
		case sig := <-s.queue:
			s.wg.Add(1)
			// Exits when the proposal is committed, the entry has
			// passed, or ctx ends.
			go func() {
				defer s.wg.Done()
				s.propose(ctx, sig)
			}()
		}
	}
}

func (s *SyslogSignals) propose(ctx context.Context, sig signal) {
	current := func() bool {
		ok := false
		s.cfg.FSM.Read(func(st *fsm.State) {
			d, found := st.Devices[sig.device]
			ok = found && d.Generation == sig.gen
		})
		return ok
	}
	onFail := func(err error) {
		s.logger.Debug("proposal failed; retrying", "device", sig.device, "event", string(sig.event), "error", err)
	}
	s.logger.Debug("syslog signal", "device", sig.device, "event", string(sig.event))
	retry.Propose(ctx, s.cfg.Propose, fsm.CmdDeviceEvent, &fsm.DeviceEvent{
		Device: sig.device, Event: string(sig.event), Generation: sig.gen, Source: "syslog",
	}, current, onFail)
}
