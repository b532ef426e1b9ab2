package logstore

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/mozpool/mozpool/fsm"
	"github.com/mozpool/mozpool/internal/testlog"
)

var t0 = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)

// testConfig returns a config for a store in a fresh temporary directory.
func testConfig(t testing.TB) Config {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Path = filepath.Join(t.TempDir(), "logs.db")
	cfg.Logger = testlog.New(t)
	return cfg
}

// openStore opens a store that is closed when the test ends.
func openStore(t testing.TB, cfg Config) *Store {
	t.Helper()
	s, err := Open(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}

func devLog(name string, at time.Time, msg string) fsm.LogEntry {
	return fsm.LogEntry{Kind: fsm.LogDevice, Name: name, At: at, Source: "test", Message: msg}
}

// query runs a query that must succeed.
func query(t *testing.T, s *Store, kind, name string, q Query) []Entry {
	t.Helper()
	es, err := s.Query(kind, name, q)
	require.NoError(t, err)
	return es
}

// messages returns the messages of es in order.
func messages(es []Entry) []string {
	out := []string{}
	for _, e := range es {
		out = append(out, e.Message)
	}
	return out
}

func TestAppendQuery(t *testing.T) {
	s := openStore(t, testConfig(t))
	s.Append([]fsm.LogEntry{
		devLog("panda-0001", t0.Add(2*time.Second), "third"),
		devLog("panda-0001", t0, "first"),
		devLog("panda-0002", t0, "other device"),
		{Kind: fsm.LogRequest, Name: "panda-0001", At: t0, Source: "api", Message: "a request with the same name"},
	})
	s.Append([]fsm.LogEntry{devLog("panda-0001", t0.Add(time.Second), "second")})
	require.NoError(t, s.Sync())

	got := query(t, s, fsm.LogDevice, "panda-0001", Query{})
	require.Equal(t, []string{"first", "second", "third"}, messages(got))
	require.Equal(t, Entry{ID: 2, At: t0, Source: "test", Message: "first"}, got[0])
	require.Equal(t, uint64(5), got[1].ID, "ids follow append order")
	require.Equal(t, uint64(1), got[2].ID)

	require.Equal(t, []string{"other device"}, messages(query(t, s, fsm.LogDevice, "panda-0002", Query{})))
	require.Equal(t, []string{"a request with the same name"}, messages(query(t, s, fsm.LogRequest, "panda-0001", Query{})))
	require.Empty(t, query(t, s, fsm.LogDevice, "panda-9999", Query{}))

	// Equal times keep append order.
	s.Append([]fsm.LogEntry{devLog("panda-0003", t0, "a"), devLog("panda-0003", t0, "b")})
	s.Append([]fsm.LogEntry{devLog("panda-0003", t0, "c")})
	require.NoError(t, s.Sync())
	require.Equal(t, []string{"a", "b", "c"}, messages(query(t, s, fsm.LogDevice, "panda-0003", Query{})))

	_, err := s.Query("server", "x", Query{})
	require.ErrorIs(t, err, ErrUnknownKind)
}

func TestQuery_SinceLimit(t *testing.T) {
	s := openStore(t, testConfig(t))
	var es []fsm.LogEntry
	for i := range 10 {
		es = append(es, devLog("panda-0001", t0.Add(time.Duration(i)*time.Minute), fmt.Sprint(i)))
	}
	s.Append(es)
	require.NoError(t, s.Sync())

	tests := []struct {
		name string
		q    Query
		want []string
	}{
		{"all", Query{}, []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}},
		{"limit returns the newest, oldest first", Query{Limit: 3}, []string{"7", "8", "9"}},
		{"limit above count", Query{Limit: 100}, []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}},
		{"since is inclusive", Query{Since: t0.Add(7 * time.Minute)}, []string{"7", "8", "9"}},
		{"since between entries", Query{Since: t0.Add(6*time.Minute + time.Second)}, []string{"7", "8", "9"}},
		{"since before all", Query{Since: t0.Add(-time.Hour)}, []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}},
		{"since after all", Query{Since: t0.Add(time.Hour)}, []string{}},
		{"since and limit, limit binds", Query{Since: t0.Add(2 * time.Minute), Limit: 2}, []string{"8", "9"}},
		{"since and limit, since binds", Query{Since: t0.Add(8 * time.Minute), Limit: 5}, []string{"8", "9"}},
		{"since in another zone", Query{Since: t0.Add(8 * time.Minute).In(time.FixedZone("x", 3600))}, []string{"8", "9"}},
		{"since before 1970", Query{Since: time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)}, []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := query(t, s, fsm.LogDevice, "panda-0001", tc.q)
			require.Equal(t, tc.want, messages(got), "Query(%+v)", tc.q)
			for _, e := range got {
				require.Equal(t, time.UTC, e.At.Location())
			}
		})
	}
}

func TestAppend_Filters(t *testing.T) {
	s := openStore(t, testConfig(t))
	before := time.Now()
	in := []fsm.LogEntry{
		{Kind: "server", Name: "x", At: t0, Message: "unknown kind"},
		{Kind: fsm.LogDevice, At: t0, Message: "no name"},
		{Kind: fsm.LogDevice, Name: "panda-0001", Message: "no time"},
	}
	s.Append(in)
	s.Append(nil)
	require.NoError(t, s.Sync())

	got := query(t, s, fsm.LogDevice, "panda-0001", Query{})
	require.Equal(t, []string{"no time"}, messages(got))
	require.False(t, got[0].At.Before(before.Truncate(time.Nanosecond).UTC()), "a zero time is stamped with the local time")
	require.True(t, in[2].At.IsZero(), "Append changed the caller's slice")
}

func TestPrune(t *testing.T) {
	s := openStore(t, testConfig(t))
	s.Append([]fsm.LogEntry{
		devLog("panda-0001", t0.Add(-2*time.Hour), "old"),
		devLog("panda-0001", t0, "new"),
		devLog("panda-0002", t0.Add(-3*time.Hour), "old, alone"),
		{Kind: fsm.LogRequest, Name: "17", At: t0.Add(-time.Hour - time.Nanosecond), Source: "x", Message: "old request"},
		{Kind: fsm.LogRequest, Name: "18", At: t0.Add(-time.Hour), Source: "x", Message: "exactly at the limit"},
	})
	require.NoError(t, s.Sync())

	require.Zero(t, s.Pruned())
	require.Positive(t, s.Size())
	n, err := s.Prune(t0.Add(-time.Hour))
	require.NoError(t, err)
	require.Equal(t, 3, n)
	require.Equal(t, uint64(3), s.Pruned(), "retention deletions are counted")
	require.Equal(t, []string{"new"}, messages(query(t, s, fsm.LogDevice, "panda-0001", Query{})))
	require.Empty(t, query(t, s, fsm.LogDevice, "panda-0002", Query{}))
	require.Empty(t, query(t, s, fsm.LogRequest, "17", Query{}))
	require.Equal(t, []string{"exactly at the limit"}, messages(query(t, s, fsm.LogRequest, "18", Query{})))
	require.Equal(t, []string{"panda-0001"}, bucketNames(t, s, fsm.LogDevice), "empty buckets are deleted")
	require.Equal(t, []string{"18"}, bucketNames(t, s, fsm.LogRequest))

	n, err = s.Prune(t0.Add(-time.Hour))
	require.NoError(t, err)
	require.Zero(t, n)
	n, err = s.Prune(time.Time{})
	require.NoError(t, err)
	require.Zero(t, n, "the zero time is before everything")
}

func TestPrune_ManyChunks(t *testing.T) {
	s := openStore(t, testConfig(t))
	const n = 2*pruneChunk + 17
	es := make([]fsm.LogEntry, 0, n)
	for i := range n {
		es = append(es, devLog("panda-0001", t0.Add(time.Duration(i)*time.Millisecond), "x"))
	}
	s.Append(es)
	s.Append([]fsm.LogEntry{devLog("panda-0001", t0.Add(time.Hour), "kept")})
	require.NoError(t, s.Sync())

	got, err := s.Prune(t0.Add(time.Minute))
	require.NoError(t, err)
	require.Equal(t, n, got)
	require.Equal(t, []string{"kept"}, messages(query(t, s, fsm.LogDevice, "panda-0001", Query{})))
}

// bucketNames lists the nested buckets of one kind.
func bucketNames(t *testing.T, s *Store, kind string) []string {
	t.Helper()
	names := []string{}
	require.NoError(t, s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(kind)).ForEachBucket(func(k []byte) error {
			names = append(names, string(k))
			return nil
		})
	}))
	return names
}

func TestPrune_Background(t *testing.T) {
	cfg := testConfig(t)
	cfg.Retention = time.Hour
	cfg.PruneInterval = 10 * time.Millisecond
	s := openStore(t, cfg)
	now := time.Now()
	s.Append([]fsm.LogEntry{devLog("panda-0001", now.Add(-2*time.Hour), "old"), devLog("panda-0001", now, "new")})
	require.NoError(t, s.Sync())

	require.Eventually(t, func() bool {
		es, err := s.Query(fsm.LogDevice, "panda-0001", Query{})
		return err == nil && len(es) == 1 && es[0].Message == "new"
	}, 5*time.Second, 10*time.Millisecond)
}

func TestDeleteName(t *testing.T) {
	s := openStore(t, testConfig(t))
	s.Append([]fsm.LogEntry{devLog("panda-0001", t0, "a"), devLog("panda-0002", t0, "b")})
	// No Sync: DeleteName must also remove what is still queued.
	s.Append([]fsm.LogEntry{devLog("panda-0001", t0, "queued")})
	require.NoError(t, s.DeleteName(fsm.LogDevice, "panda-0001"))
	require.Empty(t, query(t, s, fsm.LogDevice, "panda-0001", Query{}))
	require.Equal(t, []string{"b"}, messages(query(t, s, fsm.LogDevice, "panda-0002", Query{})))
	require.Equal(t, []string{"panda-0002"}, bucketNames(t, s, fsm.LogDevice))

	require.NoError(t, s.DeleteName(fsm.LogDevice, "panda-0001"), "deleting a missing log is not an error")
	require.ErrorIs(t, s.DeleteName("server", "x"), ErrUnknownKind)

	// A deleted log starts afresh.
	s.Append([]fsm.LogEntry{devLog("panda-0001", t0, "again")})
	require.NoError(t, s.Sync())
	require.Equal(t, []string{"again"}, messages(query(t, s, fsm.LogDevice, "panda-0001", Query{})))
}

func TestReopen(t *testing.T) {
	cfg := testConfig(t)
	s, err := Open(cfg)
	require.NoError(t, err)
	var es []fsm.LogEntry
	for i := range 100 {
		es = append(es, devLog("panda-0001", t0.Add(time.Duration(i)*time.Second), fmt.Sprint(i)))
	}
	s.Append(es)
	// No Sync: Close must write what is queued.
	require.NoError(t, s.Close())

	s = openStore(t, cfg)
	got := query(t, s, fsm.LogDevice, "panda-0001", Query{})
	require.Len(t, got, 100)
	require.Equal(t, "0", got[0].Message)
	require.Equal(t, uint64(100), got[99].ID)

	// Ids keep increasing across a reopen.
	s.Append([]fsm.LogEntry{devLog("panda-0001", t0, "after reopen")})
	require.NoError(t, s.Sync())
	got = query(t, s, fsm.LogDevice, "panda-0001", Query{Limit: 1, Since: t0})
	require.Len(t, got, 1)
	got = query(t, s, fsm.LogDevice, "panda-0001", Query{})
	var last Entry
	for _, e := range got {
		if e.Message == "after reopen" {
			last = e
		}
	}
	require.Equal(t, uint64(101), last.ID)
}

// TestFlushDelay: appended entries are gathered for FlushDelay into one
// commit; a Sync (every Query starts with one) commits them at once.
func TestFlushDelay(t *testing.T) {
	cfg := testConfig(t)
	cfg.FlushDelay = time.Hour
	s := openStore(t, cfg)
	s.Append([]fsm.LogEntry{devLog("panda-0001", t0, "one")})
	s.Append([]fsm.LogEntry{devLog("panda-0001", t0.Add(time.Second), "two")})
	stored := func() (n int) {
		require.NoError(t, s.db.View(func(tx *bolt.Tx) error {
			if b := tx.Bucket([]byte(fsm.LogDevice)).Bucket([]byte("panda-0001")); b != nil {
				n = b.Stats().KeyN
			}
			return nil
		}))
		return n
	}
	require.Zero(t, stored(), "still gathering")
	require.Equal(t, []string{"one", "two"}, messages(query(t, s, fsm.LogDevice, "panda-0001", Query{})))
	require.Equal(t, 2, stored())

	cfg.FlushDelay = -time.Second
	_, err := Open(cfg)
	require.ErrorContains(t, err, "FlushDelay")
}

func TestConcurrentAppend(t *testing.T) {
	cfg := testConfig(t)
	cfg.QueueSize = 2 // so that Append has to wait for the writer
	s := openStore(t, cfg)

	const writers, perWriter = 8, 300
	var wg sync.WaitGroup
	errs := make([]error, writers) // require may not fail from another goroutine
	for w := range writers {
		wg.Add(1)
		// Exits after appending its entries.
		go func() {
			defer wg.Done()
			for i := range perWriter {
				s.Append([]fsm.LogEntry{devLog(fmt.Sprintf("panda-%04d", w), t0, fmt.Sprintf("%d", i))})
				if i%100 == 0 {
					_, err := s.Query(fsm.LogDevice, fmt.Sprintf("panda-%04d", w), Query{Limit: 10})
					errs[w] = errors.Join(errs[w], s.Sync(), err)
				}
			}
		}()
	}
	wg.Wait()
	require.NoError(t, errors.Join(errs...))
	require.NoError(t, s.Sync())

	ids := map[uint64]bool{}
	for w := range writers {
		got := query(t, s, fsm.LogDevice, fmt.Sprintf("panda-%04d", w), Query{})
		require.Len(t, got, perWriter)
		for i, e := range got {
			// Same time: the order is the id order, which is each
			// writer's append order.
			require.Equal(t, fmt.Sprint(i), e.Message)
			require.False(t, ids[e.ID], "id %d given twice", e.ID)
			ids[e.ID] = true
		}
	}
	require.Len(t, ids, writers*perWriter)
}

func TestClose(t *testing.T) {
	s, err := Open(testConfig(t))
	require.NoError(t, err)
	s.Append([]fsm.LogEntry{devLog("panda-0001", t0, "a")})
	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "Close is idempotent")

	// Everything after Close fails cleanly; Append drops.
	s.Append([]fsm.LogEntry{devLog("panda-0001", t0, "b")})
	require.ErrorIs(t, s.Sync(), ErrClosed)
	_, err = s.Query(fsm.LogDevice, "panda-0001", Query{})
	require.ErrorIs(t, err, ErrClosed)
	_, err = s.Prune(t0)
	require.ErrorIs(t, err, ErrClosed)
	require.ErrorIs(t, s.DeleteName(fsm.LogDevice, "panda-0001"), ErrClosed)
}

func TestClose_Concurrent(t *testing.T) {
	cfg := testConfig(t)
	cfg.QueueSize = 1
	s, err := Open(cfg)
	require.NoError(t, err)

	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		// Exits after its appends; those after Close are dropped.
		go func() {
			defer wg.Done()
			for i := range 200 {
				s.Append([]fsm.LogEntry{devLog(fmt.Sprint(w), t0, fmt.Sprint(i))})
				_ = s.Sync() // nil or ErrClosed, never a hang
			}
		}()
	}
	var closeErrs [3]error
	for i := range closeErrs {
		wg.Add(1)
		// Exits when Close returns.
		go func() { defer wg.Done(); closeErrs[i] = s.Close() }()
	}
	wg.Wait()
	require.Equal(t, [3]error{}, closeErrs)

	// Whatever was accepted before Close is on disk, in order.
	s = openStore(t, cfg)
	for w := range 4 {
		for i, e := range query(t, s, fsm.LogDevice, fmt.Sprint(w), Query{}) {
			require.Equal(t, fmt.Sprint(i), e.Message)
		}
	}
}

func TestOpen_Locked(t *testing.T) {
	cfg := testConfig(t)
	openStore(t, cfg)
	defer func(d time.Duration) { lockTimeout = d }(lockTimeout)
	lockTimeout = 50 * time.Millisecond
	// The second open must fail rather than share the file.
	_, err := Open(cfg)
	require.Error(t, err)
}

func TestConfig_Validate(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(c *Config)
		wantErr bool
	}{
		{"default with path", func(c *Config) {}, false},
		{"no path", func(c *Config) { c.Path = "" }, true},
		{"zero retention", func(c *Config) { c.Retention = 0 }, true},
		{"zero prune interval", func(c *Config) { c.PruneInterval = 0 }, true},
		{"prune interval above retention", func(c *Config) { c.Retention = time.Minute }, true},
		{"zero queue", func(c *Config) { c.QueueSize = 0 }, true},
		{"no logger", func(c *Config) { c.Logger = nil }, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			c.Path = "logs.db"
			tc.edit(&c)
			err := c.Validate()
			if tc.wantErr {
				require.Error(t, err)
				_, oerr := Open(c)
				require.Error(t, oerr)
			} else {
				require.NoError(t, err)
			}
		})
	}
	require.Equal(t, 14*24*time.Hour, DefaultConfig().Retention)
}

func TestKeyOrder(t *testing.T) {
	times := []time.Time{
		{}, // clamped to the earliest key
		time.Date(1969, 12, 31, 23, 59, 59, 0, time.UTC),
		time.Unix(0, 0),
		t0,
		t0.Add(time.Nanosecond),
		time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	for i := 1; i < len(times); i++ {
		a, b := encodeKey(times[i-1], 99), encodeKey(times[i], 1)
		require.Negative(t, bytes.Compare(a, b), "key(%s) < key(%s)", times[i-1], times[i])
	}
	e, err := decodeEntry(encodeKey(t0, 7), encodeValue("src", "msg"))
	require.NoError(t, err)
	require.Equal(t, Entry{ID: 7, At: t0, Source: "src", Message: "msg"}, e)

	_, err = decodeEntry([]byte("short"), nil)
	require.ErrorIs(t, err, ErrCorrupt)
	_, err = decodeEntry(encodeKey(t0, 1), []byte{10, 'x'})
	require.ErrorIs(t, err, ErrCorrupt)
}

// BenchmarkAppend measures entries per second through Append and the
// writer, one entry per Append as the FSM's notifications mostly are.
func BenchmarkAppend(b *testing.B) {
	s := openStore(b, testConfig(b))
	entries := make([][]fsm.LogEntry, 64)
	for i := range entries {
		entries[i] = []fsm.LogEntry{devLog(fmt.Sprintf("panda-%04d", i), t0, "a typical log line of moderate length")}
	}
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		entries[i%len(entries)][0].At = t0.Add(time.Duration(i))
		s.Append(entries[i%len(entries)])
	}
	require.NoError(b, s.Sync())
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "entries/s")
}

// The lines of a log entry are stored once: a restarted node that applies
// again the entries after its last snapshot does not store their lines a
// second time, across a reopen too; a later entry's lines are stored.
func TestAppendApplied_OncePerEntry(t *testing.T) {
	cfg := testConfig(t)
	s, err := Open(cfg)
	require.NoError(t, err)
	s.AppendApplied(5, []fsm.LogEntry{devLog("panda-0001", t0, "five")})
	s.AppendApplied(6, []fsm.LogEntry{devLog("panda-0001", t0.Add(time.Second), "six")})
	s.AppendApplied(6, []fsm.LogEntry{devLog("panda-0001", t0.Add(time.Second), "six")})
	require.NoError(t, s.Close())

	s = openStore(t, cfg)
	// The replay after a restart.
	s.AppendApplied(5, []fsm.LogEntry{devLog("panda-0001", t0, "five")})
	s.AppendApplied(6, []fsm.LogEntry{devLog("panda-0001", t0.Add(time.Second), "six")})
	s.AppendApplied(7, []fsm.LogEntry{devLog("panda-0001", t0.Add(2*time.Second), "seven")})
	// Lines that come from no log entry are always stored.
	s.Append([]fsm.LogEntry{devLog("panda-0001", t0.Add(3*time.Second), "local")})
	require.Equal(t, []string{"five", "six", "seven", "local"}, messages(query(t, s, fsm.LogDevice, "panda-0001", Query{})))
}

// TestReleaseMapped checks that letting go of the mapped pages loses
// nothing: every line reads back the same, and later writes land.
func TestReleaseMapped(t *testing.T) {
	s := openStore(t, testConfig(t))
	var es []fsm.LogEntry
	for i := range 2000 {
		es = append(es, devLog(fmt.Sprintf("panda-%04d", i%50), t0.Add(time.Duration(i)*time.Second), fmt.Sprint("line ", i)))
	}
	s.Append(es)
	require.NoError(t, s.Sync())
	before := query(t, s, fsm.LogDevice, "panda-0007", Query{})
	require.Len(t, before, 40)

	require.NoError(t, s.releaseMapped())
	require.Equal(t, before, query(t, s, fsm.LogDevice, "panda-0007", Query{}))
	s.Append([]fsm.LogEntry{devLog("panda-0007", t0.Add(time.Hour), "after")})
	require.NoError(t, s.Sync())
	require.NoError(t, s.releaseMapped())
	got := query(t, s, fsm.LogDevice, "panda-0007", Query{})
	require.Len(t, got, 41)
	require.Equal(t, "after", got[40].Message)
}
