// Package ping answers lifeguard's question "is this board up?".
//
// Mozpool ran `fping -q -r4 -t50 <fqdn>`: five echo requests within about a
// second, and the board is up if any one is answered. Pinger
// keeps those semantics in two modes:
//
//   - ModeICMP sends ICMP echo requests with
//     github.com/prometheus-community/pro-bing. By default it uses
//     unprivileged "ping sockets" (SOCK_DGRAM, IPPROTO_ICMP), which need
//     the daemon's group inside the sysctl net.ipv4.ping_group_range;
//     Config.Privileged switches to raw sockets, which need CAP_NET_RAW.
//     New checks that the socket can be opened and says which of the two
//     to fix if it cannot.
//   - ModeTCP counts a TCP connection to the board's SUT agent port as an
//     answer. The lab simulator uses it: its boards are loopback listeners,
//     not hosts that answer ICMP.
//
// An unreachable or unresolvable host is "down" (false, nil), never an
// error; errors are reserved for bad input, a forbidden ICMP socket, and a
// caller's context ending before any answer.
//
// Goroutines: Ping runs on the caller's goroutine. In ICMP mode pro-bing
// starts three goroutines per call (sender, receiver, context watcher) and
// waits for all of them before Ping returns.
package ping
