// Package lifeguard keeps every board healthy: it images, verifies,
// health-checks, recovers by power-cycling and retires boards that keep
// failing.
//
// The device state machine is a pure table (device_states.go) that fsm.Apply
// runs on every node (Machine implements fsm.DeviceMachine). Hardware work
// happens outside Apply, in the Executor of the node that serves the
// device's imaging server: it watches the transitions the FSM reports, runs
// the entry action of the state a device it owns has entered (PXE write or
// removal, relay power cycle, ping, SUT verification, SD-card check) with a
// deadline and bounded concurrency, and proposes the result as an event
// tagged with the generation of that entry; Apply discards results and
// timeouts of older generations. Device timers also run on the owning
// node: one per owned device, armed from the replicated deadline and
// proposing DeviceTimeout through the log. A restarted node rebuilds its
// timers and pending actions from the replicated state.
package lifeguard
