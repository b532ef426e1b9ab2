package relay

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// replyConn is a net.Conn whose board answers every frame with reply (in
// reads of at most the reader's buffer), then EOF. It records the frames.
type replyConn struct {
	net.Conn // nil: only Read and Write are used
	reply    []byte
	frames   [][]byte
}

func (c *replyConn) Write(b []byte) (int, error) {
	c.frames = append(c.frames, append([]byte(nil), b...))
	return len(b), nil
}

func (c *replyConn) Read(b []byte) (int, error) {
	if len(c.reply) == 0 {
		return 0, io.EOF
	}
	n := copy(b, c.reply)
	c.reply = c.reply[n:]
	return n, nil
}

func (c *replyConn) SetDeadline(time.Time) error { return nil }

// FuzzReply feeds arbitrary board replies to the ProXR exchanges (set,
// status, comms test) for every relay and checks the verdicts: a set
// passes only on the single OK byte, a status reads the first byte, the
// comms test fails only on an empty reply or a first byte of 1, and every
// bad reply is an error wrapping ErrBadReply. Run it with
//
//	go test -run '^$' -fuzz FuzzReply ./bmm/relay/
func FuzzReply(f *testing.F) {
	for _, seed := range [][]byte{
		{replyOK}, {0}, {statusRelayOn}, {}, {replyOK, replyOK}, {0xFE}, {1, replyOK},
		make([]byte, readSize), make([]byte, readSize+1),
	} {
		f.Add(seed, uint8(0), uint8(0))
		f.Add(seed, uint8(3), uint8(7))
	}
	f.Fuzz(func(t *testing.T, reply []byte, bank, relay uint8) {
		ri := RelayInfo{Host: "relay", Port: DefaultPort, Bank: int(bank%Banks) + 1, Relay: int(relay%Relays) + 1}
		first := reply
		if len(first) > readSize {
			first = first[:readSize] // one read: the rest is not the reply
		}
		badReply := func(err error) {
			t.Helper()
			require.Error(t, err)
			if len(first) == 0 {
				require.ErrorIs(t, err, ErrBadReply) // EOF before any byte
			}
		}

		for _, on := range []bool{true, false} {
			c := &replyConn{reply: reply}
			err := (&session{conn: c}).set(ri, on)
			if len(first) == 1 && first[0] == replyOK {
				require.NoError(t, err)
			} else {
				badReply(err)
				if len(first) > 0 {
					require.ErrorIs(t, err, ErrBadReply)
				}
			}
			require.Equal(t, [][]byte{setFrame(ri, on)}, c.frames)
			require.Len(t, c.frames[0], 3)
			require.Equal(t, byte(cmdStart), c.frames[0][0])
		}

		c := &replyConn{reply: reply}
		powered, err := (&session{conn: c}).status(ri)
		if len(first) == 0 {
			badReply(err)
		} else {
			require.NoError(t, err)
			require.Equal(t, first[0] != statusRelayOn, powered)
		}
		require.Equal(t, [][]byte{statusFrame(ri)}, c.frames)

		c = &replyConn{reply: reply}
		err = (&session{conn: c}).testComms()
		if len(first) == 0 || first[0] == 1 {
			badReply(err)
			require.True(t, errors.Is(err, ErrBadReply))
		} else {
			require.NoError(t, err)
		}
	})
}

// FuzzParseRelayInfo checks that ParseRelayInfo never panics, that what it
// accepts is valid, and that String gives it back unchanged.
func FuzzParseRelayInfo(f *testing.F) {
	for _, s := range []string{
		"relay-1.lab:bank1:relay1", "relay-1.lab:2101:bank4:relay8", "relay:1:bank1:relay1",
		"relay:65535:bank2:relay3", "relay:0:bank1:relay1", "relay:65536:bank1:relay1",
		"relay:bank0:relay1", "relay:bank5:relay1", "relay:bank1:relay9", "relay:bank1:relay-1",
		"relay:bank+1:relay1", "relay:bank01:relay1", ":bank1:relay1", "relay", "a:b:c:d:e",
		"[::1]:2101:bank1:relay1", "relay: 1:bank1:relay1", "relay:bank1:relay",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ri, err := ParseRelayInfo(s)
		if err != nil {
			require.ErrorIs(t, err, ErrBadRelayInfo)
			require.Equal(t, RelayInfo{}, ri)
			return
		}
		require.NoError(t, ri.validate(), "ParseRelayInfo(%q) = %+v", s, ri)
		again, err := ParseRelayInfo(ri.String())
		require.NoError(t, err, "ParseRelayInfo(%q).String() = %q", s, ri.String())
		require.Equal(t, ri, again, "ParseRelayInfo(%q).String() = %q", s, ri.String())
	})
}
