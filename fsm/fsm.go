package fsm

import (
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// Idempotency keys are remembered for this long (measured in command time)
// and at most this many at once.
const (
	idemTTL = 24 * time.Hour
	idemMax = 50000
)

// Notification tells local watchers what one Apply did. It is delivered
// synchronously on the Apply goroutine after the state lock is released, so
// watchers must not block.
type Notification struct {
	Index uint64
	Type  CommandType
	At    time.Time
	// Logs are the log lines the command produced.
	Logs []LogEntry
	// Devices names the devices whose record changed.
	Devices []string
}

// Config configures an FSM.
type Config struct {
	// Logger receives apply errors at debug level. Default: a null logger.
	Logger hclog.Logger
	// Notify, if set, is called after every applied command that logged
	// or changed something.
	Notify func(Notification)
}

// FSM is the replicated state machine. It implements raft.FSM.
type FSM struct {
	logger hclog.Logger
	notify func(Notification)

	// stateMu guards s. Apply and Restore take it for writing; readers
	// outside Raft (the HTTP API) take it for reading.
	stateMu sync.RWMutex
	s       *State

	applied atomic.Uint64
}

// New returns an FSM with an empty state.
func New(cfg Config) *FSM {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	return &FSM{logger: cfg.Logger, notify: cfg.Notify, s: newState()}
}

// Read calls fn with the current state under a read lock. fn must neither
// modify the state nor keep references to it after returning.
func (f *FSM) Read(fn func(s *State)) {
	f.stateMu.RLock()
	defer f.stateMu.RUnlock()
	fn(f.s)
}

// AppliedIndex is the index of the last log entry applied.
func (f *FSM) AppliedIndex() uint64 { return f.applied.Load() }

// Apply applies one committed log entry. It is deterministic: it reads no
// clock (commands carry the proposer's time), draws no random numbers and
// does no I/O, so every node that applies the same log holds the same state.
// It returns a Result; a domain error is returned inside the Result, never
// panicked. An entry that cannot be decoded, or has an unknown type without
// the IgnoreUnknown bit, means a corrupt or newer log and panics.
func (f *FSM) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return Result{}
	}
	return f.ApplyCommand(l.Index, l.Data)
}

// ApplyCommand is Apply without Raft: tests and recovery tools replay
// encoded commands through it.
func (f *FSM) ApplyCommand(index uint64, b []byte) Result {
	t, err := Decode(b, nil)
	if err != nil {
		panic(fmt.Sprintf("fsm: log entry %d: %v", index, err))
	}
	fn, ok := appliers[t&^IgnoreUnknown]
	if !ok {
		if t&IgnoreUnknown != 0 {
			f.logger.Warn("ignoring unknown command", "type", uint8(t), "index", index)
			f.applied.Store(index)
			return Result{}
		}
		panic(fmt.Sprintf("fsm: log entry %d: unknown command type %d", index, uint8(t)))
	}
	var h struct{ Header }
	if _, err := Decode(b, &h); err != nil {
		panic(fmt.Sprintf("fsm: log entry %d: %v", index, err))
	}

	f.stateMu.Lock()
	tx := &txn{s: f.s, index: index, at: h.At.UTC()}
	var res Result
	if e, ok := f.s.idem[h.IdempotencyKey]; ok && h.IdempotencyKey != "" {
		res = e.Result
	} else {
		v, err := fn(tx, b)
		res = makeResult(index, t, v, err)
		if h.IdempotencyKey != "" {
			f.s.rememberIdem(h.IdempotencyKey, tx.at, res)
		}
	}
	f.stateMu.Unlock()
	f.applied.Store(index)

	if res.Err != nil {
		f.logger.Debug("command refused", "type", t.String(), "index", index, "error", res.Err.Message)
	}
	if f.notify != nil && (len(tx.logs) > 0 || len(tx.devices) > 0) {
		f.notify(Notification{Index: index, Type: t, At: tx.at, Logs: tx.logs, Devices: tx.devices})
	}
	return res
}

func makeResult(index uint64, t CommandType, v any, err error) Result {
	if err != nil {
		return Result{Err: WireError(err)}
	}
	if v == nil {
		return Result{}
	}
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("fsm: log entry %d (%s): encode result: %v", index, t, err))
	}
	return Result{Value: b}
}

// rememberIdem records a keyed result and forgets keys older than idemTTL
// (in command time) or beyond idemMax, oldest first. Deterministic: it
// depends only on the commands applied.
func (s *State) rememberIdem(key string, at time.Time, res Result) {
	e := &idemEntry{Key: key, At: at, Result: res}
	s.idem[key] = e
	s.idemOrder = append(s.idemOrder, e)
	drop := 0
	for drop < len(s.idemOrder) {
		old := s.idemOrder[drop]
		if len(s.idemOrder)-drop <= idemMax && !old.At.Before(at.Add(-idemTTL)) {
			break
		}
		if s.idem[old.Key] == old {
			delete(s.idem, old.Key)
		}
		drop++
	}
	if drop > 0 {
		s.idemOrder = append([]*idemEntry(nil), s.idemOrder[drop:]...)
	}
}

// txn is the context of one Apply: the state it mutates and what it has to
// tell watchers afterwards.
type txn struct {
	s       *State
	index   uint64
	at      time.Time
	logs    []LogEntry
	devices []string
}

// decode unmarshals a command body. Failure means a corrupt log: panic.
func (tx *txn) decode(b []byte, v any) {
	if _, err := Decode(b, v); err != nil {
		panic(fmt.Sprintf("fsm: log entry %d: %v", tx.index, err))
	}
}

func (tx *txn) logDevice(name, source, format string, args ...any) {
	tx.logs = append(tx.logs, LogEntry{Kind: LogDevice, Name: name, At: tx.at, Source: source, Message: fmt.Sprintf(format, args...)})
}

func (tx *txn) touchDevice(name string) { tx.devices = append(tx.devices, name) }

// Snapshot captures the state. The state is encoded under the lock (a few
// MB for 10,000 devices) so that Persist needs no lock and no copy.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.stateMu.RLock()
	defer f.stateMu.RUnlock()
	b, err := encodeSnapshot(f.s)
	if err != nil {
		return nil, err
	}
	return &snapshot{data: b}, nil
}

// Restore replaces the whole state with the one in rc.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	s, err := decodeSnapshot(rc)
	if err != nil {
		return err
	}
	f.stateMu.Lock()
	f.s = s
	f.stateMu.Unlock()
	return nil
}

type snapshot struct{ data []byte }

func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s.data); err != nil {
		sink.Cancel()
		return fmt.Errorf("persist snapshot: %w", err)
	}
	return sink.Close()
}

func (s *snapshot) Release() {}
