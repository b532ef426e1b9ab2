package syslog

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mozpool/mozpool/fsm"
)

// loggerName is the name of the receiver's sub-logger.
const loggerName = "bmm.syslog"

// minMessage is the smallest MaxMessage allowed: room for a few characters
// and the ellipsis that marks a truncated message.
const minMessage = 16

// Config configures a Receiver. A zero field takes its default.
type Config struct {
	// Addr is the UDP address to listen on. Default: ":514", where boards
	// send, as in Mozpool. Tests use "127.0.0.1:0" and read the chosen port
	// from Receiver.Addr.
	Addr string
	// Server is this node's imaging server name. Only messages from its
	// own boards are filed. Required.
	Server string
	// FSM is the replicated state, read to find the board a message came
	// from. Required.
	FSM *fsm.FSM
	// Propose files entries through the cluster as fsm.LogAppend, so that
	// they are queryable on every node (cluster.Node.Apply). Required.
	Propose func(ctx context.Context, t fsm.CommandType, cmd fsm.Command) (fsm.Result, error)
	// FlushInterval is the longest a received message waits before it is
	// proposed. Default: 500 ms.
	FlushInterval time.Duration
	// MaxBatch is the largest number of entries in one LogAppend; a full
	// batch is proposed at once. Default: 256.
	MaxBatch int
	// QueueSize is how many entries may wait between the socket reader
	// and the flusher. When it is full (the cluster is slow or has no
	// leader), further messages are counted in Stats.Dropped rather than
	// block the reader. Default: 4096.
	QueueSize int
	// MaxMessage is the longest message kept, in bytes; a longer one is
	// cut at a character boundary and ends in "…". Default: 2048.
	MaxMessage int
	// Location is the time zone of RFC 3164 timestamps, which carry
	// none. Default: UTC.
	Location *time.Location
	// ProposeTimeout bounds one proposal. Default: 10 s.
	ProposeTimeout time.Duration
	// OnMessage, if set, is called with each message filed for a board
	// (its device, the message's time and text) on the reader's
	// goroutine: it must not block. Lifeguard reads boards' failures in
	// it (lifeguard.SyslogSignals).
	OnMessage func(device string, at time.Time, message string)
	// Logger receives dropped messages (debug, rate-limited) and failed
	// proposals (warn). Default: a null logger.
	Logger hclog.Logger
}

// DefaultConfig returns a Config with every default set; Server, FSM and
// Propose are left for the caller.
func DefaultConfig() Config {
	return Config{
		Addr:           ":514",
		FlushInterval:  500 * time.Millisecond,
		MaxBatch:       256,
		QueueSize:      4096,
		MaxMessage:     2048,
		Location:       time.UTC,
		ProposeTimeout: 10 * time.Second,
		Logger:         hclog.NewNullLogger(),
	}
}

// withDefaults returns c with each zero field set to its default.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Addr == "" {
		c.Addr = d.Addr
	}
	if c.FlushInterval == 0 {
		c.FlushInterval = d.FlushInterval
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = d.MaxBatch
	}
	if c.QueueSize == 0 {
		c.QueueSize = d.QueueSize
	}
	if c.MaxMessage == 0 {
		c.MaxMessage = d.MaxMessage
	}
	if c.Location == nil {
		c.Location = d.Location
	}
	if c.ProposeTimeout == 0 {
		c.ProposeTimeout = d.ProposeTimeout
	}
	if c.Logger == nil {
		c.Logger = d.Logger
	}
	return c
}

// Validate reports the first field that is missing or out of range.
func (c Config) Validate() error {
	switch {
	case c.Addr == "":
		return errors.New("syslog: Addr is required")
	case c.Server == "":
		return errors.New("syslog: Server is required")
	case c.FSM == nil:
		return errors.New("syslog: FSM is required")
	case c.Propose == nil:
		return errors.New("syslog: Propose is required")
	case c.FlushInterval <= 0:
		return fmt.Errorf("syslog: FlushInterval must be positive, got %s", c.FlushInterval)
	case c.MaxBatch < 1:
		return fmt.Errorf("syslog: MaxBatch must be at least 1, got %d", c.MaxBatch)
	case c.QueueSize < c.MaxBatch:
		return fmt.Errorf("syslog: QueueSize (%d) must be at least MaxBatch (%d)", c.QueueSize, c.MaxBatch)
	case c.MaxMessage < minMessage:
		return fmt.Errorf("syslog: MaxMessage must be at least %d bytes, got %d", minMessage, c.MaxMessage)
	case c.Location == nil:
		return errors.New("syslog: Location is required")
	case c.ProposeTimeout <= 0:
		return fmt.Errorf("syslog: ProposeTimeout must be positive, got %s", c.ProposeTimeout)
	case c.Logger == nil:
		return errors.New("syslog: Logger is required")
	}
	return nil
}
