// Package testwait holds the one way tests wait for an operation that must
// end by itself: with a deadline far beyond what the operation needs, so
// that a slow machine never fails the test, while an operation that hangs
// (waits out a minute-long timeout it should have cut short, ignores a
// cancellation) still does.
package testwait

import (
	"testing"
	"time"
)

// Within runs op and returns its error. It fails the test, saying why op
// was expected to return, if op has not returned within d. The goroutine
// running op exits when op returns; if that is after d, the test has
// already failed.
func Within(t testing.TB, d time.Duration, why string, op func() error) error {
	t.Helper()
	errc := make(chan error, 1)
	go func() { errc <- op() }()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case err := <-errc:
		return err
	case <-timer.C:
		t.Fatalf("still running after %s: %s", d, why)
		return nil
	}
}
