// Package bmmtest provides test doubles for the bmm packages: a fake ProXR
// relay board that speaks the real protocol over TCP, for relay's unit
// tests and for the lab simulator.
//
// RelayBoard models what Mozpool's fake relay board modelled: 4 banks of 8
// relays, all off (every device powered) at start; one connection served at
// a time; a recovery pause after each connection during which new
// connections wait in the listen backlog (they are never refused); and
// knobs for failures (FailFirst), slowness (ByteDelay) and a board that is
// down (Refuse). It records every command with the time it arrived.
//
// Goroutines: NewRelayBoard starts one accept goroutine per listener; it
// serves connections one after another on that goroutine and exits when
// the listener closes (Close, or SetRefuse(true)). Close waits for it.
// OnChange callbacks run on it too, before the board answers the command
// that caused them.
package bmmtest
