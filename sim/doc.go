// Package sim is a simulated device lab that speaks the real protocols, so
// that a Mozpool cluster can be staged and tested end to end without
// hardware. It reproduces what Mozpool observes of a lab, as Mozpool's own
// fakes did, over the same wires a real lab uses:
//
//   - Relay boards. Every distinct host:port in the inventory's relay_info
//     fields is a bmmtest fake ProXR board on that address (port 0 picks a
//     free port; Lab.Inventory gives the bound ones): the real bytes, one
//     connection at a time, a recovery pause after each, every command
//     recorded. Each relay powers the board wired to it, normally closed:
//     an energised relay means an unpowered board. All relays start off,
//     so every board starts powered.
//   - Boards. Each device is a board on its own loopback address (its
//     inventory ip_address, e.g. 127.1.1.1). Powered, it boots: u-boot
//     (pingable) for Delays.Booting, then it reads
//     pxelinux.cfg/01-aa-bb-cc-dd-ee-ff over TFTP from its imaging
//     server. If the file names a second stage
//     (mobile-imaging-url=.../<name>.sh) the board runs it: it posts the
//     stage's events to its imaging server (GET
//     /api/device/<name>/event/<event>/, from its own address) and, for
//     b2g, reads /api/device/<name>/bootconfig/. Otherwise, or when no
//     server or file answers, it boots its SD card: a b2g or android image
//     answers ping and runs a SUT agent (bmm/suttest) on its address.
//     Power off aborts whatever the board is doing and takes it off the
//     network at once.
//   - Syslog. Each boot phase sends a few lines, as a Panda's u-boot,
//     kernel, live image scripts (mobile-init, <image>-second-stage,
//     self-test) and SUT agent print them, to the imaging server's syslog
//     receiver: RFC 5424 over UDP, local0.info, the board's name as
//     HOSTNAME, from the board's own address, so that the receiver files
//     them in the device log beside the state machine's entries. Sends
//     are fire and forget; Config.Syslog turns them off.
//   - Faults. Each phase may fail with a configured probability, which
//     reboots the board (power still on); a fraction of boards, chosen
//     from the seed, are broken for good and never answer ping or the SUT
//     agent. Every random choice comes from a per-board source seeded by
//     Config.Seed and the board's name.
//   - Ground truth. Lab.Handler serves each board's power, phase, SD image,
//     brokenness and event posts, and each relay board's commands, as
//     JSON; Lab.Board and Lab.Relay give the same to Go tests.
//
// "Ping" is TCP: a board that answers ping has a listener on
// <ip>:Config.PingPort, for bmm/ping's TCP mode. Mozpool's fake ignored
// power for ping and never finished android imaging; this one does not.
// Two labs may share a machine when their boards' addresses or ports
// differ; Start fails with ErrAddrInUse when a board's address and port
// are taken.
//
// The lab learns each imaging server's HTTP, TFTP and syslog addresses from
// /api/cluster/status/ of the first Config.API node that answers, at Start
// and every Config.Discovery after, since nodes restart on new addresses.
//
// Goroutines. Start starts one discovery goroutine and one goroutine per
// board; both exit when Shutdown cancels the lab's context, and Shutdown
// waits for them. A board's goroutine waits for power, then boots again
// and again; a power change, made on the relay board's serving goroutine
// (bmmtest), only cancels the current boot. Each relay board has its
// accept goroutine (bmmtest), closed by Shutdown. A board's ping listener
// has an accept goroutine and its SUT agent one per connection; both exit
// when the board closes them (power off, a phase without them, Shutdown).
// A TFTP fetch runs on its own goroutine so that power off need not wait
// for it; it ends by itself, each packet bounded by TFTPTimeout ×
// TFTPRetries, and Shutdown waits for it too.
package sim
