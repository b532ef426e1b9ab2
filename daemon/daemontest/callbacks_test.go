package daemontest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/callbacks"
	"github.com/mozpool/mozpool/fsm"
)

// receiver records the callbacks it accepts, by id; while refusing it
// answers 503.
type receiver struct {
	refusing atomic.Bool
	mu       sync.Mutex
	got      map[string]callbacks.Notification
	repeats  int
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if rc.refusing.Load() {
		http.Error(w, "not now", http.StatusServiceUnavailable)
		return
	}
	var n callbacks.Notification
	if err := json.NewDecoder(r.Body).Decode(&n); err != nil || n.ID != r.Header.Get(callbacks.HeaderID) {
		http.Error(w, "bad callback", http.StatusBadRequest)
		return
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if _, seen := rc.got[n.ID]; seen {
		rc.repeats++ // at least once: repeats are allowed
	}
	rc.got[n.ID] = n
}

// A callback receiver gets exactly the notifications the cluster promised
// (one per callback record, repeats aside) for requests served across a
// leader failover: one owed before the leader crashed, while the receiver
// refused, and others owed after.
func TestCallbacks_AcrossLeaderFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-node cluster test")
	}
	ctx := context.Background()
	rc := &receiver{got: map[string]callbacks.Notification{}}
	rc.refusing.Store(true)
	recv := httptest.NewServer(rc)
	defer recv.Close()

	c := New(t, 3)
	c.LoadInventory(readsInventory())
	leader := c.WaitLeader()
	spec := b2gSpec()
	spec.CallbackURL = recv.URL + "/hook"

	cl := c.Followers()[0].Client()
	r1, err := cl.CreateRequest(ctx, "any", spec)
	require.NoError(t, err)
	require.Equal(t, spec.CallbackURL, r1.CallbackURL)
	r2, err := cl.CreateRequest(ctx, "any", spec)
	require.NoError(t, err)
	require.NoError(t, cl.ReturnRequest(ctx, r1.ID)) // owed now, refused for the moment

	leader.Kill()
	newLeader := c.WaitLeader()
	require.NotEqual(t, leader.Name, newLeader.Name)
	rc.refusing.Store(false)
	cl = newLeader.Client()
	require.NoError(t, cl.ReturnRequest(ctx, r2.ID))
	r3, err := cl.CreateRequest(ctx, "any", spec)
	require.NoError(t, err)
	require.NoError(t, cl.ReturnRequest(ctx, r3.ID))

	// Every callback is marked done on every live node.
	var promised map[string]fsm.Callback
	require.Eventually(t, func() bool {
		for _, n := range c.Live() {
			done := true
			promised = map[string]fsm.Callback{}
			n.FSM.Read(func(s *fsm.State) {
				for _, r := range s.Requests {
					for _, cb := range r.Callbacks {
						promised[fmt.Sprintf("%d-%d", r.ID, cb.Seq)] = cb
						done = done && cb.Done
					}
				}
			})
			if !done {
				return false
			}
		}
		return true
	}, 60*time.Second, 20*time.Millisecond, "callbacks not all done")

	require.Len(t, promised, 3, "one callback per closed request")
	rc.mu.Lock()
	defer rc.mu.Unlock()
	require.Len(t, rc.got, len(promised), "received %v", rc.got)
	for id, cb := range promised {
		require.True(t, cb.Delivered, "callback %s delivered", id)
		n, ok := rc.got[id]
		require.True(t, ok, "callback %s received", id)
		require.Equal(t, cb.State, n.State)
		require.Equal(t, "closed", n.State)
	}
	for _, r := range []int64{r1.ID, r2.ID, r3.ID} {
		require.Contains(t, rc.got, fmt.Sprintf("%d-1", r))
	}
	t.Logf("%d repeated deliveries", rc.repeats)
}
