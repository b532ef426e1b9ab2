package logstore

import (
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"
)

// loggerName is the name of this package's sub-logger.
const loggerName = "logstore"

// Config configures a Store.
type Config struct {
	// Path is the bbolt database file; it is created if missing. Required.
	Path string
	// Retention is how long entries are kept; older ones are pruned.
	// Default: 14 days.
	Retention time.Duration
	// PruneInterval is how often the store prunes entries older than
	// Retention. Default: 1 hour.
	PruneInterval time.Duration
	// QueueSize is how many Append calls may wait for the writer before
	// Append blocks. Default: 4096.
	QueueSize int
	// FlushDelay is how long the writer gathers entries before it commits
	// them (each commit is one fsync, on the disk the Raft log uses too);
	// a Sync commits at once. Entries become visible to queries up to
	// that much later. Default: 100 ms; 0 commits as soon as entries come.
	FlushDelay time.Duration
	// Logger receives write and prune errors. Default: a null logger.
	Logger hclog.Logger
}

// DefaultConfig returns a Config with every default set except Path.
func DefaultConfig() Config {
	return Config{
		Retention:     14 * 24 * time.Hour,
		PruneInterval: time.Hour,
		QueueSize:     4096,
		FlushDelay:    100 * time.Millisecond,
		Logger:        hclog.NewNullLogger(),
	}
}

// Validate reports the first field that is missing or out of range.
func (c Config) Validate() error {
	switch {
	case c.Path == "":
		return errors.New("logstore: Path is required")
	case c.Retention <= 0:
		return fmt.Errorf("logstore: Retention must be positive, got %s", c.Retention)
	case c.PruneInterval <= 0:
		return fmt.Errorf("logstore: PruneInterval must be positive, got %s", c.PruneInterval)
	case c.PruneInterval > c.Retention:
		return fmt.Errorf("logstore: PruneInterval (%s) must not exceed Retention (%s)", c.PruneInterval, c.Retention)
	case c.FlushDelay < 0:
		return fmt.Errorf("logstore: FlushDelay must not be negative, got %s", c.FlushDelay)
	case c.QueueSize <= 0:
		return fmt.Errorf("logstore: QueueSize must be positive, got %d", c.QueueSize)
	case c.Logger == nil:
		return errors.New("logstore: Logger is required")
	}
	return nil
}
