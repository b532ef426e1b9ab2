package syslog

import (
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/mozpool/mozpool/fsm"
)

// Bounds of the device index's staleness: it is rebuilt at least every
// indexMaxAge, and a sender it does not know rebuilds it (once the state
// has changed) at most every indexMissEvery.
const (
	indexMaxAge    = 10 * time.Second
	indexMissEvery = time.Second
)

// deviceIndex maps addresses and lower-case names to device names, so
// that filing a line costs a map look-up instead of a scan of every device
// (50,000 boards booting log thousands of lines a second). It is built
// from one state and only proposes candidates: lookup checks each against
// the live state, so an index that is behind never files a line under a
// device that no longer matches.
type deviceIndex struct {
	mu      sync.Mutex
	state   *fsm.State // the state it was built from (a restore replaces it)
	devices int
	applied uint64
	built   time.Time
	// missed is when a miss last rebuilt the index.
	missed time.Time
	byAddr map[netip.Addr][]string
	byName map[string][]string
}

// stale reports whether the index must be rebuilt before a look-up in s.
func (x *deviceIndex) stale(s *fsm.State, now time.Time) bool {
	return x.byAddr == nil || x.state != s || x.devices != len(s.Devices) || now.Sub(x.built) > indexMaxAge
}

// rebuildOnMiss reports whether a sender the index does not know should
// rebuild it: the state has changed since it was built, and no miss has
// rebuilt it for indexMissEvery (unknown senders must not rebuild it at
// every line).
func (x *deviceIndex) rebuildOnMiss(applied uint64, now time.Time) bool {
	if applied == x.applied || now.Sub(x.missed) < indexMissEvery {
		return false
	}
	x.missed = now
	return true
}

// rebuild indexes every device of s.
func (x *deviceIndex) rebuild(s *fsm.State, applied uint64, now time.Time) {
	x.state, x.devices, x.applied, x.built = s, len(s.Devices), applied, now
	x.byAddr = make(map[netip.Addr][]string, len(s.Devices))
	x.byName = make(map[string][]string, 2*len(s.Devices))
	for name, d := range s.Devices {
		if a, err := netip.ParseAddr(d.IPAddress); err == nil {
			x.byAddr[a.Unmap()] = append(x.byAddr[a.Unmap()], name)
		}
		x.byName[strings.ToLower(d.Name)] = append(x.byName[strings.ToLower(d.Name)], name)
		if fqdn := strings.ToLower(strings.TrimSuffix(d.FQDN, ".")); fqdn != "" && fqdn != strings.ToLower(d.Name) {
			x.byName[fqdn] = append(x.byName[fqdn], name)
		}
	}
}
