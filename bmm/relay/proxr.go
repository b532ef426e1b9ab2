package relay

import (
	"errors"
	"fmt"
	"io"
	"net"
)

// ProXR command bytes (those Mozpool used). Every frame starts with cmdStart; relay
// commands add the command byte for relay R and then the bank byte.
const (
	cmdStart     = 0xFE // "enter command mode", 254
	cmdTestComms = 0x21 // two-way communications test, 33; no bank byte
	cmdRelayOff  = 99   // + R: relay R off, device powered (100..107)
	cmdRelayOn   = 107  // + R: relay R on, device unpowered (108..115)
	cmdStatus    = 115  // + R: read relay R (116..123)

	replyOK = 0x55 // 85: the answer to every set and to the comms test

	// statusRelayOn is the status reply for an energised relay, which on
	// normally-closed wiring means the device is off. Any other byte means
	// the device is on.
	statusRelayOn = 1

	// readSize is how much one read may return; extra bytes after a one-byte
	// reply make the reply bad.
	readSize = 1024
)

// setFrame returns the frame that powers the device on relay ri on or off.
func setFrame(ri RelayInfo, on bool) []byte {
	if on {
		return []byte{cmdStart, byte(cmdRelayOff + ri.Relay), byte(ri.Bank)}
	}
	return []byte{cmdStart, byte(cmdRelayOn + ri.Relay), byte(ri.Bank)}
}

// statusFrame returns the frame that reads relay ri.
func statusFrame(ri RelayInfo) []byte {
	return []byte{cmdStart, byte(cmdStatus + ri.Relay), byte(ri.Bank)}
}

// testCommsFrame is the two-way communications test.
var testCommsFrame = []byte{cmdStart, cmdTestComms}

// session is one connection to a board. The connection's deadline is the
// operation's, so every write and read gets whatever time remains of it.
type session struct {
	conn net.Conn
	buf  [readSize]byte
}

// exchange sends frame in a single write (ProXR firmware 3.2 needs the
// whole frame in one packet) and returns what one read brings back. A read
// of zero bytes is an error wrapping ErrBadReply.
func (s *session) exchange(what string, frame []byte) ([]byte, error) {
	if _, err := s.conn.Write(frame); err != nil {
		return nil, fmt.Errorf("send %s % x: %w", what, frame, err)
	}
	n, err := s.conn.Read(s.buf[:])
	if n > 0 {
		// Bytes and an error together: the bytes are the reply, and the
		// error will show up again on the next read if there is one.
		return s.buf[:n], nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: %s % x: board closed the connection without replying", ErrBadReply, what, frame)
	}
	return nil, fmt.Errorf("read %s reply: %w", what, err)
}

// set powers the device on ri on or off and expects exactly one OK byte.
func (s *session) set(ri RelayInfo, on bool) error {
	what := "power-off"
	if on {
		what = "power-on"
	}
	reply, err := s.exchange(what, setFrame(ri, on))
	if err != nil {
		return err
	}
	if len(reply) != 1 || reply[0] != replyOK {
		return fmt.Errorf("%w: %s got % x, want 55", ErrBadReply, what, reply)
	}
	return nil
}

// status reads relay ri and reports whether its device is powered.
func (s *session) status(ri RelayInfo) (bool, error) {
	reply, err := s.exchange("status", statusFrame(ri))
	if err != nil {
		return false, err
	}
	return reply[0] != statusRelayOn, nil
}

// testComms runs the two-way communications test. As in Mozpool, it passes
// unless the first reply byte is 1; a working board answers 0x55.
func (s *session) testComms() error {
	reply, err := s.exchange("comms test", testCommsFrame)
	if err != nil {
		return err
	}
	if reply[0] == 1 {
		return fmt.Errorf("%w: comms test got % x, want 55", ErrBadReply, reply)
	}
	return nil
}
