package sim

import (
	"context"
	"fmt"
	"net"
	"time"
)

// What the boards' software prints, as a PandaBoard's would. Apps are the
// syslog APP-NAMEs.
const (
	appUBoot      = "u-boot"
	appKernel     = "kernel"
	appMobileInit = "mobile-init"
	appSelfTest   = "self-test"
	appMaint      = "maintenance"
	appSUTAgent   = "sutagent"

	uBootBanner   = "U-Boot 2012.07 (Jul 20 2012 - 12:00:00) for OMAP4 Panda"
	kernelVersion = "Linux version 3.2.0-panda (mobile-imaging@panda) (gcc version 4.6.3) #1 SMP PREEMPT"
	kernelMMC     = "mmcblk0: p1 p2"
)

const (
	// syslogPRI is facility local0 (16), severity info (6): the facility
	// Mozpool's boards logged with.
	syslogPRI = 16*8 + 6
	// syslogWriteTimeout bounds one datagram's write. A UDP send to a
	// known address does not wait for the receiver; this only guards
	// against a stalled socket, so that the board never does.
	syslogWriteTimeout = 100 * time.Millisecond
	// syslogTimeLayout is RFC 5424's TIMESTAMP with microseconds, the
	// precision of the device log.
	syslogTimeLayout = "2006-01-02T15:04:05.000000Z07:00"
)

// syslog sends lines, as app, to the board's imaging server's syslog
// receiver: one RFC 5424 datagram each, from the board's own address (see
// localIP), so that the receiver knows the board by its address as well
// as by HOSTNAME. It does nothing when Config.Syslog is off, the receiver
// is unknown or the board lost power (ctx ended). Send errors are only
// logged at debug: syslog is fire and forget, for boards as for the lab.
func (b *board) syslog(ctx context.Context, app string, lines ...string) {
	if !b.lab.cfg.Syslog || ctx.Err() != nil {
		return
	}
	srv, ok := b.lab.boardServer(b)
	if !ok || !srv.Syslog.IsValid() {
		return
	}
	dst := net.UDPAddrFromAddrPort(srv.Syslog)
	var local *net.UDPAddr
	if ip := b.localIP(dst.IP); ip != nil {
		local = &net.UDPAddr{IP: ip}
	}
	conn, err := net.DialUDP("udp", local, dst)
	if err != nil {
		b.logger.Debug("cannot send syslog", "syslog", srv.Syslog, "error", err)
		return
	}
	defer conn.Close()
	conn.SetWriteDeadline(time.Now().Add(syslogWriteTimeout))
	for _, line := range lines {
		if _, err := conn.Write(b.syslogLine(app, line, time.Now())); err != nil {
			b.logger.Debug("cannot send syslog", "syslog", srv.Syslog, "error", err)
			return
		}
	}
}

// syslogLine formats one RFC 5424 message: local0.info, the board's name
// as HOSTNAME, no PROCID, MSGID or structured data.
func (b *board) syslogLine(app, msg string, at time.Time) []byte {
	return fmt.Appendf(nil, "<%d>1 %s %s %s - - - %s", syslogPRI, at.UTC().Format(syslogTimeLayout), b.name, app, msg)
}

// localIP is the address the board sends from to reach dst: its own,
// when both are IPv4 loopback addresses (every board of a simulated lab
// has one); otherwise nil, any local address, since the board's address
// is not this host's.
func (b *board) localIP(dst net.IP) net.IP {
	if dst.IsLoopback() && b.ip.IsLoopback() && dst.To4() != nil && b.ip.To4() != nil {
		return b.ip
	}
	return nil
}

// logKernel is what the kernel prints as it boots, from the SD card or
// the network.
func (b *board) logKernel(ctx context.Context) {
	b.syslog(ctx, appKernel, kernelVersion, kernelMMC)
}
