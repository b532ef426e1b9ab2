// Package testlog gives tests an hclog.Logger that writes through t.Log.
package testlog

import (
	"os"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// writer forwards to t.Log until the test's cleanup runs; libraries whose
// goroutines outlive Shutdown by a moment (memberlist's probes) would
// otherwise log after the test completed, which panics.
type writer struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

func (w *writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done && len(p) > 0 {
		w.t.Log(string(p[:len(p)-1]))
	}
	return len(p), nil
}

// New returns a logger that writes to t.Log at debug level (info level when
// MOZPOOL_TEST_QUIET is set).
func New(t testing.TB) hclog.Logger {
	w := &writer{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	level := hclog.Debug
	if os.Getenv("MOZPOOL_TEST_QUIET") != "" {
		level = hclog.Info
	}
	return hclog.New(&hclog.LoggerOptions{Name: "test", Level: level, Output: w})
}
