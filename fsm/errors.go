package fsm

import (
	"encoding/json"
	"errors"
)

// Domain errors returned as the result of Apply (never panicked). Each has a
// stable code so that a result forwarded from the leader keeps its identity:
// errors.Is works on both sides of the wire.
var (
	// ErrUnknownDevice: no device has the given name.
	ErrUnknownDevice = errors.New("unknown device")
	// ErrUnknownImage: no image has the given name.
	ErrUnknownImage = errors.New("unknown image")
	// ErrUnknownPXEConfig: no PXE config has the given name.
	ErrUnknownPXEConfig = errors.New("unknown pxe config")
	// ErrUnknownHardwareType: no hardware type has the given type and model.
	ErrUnknownHardwareType = errors.New("unknown hardware type")
	// ErrUnknownServer: no imaging server or node has the given name or id.
	ErrUnknownServer = errors.New("unknown imaging server")
	// ErrUnknownRequest: no request has the given id.
	ErrUnknownRequest = errors.New("unknown request")
	// ErrForbidden: the caller may not act on the entity (a request
	// another identity owns).
	ErrForbidden = errors.New("forbidden")
	// ErrUnknownRack: no rack has the given name.
	ErrUnknownRack = errors.New("unknown rack")
	// ErrFenced: an imaging server proposed a command about a board
	// whose rack it does not own, or under an ownership generation that
	// has passed (see Fence).
	ErrFenced = errors.New("fenced")
	// ErrUnknownToken: no API token has the given name.
	ErrUnknownToken = errors.New("unknown token")
	// ErrInvalid: the command's content is not acceptable (bad name, MAC…).
	ErrInvalid = errors.New("invalid")
	// ErrExists: an add named an entity that already exists.
	ErrExists = errors.New("already exists")
	// ErrConflict: the state differs from what the command expected.
	ErrConflict = errors.New("conflict")
	// ErrTooManyChanges: an inventory sync would change more devices than
	// the safety valve allows without ShipIt.
	ErrTooManyChanges = errors.New("too many changes")
)

var errorCodes = map[string]error{
	"unknown_device":        ErrUnknownDevice,
	"unknown_image":         ErrUnknownImage,
	"unknown_pxe_config":    ErrUnknownPXEConfig,
	"unknown_hardware_type": ErrUnknownHardwareType,
	"unknown_server":        ErrUnknownServer,
	"unknown_request":       ErrUnknownRequest,
	"unknown_token":         ErrUnknownToken,
	"unknown_rack":          ErrUnknownRack,
	"fenced":                ErrFenced,
	"forbidden":             ErrForbidden,
	"invalid":               ErrInvalid,
	"exists":                ErrExists,
	"conflict":              ErrConflict,
	"too_many_changes":      ErrTooManyChanges,
	"no_machine":            ErrNoMachine,
}

// Error is a domain error that survives a trip over the wire: Code names the
// sentinel it wraps, Message is the full text.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Message }

// Unwrap returns the sentinel named by Code, so errors.Is matches it.
func (e *Error) Unwrap() error { return errorCodes[e.Code] }

// WireError converts any error into an *Error with the code of the first
// sentinel it wraps ("" when none).
func WireError(err error) *Error {
	if err == nil {
		return nil
	}
	var we *Error
	if errors.As(err, &we) {
		return we
	}
	for code, sentinel := range errorCodes {
		if errors.Is(err, sentinel) {
			return &Error{Code: code, Message: err.Error()}
		}
	}
	return &Error{Message: err.Error()}
}

// Result is what Apply returns for every command: a JSON value or a domain
// error. It is JSON itself so that a leader can hand it to a follower that
// forwarded the command.
type Result struct {
	Value json.RawMessage `json:"value,omitempty"`
	Err   *Error          `json:"error,omitempty"`
}

// Error returns the domain error as an error value (nil when none). It never
// returns a typed nil.
func (r Result) Error() error {
	if r.Err == nil {
		return nil
	}
	return r.Err
}

// Decode unmarshals the value into v, or returns the domain error.
func (r Result) Decode(v any) error {
	if err := r.Error(); err != nil {
		return err
	}
	if v == nil || len(r.Value) == 0 {
		return nil
	}
	return json.Unmarshal(r.Value, v)
}
