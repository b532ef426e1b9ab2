package logstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	bolt "go.etcd.io/bbolt"

	"github.com/mozpool/mozpool/fsm"
)

var (
	// ErrClosed is returned by every method called after Close.
	ErrClosed = errors.New("log store is closed")
	// ErrUnknownKind is returned for a kind other than fsm.LogDevice and
	// fsm.LogRequest.
	ErrUnknownKind = errors.New("unknown log kind")
	// ErrCorrupt is returned when a stored key or value cannot be decoded.
	ErrCorrupt = errors.New("corrupt log entry")
)

// lockTimeout is how long Open waits for another process to release the
// database file (for example a daemon that is still shutting down).
var lockTimeout = 5 * time.Second

// maxBatch is the most entries the writer commits in one transaction; more
// would hold the bolt write lock (and Sync callers) for long.
const maxBatch = 8192

var (
	metaBucket = []byte("meta")
	seqKey     = []byte("seq")
	// appliedKey holds the highest Raft log index whose lines are stored
	// (see AppendApplied).
	appliedKey = []byte("applied")
	kinds      = []string{fsm.LogDevice, fsm.LogRequest}
)

// Entry is one stored log line.
type Entry struct {
	// ID increases with every entry this store writes; ids are local to
	// the store and differ between nodes.
	ID      uint64    `json:"id"`
	At      time.Time `json:"at"`
	Source  string    `json:"source"`
	Message string    `json:"message"`
}

// Query selects entries of one device or request.
type Query struct {
	// Since, if not zero, drops entries with At before it.
	Since time.Time
	// Limit, if positive, keeps only the Limit newest entries.
	Limit int
}

// item is what Append and Sync queue for the writer: entries to write, or a
// channel to answer once everything queued before it is committed.
type item struct {
	entries []fsm.LogEntry
	events  []Event
	synced  chan error
	// index is the Raft log index the entries come from (0: none).
	index uint64
}

// Store is a node's local log store. Its methods are safe for concurrent use.
type Store struct {
	cfg    Config
	logger hclog.Logger
	db     *bolt.DB

	queue chan item
	stop  chan struct{} // closed by Close to stop the goroutines
	wg    sync.WaitGroup

	// mu guards closed. Every method holds it for reading while it uses
	// the queue or the db, so Close (which takes it for writing) cannot
	// close either under them.
	mu        sync.RWMutex
	closed    bool
	closeOnce sync.Once
	closeErr  error

	// nextID is the last id written; only the writer goroutine touches it
	// after Open.
	nextID uint64

	// pruned counts the entries Prune has deleted since Open.
	pruned atomic.Uint64
	// applied is the highest log index AppendApplied has taken (loaded
	// from appliedKey at Open).
	applied atomic.Uint64
}

// Open opens (or creates) the store at cfg.Path and starts its writer and
// pruner goroutines.
func Open(cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	db, err := bolt.Open(cfg.Path, 0o600, &bolt.Options{Timeout: lockTimeout})
	if err != nil {
		return nil, fmt.Errorf("open log store %s: %w", cfg.Path, err)
	}
	s := &Store{
		cfg:    cfg,
		logger: cfg.Logger.Named(loggerName),
		db:     db,
		queue:  make(chan item, cfg.QueueSize),
		stop:   make(chan struct{}),
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range append([]string{string(metaBucket), string(eventsBucket)}, kinds...) {
			if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
				return err
			}
		}
		if v := tx.Bucket(metaBucket).Get(seqKey); v != nil {
			if len(v) != 8 {
				return fmt.Errorf("%w: sequence of %d bytes", ErrCorrupt, len(v))
			}
			s.nextID = binary.BigEndian.Uint64(v)
		}
		if v := tx.Bucket(metaBucket).Get(appliedKey); len(v) == 8 {
			s.applied.Store(binary.BigEndian.Uint64(v))
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open log store %s: %w", cfg.Path, err)
	}

	s.wg.Add(2)
	// Exits when Close closes s.stop, after writing everything queued.
	go func() { defer s.wg.Done(); s.writer() }()
	// Exits when Close closes s.stop.
	go func() { defer s.wg.Done(); s.pruner() }()
	return s, nil
}

// enter takes the read lock unless the store is closed. Callers call leave
// when done.
func (s *Store) enter() error {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return ErrClosed
	}
	return nil
}

func (s *Store) leave() { s.mu.RUnlock() }

// Append queues entries for the writer and returns without waiting for the
// disk. Entries of an unknown kind or without a name are dropped with a
// warning; an entry with a zero At is stamped with the local time.
//
// When the queue is full, Append blocks until the writer has taken a batch
// rather than drop lines: the writer empties the queue in one transaction
// (milliseconds), and a stall here slows the FSM's apply loop, which is the
// back-pressure we want, instead of silently losing a device's history.
// After Close, Append drops the entries.
func (s *Store) Append(entries []fsm.LogEntry) { s.append(0, entries) }

// AppendApplied is Append for the lines of the Raft log entry at index,
// which the FSM has just applied. Lines of an entry at or below the
// highest index already taken are dropped: a restarted node applies again
// the entries after its last snapshot, whose lines it stored before it
// stopped, and would otherwise store them twice. The index is written
// with the lines, so lines queued but lost in a crash are stored when the
// entry is applied again.
func (s *Store) AppendApplied(index uint64, entries []fsm.LogEntry) {
	if index <= s.applied.Load() {
		return
	}
	s.applied.Store(index) // only the FSM's apply loop calls this
	s.append(index, entries)
}

func (s *Store) append(index uint64, entries []fsm.LogEntry) {
	if len(entries) == 0 {
		return
	}
	// Copy: the caller may reuse its slice once we return.
	es := make([]fsm.LogEntry, 0, len(entries))
	for _, e := range entries {
		if (e.Kind != fsm.LogDevice && e.Kind != fsm.LogRequest) || e.Name == "" {
			s.logger.Warn("dropping log entry", "kind", e.Kind, "name", e.Name)
			continue
		}
		if e.At.IsZero() {
			e.At = time.Now()
		}
		es = append(es, e)
	}
	if len(es) == 0 {
		return
	}
	if err := s.enter(); err != nil {
		s.logger.Warn("dropping log entries: store is closed", "count", len(es))
		return
	}
	defer s.leave()
	s.queue <- item{entries: es, index: index}
}

// Sync waits until everything appended before the call is on disk. It
// returns the error of the transaction that wrote the last of it, or
// ErrClosed.
func (s *Store) Sync() error {
	if err := s.enter(); err != nil {
		return err
	}
	ch := make(chan error, 1)
	s.queue <- item{synced: ch}
	s.leave()
	// The writer answers every queued item before it exits, so this
	// cannot hang even if Close runs meanwhile.
	return <-ch
}

// writer commits queued entries in batches until s.stop is closed, then
// writes what is left in the queue and returns.
func (s *Store) writer() {
	released := time.Now()
	var batch []fsm.LogEntry
	var events []Event
	var waiting []chan error
	var index uint64 // the highest log index in batch
	flush := func() {
		var err error
		if len(batch) > 0 || len(events) > 0 {
			if err = s.write(batch, events, index); err != nil {
				s.logger.Error("lost log entries", "count", len(batch), "events", len(events), "error", err)
			}
		}
		for _, ch := range waiting {
			ch <- err
		}
		batch, events, waiting, index = batch[:0], events[:0], waiting[:0], 0
		if time.Since(released) > releaseEvery {
			released = time.Now()
			if err := s.releaseMapped(); err != nil {
				s.logger.Debug("cannot release the mapped pages", "error", err)
			}
		}
	}
	take := func(it item) {
		batch = append(batch, it.entries...)
		events = append(events, it.events...)
		index = max(index, it.index)
		if it.synced != nil {
			waiting = append(waiting, it.synced)
		}
	}
	for {
		select {
		case it := <-s.queue:
			take(it)
			// Gather for FlushDelay, unless someone waits for a Sync or
			// the batch is full: one commit (one fsync) for all of it.
			var linger <-chan time.Time
			var timer *time.Timer
			if s.cfg.FlushDelay > 0 {
				timer = time.NewTimer(s.cfg.FlushDelay)
				linger = timer.C
			}
		gather:
			for len(batch) < maxBatch && len(waiting) == 0 {
				if linger == nil {
					select {
					case it := <-s.queue:
						take(it)
					default:
						break gather
					}
					continue
				}
				select {
				case it := <-s.queue:
					take(it)
				case <-linger:
					break gather
				case <-s.stop:
					break gather
				}
			}
			if timer != nil {
				timer.Stop()
			}
			flush()
		case <-s.stop:
			// Close holds no reader any more: nothing else can be
			// queued, so one pass empties the queue for good.
			for {
				select {
				case it := <-s.queue:
					take(it)
					if len(batch) >= maxBatch {
						flush()
					}
				default:
					flush()
					return
				}
			}
		}
	}
}

// releaseEvery is how often the writer lets go of the store's mapped pages
// (releaseMapped). Each write touches its device's pages and, copy on
// write, new ones: at 50,000 boards under health checks some 10 MB of
// pages a second, so the mapped part of RSS stays near 50 MB. Mapping a
// page again costs a minor fault.
const releaseEvery = 5 * time.Second

// releaseMapped drops the store's file pages from the process's page
// tables. bolt reads through a shared mapping of the whole file, so every
// page a write or a query has touched counts in the node's RSS: at 50,000
// boards a few hundred MB of log lines nobody reads, which made a node
// look twice its size to monitoring and to the OOM killer. The pages stay
// in the page cache; a later read maps them again. It runs in a read
// transaction, which keeps bolt from remapping the file meanwhile.
func (s *Store) releaseMapped() error {
	return s.db.View(func(tx *bolt.Tx) error {
		data, size := s.db.Info().Data, tx.Size()
		if data == 0 || size <= 0 {
			return nil
		}
		return madviseDontNeed(data, uintptr(size))
	})
}

// write stores one batch in a single transaction.
// write stores batch and events in a single transaction and, if index is
// not 0, records it as the highest log index whose lines are stored.
func (s *Store) write(batch []fsm.LogEntry, events []Event, index uint64) error {
	id := s.nextID
	err := s.db.Update(func(tx *bolt.Tx) error {
		if err := putEvents(tx, events); err != nil {
			return err
		}
		for _, e := range batch {
			nb, err := tx.Bucket([]byte(e.Kind)).CreateBucketIfNotExists([]byte(e.Name))
			if err != nil {
				return fmt.Errorf("%s %q: %w", e.Kind, e.Name, err)
			}
			id++
			if err := nb.Put(encodeKey(e.At, id), encodeValue(e.Source, e.Message)); err != nil {
				return fmt.Errorf("%s %q: %w", e.Kind, e.Name, err)
			}
		}
		if index > 0 {
			if err := tx.Bucket(metaBucket).Put(appliedKey, binary.BigEndian.AppendUint64(nil, index)); err != nil {
				return err
			}
		}
		return tx.Bucket(metaBucket).Put(seqKey, binary.BigEndian.AppendUint64(nil, id))
	})
	if err == nil {
		s.nextID = id
	}
	return err
}

// Query returns the entries of one device or request (kind is fsm.LogDevice
// or fsm.LogRequest) selected by q, oldest first. It first waits for the
// entries appended before the call to be written (Sync), so a log read right
// after a command was applied shows that command's lines.
func (s *Store) Query(kind, name string, q Query) ([]Entry, error) {
	if err := checkKind(kind); err != nil {
		return nil, err
	}
	if err := s.Sync(); err != nil {
		return nil, err
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()

	var lower []byte // first key to include; nil: from the start
	if !q.Since.IsZero() {
		lower = encodeKey(q.Since, 0)
	}
	var out []Entry
	err := s.db.View(func(tx *bolt.Tx) error {
		nb := tx.Bucket([]byte(kind)).Bucket([]byte(name))
		if nb == nil {
			return nil
		}
		c := nb.Cursor()
		add := func(k, v []byte) error {
			e, err := decodeEntry(k, v)
			if err != nil {
				return fmt.Errorf("%s %q: %w", kind, name, err)
			}
			out = append(out, e)
			return nil
		}
		if q.Limit <= 0 {
			k, v := c.First()
			if lower != nil {
				k, v = c.Seek(lower)
			}
			for ; k != nil; k, v = c.Next() {
				if err := add(k, v); err != nil {
					return err
				}
			}
			return nil
		}
		// Newest first from the end, then reverse.
		for k, v := c.Last(); k != nil && len(out) < q.Limit; k, v = c.Prev() {
			if lower != nil && bytes.Compare(k, lower) < 0 {
				break
			}
			if err := add(k, v); err != nil {
				return err
			}
		}
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// pruneChunk is the most keys Prune deletes in one transaction, so that a
// large prune does not hold the write lock against the writer for long.
const pruneChunk = 10000

// Prune deletes every entry with At before before, and the buckets of
// devices and requests left without entries. It returns how many entries it
// deleted.
func (s *Store) Prune(before time.Time) (int, error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.leave()

	limit := encodeKey(before, 0)
	total, err := s.pruneEvents(before)
	if err != nil {
		return total, err
	}
	for _, kind := range kinds {
		var names [][]byte
		err := s.db.View(func(tx *bolt.Tx) error {
			return tx.Bucket([]byte(kind)).ForEachBucket(func(k []byte) error {
				names = append(names, bytes.Clone(k))
				return nil
			})
		})
		if err != nil {
			return total, err
		}
		for _, name := range names {
			for {
				n, more, err := s.pruneChunk(kind, name, limit)
				total += n
				s.pruned.Add(uint64(n))
				if err != nil {
					return total, fmt.Errorf("prune %s %q: %w", kind, name, err)
				}
				if !more {
					break
				}
			}
		}
	}
	return total, nil
}

// pruneChunk deletes up to pruneChunk keys below limit from one name's
// bucket, and the bucket if that leaves it empty. more reports that keys
// below limit may remain.
func (s *Store) pruneChunk(kind string, name, limit []byte) (n int, more bool, err error) {
	err = s.db.Update(func(tx *bolt.Tx) error {
		kb := tx.Bucket([]byte(kind))
		nb := kb.Bucket(name)
		if nb == nil {
			return nil
		}
		var doomed [][]byte
		c := nb.Cursor()
		for k, _ := c.First(); k != nil && bytes.Compare(k, limit) < 0; k, _ = c.Next() {
			if len(doomed) == pruneChunk {
				more = true
				break
			}
			doomed = append(doomed, bytes.Clone(k))
		}
		for _, k := range doomed {
			if err := nb.Delete(k); err != nil {
				return err
			}
		}
		n = len(doomed)
		if k, _ := nb.Cursor().First(); k == nil {
			return kb.DeleteBucket(name)
		}
		return nil
	})
	if err != nil {
		return 0, false, err
	}
	return n, more, nil
}

// Pruned returns how many entries Prune has deleted since the store was
// opened (retention deletions).
func (s *Store) Pruned() uint64 { return s.pruned.Load() }

// Size returns the size of the database in bytes (0 once closed).
func (s *Store) Size() int64 {
	if err := s.enter(); err != nil {
		return 0
	}
	defer s.leave()
	var size int64
	s.db.View(func(tx *bolt.Tx) error { size = tx.Size(); return nil })
	return size
}

// DeleteName removes the whole log of one device or request, including
// entries appended before the call that were still queued.
func (s *Store) DeleteName(kind, name string) error {
	if err := checkKind(kind); err != nil {
		return err
	}
	if err := s.Sync(); err != nil {
		return err
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	return s.db.Update(func(tx *bolt.Tx) error {
		err := tx.Bucket([]byte(kind)).DeleteBucket([]byte(name))
		if errors.Is(err, bolt.ErrBucketNotFound) {
			return nil
		}
		return err
	})
}

// pruner prunes entries older than the retention every PruneInterval until
// s.stop is closed.
func (s *Store) pruner() {
	t := time.NewTicker(s.cfg.PruneInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case now := <-t.C:
			n, err := s.Prune(now.Add(-s.cfg.Retention))
			switch {
			case errors.Is(err, ErrClosed):
				return
			case err != nil:
				s.logger.Error("prune failed", "error", err)
			case n > 0:
				s.logger.Debug("pruned log entries", "count", n)
			}
		}
	}
}

// Close stops the store. In order, it:
//  1. waits for running calls and marks the store closed, so later calls
//     return ErrClosed (Append drops its entries);
//  2. stops the pruner and lets the writer commit everything queued;
//  3. closes the database.
//
// Close may be called more than once; later calls return the first one's
// error.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		close(s.stop)
		s.wg.Wait()
		s.closeErr = s.db.Close()
	})
	return s.closeErr
}

func checkKind(kind string) error {
	if kind != fsm.LogDevice && kind != fsm.LogRequest {
		return fmt.Errorf("%w: %q", ErrUnknownKind, kind)
	}
	return nil
}

// Times outside what int64 unix nanoseconds can hold (years 1678-2262) are
// clamped, so that the zero time sorts first rather than anywhere.
var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

// encodeKey is big-endian At (unix nanoseconds with the sign bit flipped, so
// that unsigned order is time order) followed by big-endian id.
func encodeKey(at time.Time, id uint64) []byte {
	var nanos int64
	switch {
	case at.Before(minTime):
		nanos = math.MinInt64
	case at.After(maxTime):
		nanos = math.MaxInt64
	default:
		nanos = at.UnixNano()
	}
	k := make([]byte, 16)
	binary.BigEndian.PutUint64(k, uint64(nanos)^(1<<63))
	binary.BigEndian.PutUint64(k[8:], id)
	return k
}

// encodeValue is uvarint len(source), source, message.
func encodeValue(source, message string) []byte {
	v := make([]byte, 0, binary.MaxVarintLen64+len(source)+len(message))
	v = binary.AppendUvarint(v, uint64(len(source)))
	v = append(v, source...)
	return append(v, message...)
}

func decodeEntry(k, v []byte) (Entry, error) {
	if len(k) != 16 {
		return Entry{}, fmt.Errorf("%w: key of %d bytes", ErrCorrupt, len(k))
	}
	n, w := binary.Uvarint(v)
	if w <= 0 || uint64(len(v)-w) < n {
		return Entry{}, fmt.Errorf("%w: bad value", ErrCorrupt)
	}
	return Entry{
		ID:      binary.BigEndian.Uint64(k[8:]),
		At:      time.Unix(0, int64(binary.BigEndian.Uint64(k)^(1<<63))).UTC(),
		Source:  string(v[w : w+int(n)]),
		Message: string(v[w+int(n):]),
	}, nil
}
