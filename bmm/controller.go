package bmm

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mozpool/mozpool/bmm/relay"
	"github.com/mozpool/mozpool/fsm"
)

var (
	// ErrNoPowerControl: the device has no relay_info.
	ErrNoPowerControl = errors.New("device has no relay_info: no power control")
	// ErrNotOwner: the device or relay board belongs to another imaging
	// server; only its owner may act on it.
	ErrNotOwner = errors.New("owned by another imaging server")
	// ErrUnknownBoard: no relay board has the given name.
	ErrUnknownBoard = errors.New("unknown relay board")
	// ErrShutdown: the controller is shutting down.
	ErrShutdown = errors.New("bmm controller shut down")
	// ErrNoPXE: the node has no TFTP root configured.
	ErrNoPXE = errors.New("this node serves no PXE files (no tftp root)")
)

// Deadlines of the hardware operations, measured from when the operation
// starts running: a relay operation waiting for its board does not use up
// its deadline. They are Mozpool's, except for the two SUT checks, whose
// limits there did not fit their states: SUT verification had 195 s in a
// state that times out after 45 s, and the SD-card check 30 s for a check
// that can take 195 s, so its result was often dropped. Lifeguard's
// executor also ends every action with its state entry
// (docs/design.md#generations).
const (
	PowerTimeout    = 30 * time.Second
	RelayTestLimit  = 10 * time.Second
	PXETimeout      = 5 * time.Second
	PingTimeout     = 10 * time.Second
	SUTVerifyLimit  = 60 * time.Second
	SDCardTestLimit = 195 * time.Second
)

// Relay is the relay-board client (bmm/relay.Client).
type Relay interface {
	PowerCycle(ctx context.Context, ri relay.RelayInfo) error
	SetPower(ctx context.Context, ri relay.RelayInfo, on bool) error
	TestComms(ctx context.Context, host string, port int) error
}

// PXE writes and removes per-device PXE config files (bmm/pxe.Writer).
type PXE interface {
	Set(ctx context.Context, mac, contents string) error
	Clear(ctx context.Context, mac string) error
}

// Pinger checks whether a board answers (bmm/ping.Pinger).
type Pinger interface {
	Ping(ctx context.Context, host string) (bool, error)
}

// SUT talks to the on-board agent (bmm/sut.Client).
type SUT interface {
	Verify(ctx context.Context, host string) error
	CheckSDCard(ctx context.Context, host string) error
}

// Config configures a Controller.
type Config struct {
	// Server is the imaging server this node is. Required.
	Server string
	// FSM is the local replica, for device lookups. Required.
	FSM *fsm.FSM
	// Propose files log lines through the cluster. Required.
	Propose func(ctx context.Context, t fsm.CommandType, cmd fsm.Command) (fsm.Result, error)
	// Relay, PXE, Pinger and SUT are the drivers. PXE may be nil on a node
	// without a TFTP root (PXE operations then fail with ErrNoPXE).
	Relay  Relay
	PXE    PXE
	Pinger Pinger
	SUT    SUT
	// Logger is the parent logger. Default: null logger.
	Logger hclog.Logger
}

// Validate reports the first missing field.
func (c *Config) Validate() error {
	switch {
	case c.Server == "":
		return errors.New("bmm: server name is required")
	case c.FSM == nil:
		return errors.New("bmm: fsm is required")
	case c.Propose == nil:
		return errors.New("bmm: propose is required")
	case c.Relay == nil || c.Pinger == nil || c.SUT == nil:
		return errors.New("bmm: relay, pinger and sut drivers are required")
	}
	return nil
}

// Controller performs hardware operations on this node's devices.
type Controller struct {
	cfg    Config
	logger hclog.Logger

	logs   *logBatcher
	ctx    context.Context // cancelled by Shutdown; parent of async ops
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// New returns a Controller.
func New(cfg Config) (*Controller, error) {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	logger := cfg.Logger.Named("bmm")
	return &Controller{cfg: cfg, logger: logger, ctx: ctx, cancel: cancel, logs: newLogBatcher(cfg.Propose, func() (string, map[string]uint64) {
		return cfg.Server, cfg.FSM.OwnedRackGenerations(cfg.Server)
	}, logger)}, nil
}

// Shutdown cancels running asynchronous operations and waits for them (or
// for ctx). It can be called more than once.
func (c *Controller) Shutdown(ctx context.Context) error {
	c.once.Do(c.cancel)
	done := make(chan struct{})
	// Exits when every tracked operation has returned and the last log
	// lines are filed.
	go func() { c.wg.Wait(); c.logs.close(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// device returns a copy of a device this node owns.
func (c *Controller) device(name string) (fsm.Device, error) {
	var d fsm.Device
	var ok bool
	c.cfg.FSM.Read(func(s *fsm.State) {
		if p, found := s.Devices[name]; found {
			d, ok = *p, true
		}
	})
	switch {
	case !ok:
		return d, fmt.Errorf("%w: %q", fsm.ErrUnknownDevice, name)
	case d.ImagingServer != c.cfg.Server:
		return d, fmt.Errorf("device %s: %w %q", name, ErrNotOwner, d.ImagingServer)
	}
	return d, nil
}

func (c *Controller) relayOf(d fsm.Device) (relay.RelayInfo, error) {
	if d.RelayInfo == "" {
		return relay.RelayInfo{}, fmt.Errorf("device %s: %w", d.Name, ErrNoPowerControl)
	}
	ri, err := relay.ParseRelayInfo(d.RelayInfo)
	if err != nil {
		return relay.RelayInfo{}, fmt.Errorf("device %s: %w", d.Name, err)
	}
	return ri, nil
}

// log files a line in a device's log through the cluster. A log line that
// cannot be filed (no leader) is kept in the node log only.
func (c *Controller) log(_ context.Context, device, source, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	c.logger.Debug(msg, "device", device, "source", source)
	c.logs.add(fsm.LogEntry{Kind: fsm.LogDevice, Name: device, At: time.Now().UTC(), Source: source, Message: msg})
}

// result logs how an operation ended.
func (c *Controller) result(ctx context.Context, device, source, op string, err error) error {
	if err != nil {
		c.log(ctx, device, source, "%s failed: %v", op, err)
		return err
	}
	c.log(ctx, device, source, "%s succeeded", op)
	return nil
}

// PowerCycle turns the device off and on through its relay and waits for
// the result.
func (c *Controller) PowerCycle(ctx context.Context, device string) error {
	d, err := c.device(device)
	if err != nil {
		return err
	}
	ri, err := c.relayOf(d)
	if err != nil {
		return err
	}
	c.log(ctx, device, "bmm", "power-cycling via %s", ri)
	return c.result(ctx, device, "bmm", "power cycle", c.cfg.Relay.PowerCycle(ctx, ri))
}

// PowerOff turns the device's power off through its relay.
func (c *Controller) PowerOff(ctx context.Context, device string) error {
	d, err := c.device(device)
	if err != nil {
		return err
	}
	ri, err := c.relayOf(d)
	if err != nil {
		return err
	}
	c.log(ctx, device, "bmm", "powering off via %s", ri)
	return c.result(ctx, device, "bmm", "power off", c.cfg.Relay.SetPower(ctx, ri, false))
}

// StartPowerCycle checks that the device can be power-cycled and starts the
// power cycle in the background (the API answers at once, as the original).
func (c *Controller) StartPowerCycle(device string) error {
	return c.start(device, PowerTimeout, c.PowerCycle)
}

// StartPowerOff is StartPowerCycle for turning the power off.
func (c *Controller) StartPowerOff(device string) error {
	return c.start(device, PowerTimeout, c.PowerOff)
}

func (c *Controller) start(device string, limit time.Duration, op func(context.Context, string) error) error {
	d, err := c.device(device)
	if err != nil {
		return err
	}
	if _, err := c.relayOf(d); err != nil {
		return err
	}
	select {
	case <-c.ctx.Done():
		return ErrShutdown
	default:
	}
	c.wg.Add(1)
	// Exits when the operation returns; Shutdown cancels c.ctx. The
	// relay queue does not count against limit: it starts when the board
	// is free (bmm/relay), so the caller's wait is bounded here only by
	// twice the limit.
	go func() {
		defer c.wg.Done()
		ctx, cancel := context.WithTimeout(c.ctx, 2*limit)
		defer cancel()
		_ = op(ctx, device)
	}()
	return nil
}

// SetPXE writes the device's PXE file from the named PXE config.
func (c *Controller) SetPXE(ctx context.Context, device, pxeConfig string) error {
	d, err := c.device(device)
	if err != nil {
		return err
	}
	if c.cfg.PXE == nil {
		return ErrNoPXE
	}
	var contents string
	var ok bool
	c.cfg.FSM.Read(func(s *fsm.State) {
		if pc, found := s.PXEConfigs[pxeConfig]; found {
			contents, ok = pc.Contents, true
		}
	})
	if !ok {
		return fmt.Errorf("%w: %q", fsm.ErrUnknownPXEConfig, pxeConfig)
	}
	ctx, cancel := context.WithTimeout(ctx, PXETimeout)
	defer cancel()
	err = c.cfg.PXE.Set(ctx, d.MAC, contents)
	return c.result(ctx, device, "bmm", "writing pxe config "+pxeConfig, err)
}

// ClearPXE removes the device's PXE file (absent is fine).
func (c *Controller) ClearPXE(ctx context.Context, device string) error {
	d, err := c.device(device)
	if err != nil {
		return err
	}
	if c.cfg.PXE == nil {
		return ErrNoPXE
	}
	ctx, cancel := context.WithTimeout(ctx, PXETimeout)
	defer cancel()
	return c.result(ctx, device, "bmm", "clearing pxe config", c.cfg.PXE.Clear(ctx, d.MAC))
}

// Ping reports whether the device answers.
func (c *Controller) Ping(ctx context.Context, device string) (bool, error) {
	d, err := c.device(device)
	if err != nil {
		return false, err
	}
	ctx, cancel := context.WithTimeout(ctx, PingTimeout)
	defer cancel()
	ok, err := c.cfg.Pinger.Ping(ctx, d.Address())
	if err != nil {
		c.log(ctx, device, "bmm", "ping %s failed: %v", d.Address(), err)
		return false, err
	}
	c.log(ctx, device, "bmm", "ping %s: %s", d.Address(), map[bool]string{true: "ok", false: "no answer"}[ok])
	return ok, nil
}

// SUTVerify checks that the device's SUT agent answers.
func (c *Controller) SUTVerify(ctx context.Context, device string) error {
	d, err := c.device(device)
	if err != nil {
		return err
	}
	c.log(ctx, device, "sut", "connecting to SUT agent at %s", d.Address())
	ctx, cancel := context.WithTimeout(ctx, SUTVerifyLimit)
	defer cancel()
	return c.result(ctx, device, "sut", "SUT agent verification", c.cfg.SUT.Verify(ctx, d.Address()))
}

// CheckSDCard has the SUT agent write and read back a file on the SD card.
func (c *Controller) CheckSDCard(ctx context.Context, device string) error {
	d, err := c.device(device)
	if err != nil {
		return err
	}
	c.log(ctx, device, "sut", "verifying SD card")
	ctx, cancel := context.WithTimeout(ctx, SDCardTestLimit)
	defer cancel()
	return c.result(ctx, device, "sut", "SD card check", c.cfg.SUT.CheckSDCard(ctx, d.Address()))
}

// TestRelayBoard runs the ProXR two-way communication test on a relay board
// this node owns.
func (c *Controller) TestRelayBoard(ctx context.Context, board string) (bool, error) {
	var rb fsm.RelayBoard
	var ok bool
	c.cfg.FSM.Read(func(s *fsm.State) {
		if p, found := s.RelayBoards[board]; found {
			rb, ok = *p, true
		}
	})
	if !ok {
		return false, fmt.Errorf("%w: %q", ErrUnknownBoard, board)
	}
	if rb.ImagingServer != c.cfg.Server {
		return false, fmt.Errorf("relay board %s: %w %q", board, ErrNotOwner, rb.ImagingServer)
	}
	ctx, cancel := context.WithTimeout(ctx, RelayTestLimit)
	defer cancel()
	if err := c.cfg.Relay.TestComms(ctx, rb.FQDN, rb.Port); err != nil {
		c.logger.Info("relay board test failed", "board", board, "error", err)
		return false, nil
	}
	return true, nil
}
