// Package bmm is the hardware layer of an imaging server: it performs the
// operations of Mozpool's BMM layer on the devices and relay boards this
// node owns — relay power control (bmm/relay), PXE config files served by
// TFTP (bmm/pxe), ping (bmm/ping) and the SUT agent (bmm/sut) — and writes
// every action and its result into the device's log (source "bmm" or
// "sut").
//
// Controller looks devices up in the local FSM replica and never touches a
// device owned by another imaging server. Power operations started through
// StartPowerCycle and StartPowerOff run asynchronously in goroutines the
// controller tracks; Shutdown cancels and waits for them.
package bmm
