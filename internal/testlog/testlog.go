// Package testlog gives tests an hclog.Logger that writes through t.Log.
package testlog

import (
	"io"
	"testing"

	"github.com/hashicorp/go-hclog"
)

type writer struct{ t testing.TB }

func (w writer) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p[:len(p)-1]))
	return len(p), nil
}

// New returns a logger that writes to t.Log at debug level. Set
// MOZPOOL_TEST_QUIET=1 to silence it.
func New(t testing.TB) hclog.Logger {
	var out io.Writer = writer{t}
	return hclog.New(&hclog.LoggerOptions{Name: "test", Level: hclog.Debug, Output: out})
}
