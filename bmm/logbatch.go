package bmm

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mozpool/mozpool/fsm"
)

// Log lines of hardware actions are filed through the cluster in batches:
// one LogAppend proposal per flushInterval (or maxBatch lines) instead of
// one per line, so a rack busy power-cycling does not flood the log.
const (
	flushInterval = 100 * time.Millisecond
	maxBatch      = 256
	queueSize     = 8192
)

// logBatcher queues log entries and files them in batches.
type logBatcher struct {
	propose func(ctx context.Context, t fsm.CommandType, cmd fsm.Command) (fsm.Result, error)
	// fence returns the imaging server and the rack generations the
	// lines are filed under (nil: unfenced).
	fence  func() (string, map[string]uint64)
	logger hclog.Logger
	queue  chan fsm.LogEntry
	done   chan struct{}

	mu     sync.RWMutex // guards closed against add racing close
	closed bool
}

func newLogBatcher(propose func(context.Context, fsm.CommandType, fsm.Command) (fsm.Result, error), fence func() (string, map[string]uint64), logger hclog.Logger) *logBatcher {
	b := &logBatcher{propose: propose, fence: fence, logger: logger, queue: make(chan fsm.LogEntry, queueSize), done: make(chan struct{})}
	// Exits when close drains the queue.
	go b.run()
	return b
}

// add queues an entry; when the queue is full the line is kept in the node
// log only.
func (b *logBatcher) add(e fsm.LogEntry) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		b.logger.Debug("device log line after shutdown kept in the node log only", "device", e.Name, "message", e.Message)
		return
	}
	select {
	case b.queue <- e:
	default:
		b.logger.Warn("device log queue full; line kept in the node log only", "device", e.Name, "message", e.Message)
	}
}

// close files what is queued and stops the batcher; later lines stay in the
// node log. It can be called more than once.
func (b *logBatcher) close() {
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		close(b.queue)
	}
	b.mu.Unlock()
	<-b.done
}

func (b *logBatcher) run() {
	defer close(b.done)
	t := time.NewTicker(flushInterval)
	defer t.Stop()
	var batch []fsm.LogEntry
	flush := func() {
		if len(batch) == 0 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		cmd := &fsm.LogAppend{Entries: batch}
		if b.fence != nil {
			// Lines about boards this server no longer owns are dropped
			// by the FSM.
			cmd.Server, cmd.RackGenerations = b.fence()
		}
		res, err := b.propose(ctx, fsm.CmdLogAppend, cmd)
		cancel()
		if err == nil {
			err = res.Error()
		}
		if err != nil {
			b.logger.Warn("could not file device log lines", "lines", len(batch), "error", err)
		}
		batch = nil
	}
	for {
		select {
		case e, ok := <-b.queue:
			if !ok {
				flush()
				return
			}
			batch = append(batch, e)
			if len(batch) >= maxBatch {
				flush()
			}
		case <-t.C:
			flush()
		}
	}
}
