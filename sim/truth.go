package sim

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/mozpool/mozpool/bmm/bmmtest"
)

var (
	// errUnknownBoard is the ground truth's 404 for a board name the lab
	// does not have.
	errUnknownBoard = errors.New("unknown board")
)

// BoardState is the ground truth about one board.
type BoardState struct {
	Name          string `json:"name"`
	IP            string `json:"ip"`
	MAC           string `json:"mac"`
	ImagingServer string `json:"imaging_server"`
	Powered       bool   `json:"powered"`
	// Phase is one of the Phase constants, "<image>_downloading" (and
	// _extracting, _rebooting) while imaging, or "running_<image>".
	Phase   string `json:"phase"`
	SDImage string `json:"sd_image"`
	// Broken boards never answer ping or run a SUT agent.
	Broken bool `json:"broken"`
	// Flaky boards hang on every third boot (Config.FlakyFraction).
	Flaky bool `json:"flaky,omitempty"`
	// Pingable and SUTAgent say whether the board's ping listener and SUT
	// agent are up right now.
	Pingable bool      `json:"pingable"`
	SUTAgent bool      `json:"sut_agent"`
	Relay    RelayWire `json:"relay"`
	// Boots counts boot sequences started (power-ons and reboots);
	// Failures counts those that ended in a failure (injected or a bad
	// boot config), LastFailure says where and why.
	Boots       int    `json:"boots"`
	Failures    int    `json:"failures"`
	LastFailure string `json:"last_failure,omitempty"`
	// Events are the newest event posts (Config.EventHistory), oldest
	// first.
	Events []EventPost `json:"events"`
	// TFTPFetches counts PXE files fetched over TFTP.
	TFTPFetches int `json:"tftp_fetches"`
}

// RelayWire is the relay that powers a board.
type RelayWire struct {
	// Host is the relay board's address, host:port.
	Host  string `json:"host"`
	Bank  int    `json:"bank"`
	Relay int    `json:"relay"`
}

// RelayState is the ground truth about one relay board.
type RelayState struct {
	// Addr is the bound address, host:port.
	Addr string `json:"addr"`
	// Commands are the commands received, oldest first, as "set bank1
	// relay2 on" ("on" energises the relay: the device loses power), "get
	// bank1 relay2" or "test", with " (failed)" appended to any the board
	// did not act on.
	Commands []string `json:"commands"`
	// Actuations counts set commands acted on.
	Actuations int `json:"actuations"`
	// Connections counts connections served.
	Connections int `json:"connections"`
	// Stuck is set while the board's relays do not switch
	// (Config.FaultyRelay).
	Stuck bool `json:"stuck,omitempty"`
	// Log is the board's operation log: every command with when it came
	// and from which client connection, oldest first. The peer's address
	// tells imaging servers apart when each connects from its own
	// (mozpoold -relay-source).
	Log []RelayOp `json:"log"`
}

// RelayOp is one command a relay board received.
type RelayOp struct {
	At time.Time `json:"at"`
	// From is the client's address (host:port) and Conn the number of
	// its connection on this board.
	From string `json:"from"`
	Conn int    `json:"conn"`
	// Command is as in RelayState.Commands.
	Command string `json:"command"`
}

// Board returns the named board's state, or the zero BoardState (empty
// Name) if the lab has no such board.
func (l *Lab) Board(name string) BoardState {
	b, ok := l.byName[name]
	if !ok {
		return BoardState{}
	}
	addr, _ := l.relayAddr(b.relay)
	return b.state(addr)
}

// Boards returns every board's state, sorted by name.
func (l *Lab) Boards() []BoardState {
	out := make([]BoardState, len(l.boards))
	for i, b := range l.boards {
		addr, _ := l.relayAddr(b.relay)
		out[i] = b.state(addr)
	}
	return out
}

// Relay returns the state of the relay board at addr, which may be the
// bound address or the one the inventory gave, or the zero RelayState
// (empty Addr) if the lab has no such board.
func (l *Lab) Relay(addr string) RelayState {
	for _, rb := range l.relays {
		if bound, fake := l.relayAddr(rb); bound == addr || rb.spec == addr {
			return rb.state(bound, fake)
		}
	}
	return RelayState{}
}

// Relays returns every relay board's state, sorted by configured address.
func (l *Lab) Relays() []RelayState {
	out := make([]RelayState, len(l.relays))
	for i, rb := range l.relays {
		out[i] = rb.state(l.relayAddr(rb))
	}
	return out
}

// relayAddr returns rb's bound address (its configured one before Start)
// and its fake (nil before Start).
func (l *Lab) relayAddr(rb *relayBoard) (string, *bmmtest.RelayBoard) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if rb.fake == nil {
		return rb.spec, nil
	}
	return rb.addr, rb.fake
}

func (b *board) state(relayAddr string) BoardState {
	b.mu.Lock()
	defer b.mu.Unlock()
	return BoardState{
		Name: b.name, IP: b.ip.String(), MAC: b.mac, ImagingServer: b.server,
		Powered: b.powered, Phase: b.phase, SDImage: b.sdImage, Broken: b.broken, Flaky: b.flaky,
		Pingable: b.ping != nil, SUTAgent: b.agent != nil,
		Relay: RelayWire{Host: relayAddr, Bank: b.bank, Relay: b.relayNum},
		Boots: b.boots, Failures: b.failures, LastFailure: b.lastFailure,
		Events:      slices.Clone(b.events),
		TFTPFetches: b.tftpFetches,
	}
}

func (rb *relayBoard) state(addr string, fake *bmmtest.RelayBoard) RelayState {
	s := RelayState{Addr: addr, Commands: []string{}, Log: []RelayOp{}}
	if fake == nil { // not started
		return s
	}
	for _, c := range fake.Commands() {
		text := c.Text
		if c.Failed {
			text += " (failed)"
		} else if strings.HasPrefix(text, "set ") {
			s.Actuations++
		}
		s.Commands = append(s.Commands, text)
		s.Log = append(s.Log, RelayOp{At: c.At, From: c.From, Conn: c.Conn, Command: text})
	}
	s.Connections = len(fake.Connections())
	s.Stuck = fake.Stuck()
	return s
}

// Handler serves the ground truth as JSON:
//
//	GET /boards          every BoardState
//	GET /boards/{name}   one BoardState (404 if unknown)
//	GET /relays          every RelayState
func (l *Lab) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /boards", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, l.Boards())
	})
	mux.HandleFunc("GET /boards/{name}", func(w http.ResponseWriter, r *http.Request) {
		s := l.Board(r.PathValue("name"))
		if s.Name == "" {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": errUnknownBoard.Error()})
			return
		}
		writeJSON(w, http.StatusOK, s)
	})
	mux.HandleFunc("GET /relays", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, l.Relays())
	})
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
