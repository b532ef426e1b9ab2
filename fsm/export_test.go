package fsm

// Test hooks for the external fsm_test package. They live in a _test file so
// that nothing outside the tests can reach them.

// PutRequest inserts r into f's state directly: no command creates requests
// yet, but snapshots must carry them.
func PutRequest(f *FSM, r *Request) {
	f.stateMu.Lock()
	defer f.stateMu.Unlock()
	f.s.Requests[r.ID] = r
}

// IdempotencyKeys returns the remembered idempotency keys: client keys
// oldest first, then node-generated (AutoKeyPrefix) keys oldest first.
func IdempotencyKeys(f *FSM) []string {
	f.stateMu.RLock()
	defer f.stateMu.RUnlock()
	keys := []string{}
	for _, e := range append(append([]*idemEntry(nil), f.s.idemOrder...), f.s.autoOrder...) {
		if f.s.idem[e.Key] == e {
			keys = append(keys, e.Key)
		}
	}
	return keys
}
