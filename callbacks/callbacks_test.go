package callbacks

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/fsm"
	"github.com/mozpool/mozpool/internal/testlog"
	"github.com/mozpool/mozpool/lifeguard"
	"github.com/mozpool/mozpool/requests"
)

// local is a one-node "cluster": commands apply straight to the FSM.
type local struct {
	mu    sync.Mutex
	f     *fsm.FSM
	index uint64
	d     *Deliverer
}

func (l *local) propose(_ context.Context, t fsm.CommandType, c fsm.Command) (fsm.Result, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c.Head().At.IsZero() {
		c.Head().At = time.Now().UTC()
	}
	b, err := fsm.Encode(t, c)
	if err != nil {
		return fsm.Result{}, err
	}
	l.index++
	return l.f.ApplyCommand(l.index, b), nil
}

func newLocal(t *testing.T) *local {
	l := &local{}
	l.f = fsm.New(fsm.Config{Logger: testlog.New(t), Devices: lifeguard.Machine{}, Requests: requests.Machine{},
		Notify: func(n fsm.Notification) {
			if l.d != nil {
				l.d.Notify(n)
			}
		}})
	res, err := l.propose(context.Background(), fsm.CmdInventorySync, &fsm.InventorySync{ShipIt: true, Inventory: fsm.Inventory{
		ImagingServers: []fsm.InventoryServer{{Name: "server1"}},
		Images:         []fsm.ImageSpec{{Name: "b2g"}},
		// One board, never ready here: a request waits in the queue
		// (with no board at all it would fail at once).
		HardwareTypes: []fsm.InventoryHardwareType{{Type: "panda", Model: "ES"}},
		Devices: []fsm.InventoryDevice{{Name: "dev1", FQDN: "dev1.example", InventoryID: 1, MAC: "00:16:3e:00:00:01",
			ImagingServer: "server1", RelayInfo: "relay1:bank1:relay1", HardwareType: "panda", HardwareModel: "ES"}},
	}})
	require.NoError(t, err)
	require.NoError(t, res.Error())
	return l
}

// createAndClose makes a request with a callback URL and returns it, which
// owes one callback (closed).
func (l *local) createAndClose(t *testing.T, url string) int64 {
	t.Helper()
	res, err := l.propose(context.Background(), fsm.CmdRequestCreate, &fsm.RequestCreate{RequestedDevice: "any", Assignee: "me",
		Expires: time.Now().Add(time.Hour), Image: "b2g", BootConfig: "{}", Server: "server1", CallbackURL: url})
	require.NoError(t, err)
	var r fsm.Request
	require.NoError(t, res.Decode(&r))
	res, err = l.propose(context.Background(), fsm.CmdRequestEvent, &fsm.RequestEvent{ID: r.ID, Event: string(requests.EventClose)})
	require.NoError(t, err)
	require.NoError(t, res.Error())
	return r.ID
}

func (l *local) callbacks(id int64) []fsm.Callback {
	var out []fsm.Callback
	l.f.Read(func(s *fsm.State) { out = append(out, s.Requests[id].Callbacks...) })
	return out
}

func (l *local) start(t *testing.T, cfg Config) {
	cfg.FSM, cfg.Propose, cfg.Logger = l.f, l.propose, testlog.New(t)
	cfg.BaseURL = "http://node1:8010"
	d, err := New(cfg)
	require.NoError(t, err)
	l.mu.Lock()
	l.d = d
	l.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	// Exits when the test ends.
	go func() { defer close(done); d.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// A callback refused twice is retried and delivered, then marked done and
// delivered in the replicated state; the body and header carry its id.
func TestDeliver_RetriesThenMarksDelivered(t *testing.T) {
	var mu sync.Mutex
	var got []Notification
	var ids []string
	attempts := 0
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		attempts++
		if attempts <= 2 {
			http.Error(w, "not yet", http.StatusServiceUnavailable)
			return
		}
		b, _ := io.ReadAll(r.Body)
		var n Notification
		require.NoError(t, json.Unmarshal(b, &n))
		got = append(got, n)
		ids = append(ids, r.Header.Get(HeaderID))
	}))
	defer recv.Close()

	l := newLocal(t)
	l.start(t, Config{MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, Poll: 10 * time.Millisecond})
	id := l.createAndClose(t, recv.URL+"/hook")
	require.Eventually(t, func() bool {
		cbs := l.callbacks(id)
		return len(cbs) == 1 && cbs[0].Done
	}, 10*time.Second, 5*time.Millisecond)
	require.True(t, l.callbacks(id)[0].Delivered)
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, got, 1)
	require.Equal(t, "1-1", got[0].ID)
	require.Equal(t, []string{"1-1"}, ids)
	require.Equal(t, "closed", got[0].State)
	require.Equal(t, int64(1), got[0].RequestID)
	require.Equal(t, "http://node1:8010/api/request/1/", got[0].RequestURL)
}

// A receiver that never accepts is given up after MaxAge: the callback is
// marked done, not delivered.
func TestDeliver_GivesUp(t *testing.T) {
	var mu sync.Mutex
	attempts := 0
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		attempts++
		mu.Unlock()
		http.Error(w, "down", http.StatusInternalServerError)
	}))
	defer recv.Close()
	l := newLocal(t)
	l.start(t, Config{MinBackoff: 5 * time.Millisecond, MaxBackoff: 10 * time.Millisecond, MaxAge: 100 * time.Millisecond, Poll: 10 * time.Millisecond})
	id := l.createAndClose(t, recv.URL)
	require.Eventually(t, func() bool {
		cbs := l.callbacks(id)
		return len(cbs) == 1 && cbs[0].Done
	}, 10*time.Second, 5*time.Millisecond)
	require.False(t, l.callbacks(id)[0].Delivered)
	mu.Lock()
	require.Positive(t, attempts)
	mu.Unlock()
}

// Between its scans of every request (here never: Poll is an hour), the
// deliverer finds new callbacks through the requests commands changed.
func TestDeliver_FindsNewCallbacksWithoutScanning(t *testing.T) {
	var mu sync.Mutex
	var got []string
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, r.Header.Get(HeaderID))
	}))
	defer recv.Close()

	l := newLocal(t)
	l.start(t, Config{MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, Poll: time.Hour})
	first := l.createAndClose(t, recv.URL+"/hook")
	second := l.createAndClose(t, recv.URL+"/hook")
	for _, id := range []int64{first, second} {
		require.Eventually(t, func() bool {
			cbs := l.callbacks(id)
			return len(cbs) == 1 && cbs[0].Done && cbs[0].Delivered
		}, 10*time.Second, 5*time.Millisecond, "request %d", id)
	}
	mu.Lock()
	defer mu.Unlock()
	require.ElementsMatch(t, []string{fmt.Sprintf("%d-1", first), fmt.Sprintf("%d-1", second)}, got)
}
