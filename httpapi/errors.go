package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/mozpool/mozpool/bmm"
	"github.com/mozpool/mozpool/cluster"
	"github.com/mozpool/mozpool/fsm"
)

var (
	// errNotFound: no route matches the path (or a list route was given
	// another name).
	errNotFound = errors.New("not found")
	// errMethodNotAllowed: the path exists but not for this method.
	errMethodNotAllowed = errors.New("method not allowed")
	// errBodyTooLarge: the request body exceeds the route's limit.
	errBodyTooLarge = errors.New("request body too large")
	// errInternal: a handler panicked.
	errInternal = errors.New("internal server error")
	// errUnknownBoard: no relay board has the name (alias of bmm's).
	errUnknownBoard = bmm.ErrUnknownBoard
)

// badRequest is a client error in the request itself: malformed JSON, a
// missing or mistyped field, a bad query parameter.
type badRequest struct{ msg string }

func (e *badRequest) Error() string { return e.msg }

// badRequestf returns a *badRequest with a formatted message.
func badRequestf(format string, args ...any) error {
	return &badRequest{msg: fmt.Sprintf(format, args...)}
}

// statusFor is the one place that maps an error to an HTTP status code.
func statusFor(err error) int {
	var br *badRequest
	switch {
	case errors.As(err, &br),
		errors.Is(err, fsm.ErrInvalid),
		errors.Is(err, cluster.ErrBadJoin),
		errors.Is(err, cluster.ErrBadBackup):
		return http.StatusBadRequest
	case errors.Is(err, cluster.ErrUnauthorized),
		errors.Is(err, errUnauthenticated):
		return http.StatusUnauthorized
	case errors.Is(err, errForbidden),
		errors.Is(err, fsm.ErrForbidden):
		return http.StatusForbidden
	case errors.Is(err, errNotFound),
		errors.Is(err, fsm.ErrUnknownDevice),
		errors.Is(err, fsm.ErrUnknownImage),
		errors.Is(err, fsm.ErrUnknownPXEConfig),
		errors.Is(err, fsm.ErrUnknownHardwareType),
		errors.Is(err, fsm.ErrUnknownServer),
		errors.Is(err, fsm.ErrUnknownRequest),
		errors.Is(err, fsm.ErrUnknownToken),
		errors.Is(err, fsm.ErrUnknownRack),
		errors.Is(err, errUnknownBoard),
		errors.Is(err, cluster.ErrUnknownNode):
		return http.StatusNotFound
	case errors.Is(err, errMethodNotAllowed):
		return http.StatusMethodNotAllowed
	case errors.Is(err, bmm.ErrNoPowerControl):
		return http.StatusConflict
	case errors.Is(err, errOwnerUnreachable):
		return http.StatusBadGateway
	case errors.Is(err, errCatchingUp),
		errors.Is(err, errNotServing),
		errors.Is(err, errIndexNotReached),
		errors.Is(err, errNoHardware),
		errors.Is(err, errNoOwnerNode),
		errors.Is(err, bmm.ErrNoPXE),
		errors.Is(err, bmm.ErrNotOwner),
		errors.Is(err, bmm.ErrShutdown):
		return http.StatusServiceUnavailable
	case errors.Is(err, fsm.ErrExists),
		errors.Is(err, fsm.ErrConflict),
		errors.Is(err, fsm.ErrFenced),
		errors.Is(err, fsm.ErrTooManyChanges):
		return http.StatusConflict
	case errors.Is(err, errBodyTooLarge):
		return http.StatusRequestEntityTooLarge
	// Transient: the client should retry (writeError adds Retry-After).
	// A cancelled or timed-out request context lands here too, so a
	// client hanging up is not logged as a server error.
	case errors.Is(err, cluster.ErrNoLeader),
		errors.Is(err, cluster.ErrNotLeader),
		errors.Is(err, cluster.ErrShutdown),
		errors.Is(err, cluster.ErrTransferTimeout),
		errors.Is(err, context.Canceled),
		errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}
