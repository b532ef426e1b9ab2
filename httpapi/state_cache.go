package httpapi

import (
	"sync"
	"time"

	"github.com/mozpool/mozpool/fsm"
)

// stateCacheTTL is how long the ?cache copy of device states is served
// before it is refreshed (the original's 5 s).
const stateCacheTTL = 5 * time.Second

// stateCache is a copy of every device's state, refreshed at most every
// stateCacheTTL, for monitors that poll every device.
type stateCache struct {
	mu      sync.Mutex
	states  map[string]string
	expires time.Time
}

// get returns name's state from the copy, refreshing it from f first when
// it has expired, and when the copy expires.
func (c *stateCache) get(now time.Time, f *fsm.FSM, name string) (state string, ok bool, expires time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.states == nil || !now.Before(c.expires) {
		states := map[string]string{}
		f.Read(func(st *fsm.State) {
			for n, d := range st.Devices {
				states[n] = d.State
			}
		})
		c.states, c.expires = states, now.Add(stateCacheTTL)
	}
	state, ok = c.states[name]
	return state, ok, c.expires
}
