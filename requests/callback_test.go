package requests

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/fsm"
)

func (r *rig) createWithCallback(dev, url string) fsm.Request {
	r.t.Helper()
	c := r.createCmd(dev, "b2g", "any", b2gConfig)
	c.CallbackURL = url
	out, err := r.tryCreateCmd(c)
	require.NoError(r.t, err)
	return out
}

func callbackStates(cbs []fsm.Callback) []string {
	var out []string
	for _, cb := range cbs {
		out = append(out, cb.State)
	}
	return out
}

// A request with a callback URL owes a callback on ready, on a failure and
// on close, replicated in its record; CmdCallbackDone marks one done, once.
func TestCallbacks_Recorded(t *testing.T) {
	r := newRig(t)
	r.ready(even1, even2)
	q := r.createWithCallback(even1, "http://ci.example.com/hook?job=1")
	require.Equal(t, "http://ci.example.com/hook?job=1", q.CallbackURL)
	require.Empty(t, q.Callbacks, "pending is not notified")
	r.install(even1, "b2g")
	r.requireRequest(q.ID, StateReady, even1)
	cbs := r.request(q.ID).Callbacks
	require.Equal(t, []string{"ready"}, callbackStates(cbs))
	require.Equal(t, 1, cbs[0].Seq)
	require.Equal(t, even1, cbs[0].Device)
	require.Equal(t, "complete", cbs[0].ImagingResult)

	busy := r.createWithCallback(even1, "https://ci.example.com/hook")
	r.timeout(busy.ID)
	r.requireRequest(busy.ID, StateFailedDeviceBusy, "")
	require.Equal(t, []string{"failed_device_busy"}, callbackStates(r.request(busy.ID).Callbacks))

	r.closeRequest(q.ID)
	cbs = r.request(q.ID).Callbacks
	require.Equal(t, []string{"ready", "closed"}, callbackStates(cbs))
	require.Equal(t, 2, cbs[1].Seq)

	plain := r.createB2G(even2, "any")
	r.closeRequest(plain.ID)
	require.Empty(t, r.request(plain.ID).Callbacks, "no URL, no callbacks")

	var pending []fsm.PendingCallback
	r.f.Read(func(s *fsm.State) { pending = s.PendingCallbacks() })
	require.Len(t, pending, 3)

	mark := r.mark()
	r.apply(fsm.CmdCallbackDone, &fsm.CallbackDone{ID: q.ID, Seq: 1, Delivered: true})
	r.apply(fsm.CmdCallbackDone, &fsm.CallbackDone{ID: q.ID, Seq: 1, Delivered: false}) // a late retry
	r.apply(fsm.CmdCallbackDone, &fsm.CallbackDone{ID: q.ID, Seq: 2, Delivered: false})
	r.apply(fsm.CmdCallbackDone, &fsm.CallbackDone{ID: 999, Seq: 1, Delivered: true}) // no such request
	cbs = r.request(q.ID).Callbacks
	require.True(t, cbs[0].Done && cbs[0].Delivered)
	require.True(t, cbs[1].Done && !cbs[1].Delivered)
	require.Equal(t, []string{"callback 1 (ready) delivered", "callback 2 (closed) not delivered: gave up"}, r.requestLogs(mark, q.ID))
	r.f.Read(func(s *fsm.State) { pending = s.PendingCallbacks() })
	require.Len(t, pending, 1)
	require.Equal(t, busy.ID, pending[0].RequestID)

	// The records survive a snapshot.
	var restored []fsm.Callback
	r.snapshot().Read(func(s *fsm.State) { restored = s.Requests[q.ID].Callbacks })
	require.Equal(t, cbs, restored)
}

// A callback URL must be an absolute http(s) URL with a host.
func TestCallbacks_URLValidated(t *testing.T) {
	r := newRig(t)
	for _, bad := range []string{"not a url", "ftp://x/", "http://", "/relative", "http://user:pw@host/", "http://h/#frag",
		"javascript:alert(1)", "http://h/\n", "http://" + string(make([]byte, fsm.MaxCallbackURLLen))} {
		c := r.createCmd("any", "b2g", "any", b2gConfig)
		c.CallbackURL = bad
		_, err := r.tryCreateCmd(c)
		require.ErrorIs(t, err, fsm.ErrInvalid, "%q", bad)
	}
	for _, good := range []string{"http://ci:8080/hook", "https://ci.example.com/a/b?c=d", "http://[::1]:9/x"} {
		require.NoError(t, fsm.ValidateCallbackURL(good), good)
	}
}
