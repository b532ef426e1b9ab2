package fsm

import (
	"container/list"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"
)

// Queue policy constants (see docs/design.md, "The queue").
const (
	// DefaultMaxWait is how long a request waits for a board when it
	// does not say (the original's 60 searches 10 s apart), scaled by
	// the cluster's time scale like every request timer.
	DefaultMaxWait = 10 * time.Minute
	// MinPriority and MaxPriority bound a request's priority; requests
	// that give none have DefaultPriority.
	MinPriority     = -100
	MaxPriority     = 100
	DefaultPriority = 0
	// AgingAfter is how long (scaled) a request waits before it joins the
	// aged class, served before every request that has not waited as
	// long, whatever their priorities.
	AgingAfter = 5 * time.Minute
	// MaxTags bounds the tags of a device or a request's tag constraints.
	MaxTags = 16
	// MaxTagLen bounds a tag's key and value.
	MaxTagLen = 64
	// maxGroupLen bounds a fair-share group's name.
	maxGroupLen = 256
	// MaxGroupWeight bounds a fair-share group's weight.
	MaxGroupWeight = 100
	// fairCost is the virtual time one assignment costs a group of
	// weight 1 (integers keep the clock exact on every node).
	fairCost = 1 << 20
)

// Queue holds the requests waiting for a board. The exported fields are
// the replicated part (in snapshots); the rest are indexes rebuilt from the
// requests (each waiting request has a QueueSeq).
//
// Waiting requests are kept in buckets: one FIFO per (constraint signature,
// priority, group). A signature is everything that decides which boards a
// request may take; requests with the same signature compete for the same
// boards. A board that comes free looks only at the heads of the buckets
// whose signature it matches, so an assignment costs O(signatures ×
// buckets), not O(waiting requests).
type Queue struct {
	// Seq is the last queue sequence number given out (arrival order).
	Seq uint64 `json:"seq"`
	// Virtual is the fair-share clock: the start tag of the last request
	// served (start-time fair queueing between groups).
	Virtual uint64 `json:"virtual"`
	// Groups holds the fair-share tag of every group that is waiting or
	// ahead of the clock.
	Groups map[string]*GroupClock `json:"groups,omitempty"`
	// Index is the log index of the last change to the queue.
	Index uint64 `json:"index,omitempty"`
	// Epoch is the log index of the first QueueEpoch (0: none yet).
	Epoch uint64 `json:"epoch,omitempty"`

	sigs    map[string]*signature
	anySigs map[string]*signature
	named   map[string]map[string]*signature // device → key → signature
	byID    map[int64]*queueEntry
	// free holds the devices a request may claim now; freeValid is false
	// until it has been computed (after a restore).
	free      map[string]bool
	freeValid bool
	// possible caches whether any device of the inventory could ever
	// match a signature; cleared when the inventory changes.
	possible map[string]bool
	// trust caches DeviceMachine.Trust of each device's history;
	// DeviceTx.Record drops a device's entry.
	trust map[string]int
}

// GroupClock is a group's fair-share state.
type GroupClock struct {
	// Tag is the start tag of the group's next request.
	Tag uint64 `json:"tag"`
	// Weight is the group's share (0 means 1).
	Weight  int `json:"weight,omitempty"`
	waiting int
}

func (g *GroupClock) cost() uint64 { return fairCost / uint64(max(g.Weight, 1)) }

type signature struct {
	key     string
	named   string
	env     string
	hwType  string
	hwModel string
	image   string
	tags    map[string]string
	buckets map[bucketKey]*bucket
}

type bucketKey struct {
	prio  int
	group string
}

type bucket struct {
	key bucketKey
	sig *signature
	l   list.List // of *Request, in QueueSeq order
}

type queueEntry struct {
	b  *bucket
	el *list.Element
}

func newQueue() *Queue {
	q := &Queue{Groups: map[string]*GroupClock{}}
	q.resetIndexes()
	return q
}

func (q *Queue) resetIndexes() {
	q.sigs, q.anySigs = map[string]*signature{}, map[string]*signature{}
	q.named, q.byID = map[string]map[string]*signature{}, map[int64]*queueEntry{}
	q.free, q.freeValid, q.possible = map[string]bool{}, false, map[string]bool{}
	q.trust = map[string]int{}
}

// Len is the number of waiting requests.
func (q *Queue) Len() int { return len(q.byID) }

// rebuild recomputes the indexes from the requests (after a restore).
func (q *Queue) rebuild(s *State) {
	q.resetIndexes()
	if q.Groups == nil {
		q.Groups = map[string]*GroupClock{}
	}
	for _, g := range q.Groups {
		g.waiting = 0
	}
	var waiting []*Request
	for _, r := range s.Requests {
		if r.QueueSeq != 0 {
			waiting = append(waiting, r)
		}
	}
	slices.SortFunc(waiting, func(a, b *Request) int { return cmpU64(a.QueueSeq, b.QueueSeq) })
	for _, r := range waiting {
		q.insert(r, false)
	}
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// signatureKey is the canonical form of a request's constraints.
func signatureKey(r *Request) string {
	var b strings.Builder
	named := r.RequestedDevice
	if named == "any" {
		named = ""
	}
	for _, f := range []string{named, r.Environment, r.HardwareType, r.HardwareModel, r.Image} {
		b.WriteString(f)
		b.WriteByte(0)
	}
	for _, k := range slices.Sorted(maps.Keys(r.Tags)) {
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(r.Tags[k])
		b.WriteByte(0)
	}
	return b.String()
}

func (q *Queue) signatureOf(r *Request) *signature {
	key := signatureKey(r)
	if sig, ok := q.sigs[key]; ok {
		return sig
	}
	sig := &signature{key: key, env: r.Environment, hwType: r.HardwareType, hwModel: r.HardwareModel,
		image: r.Image, tags: maps.Clone(r.Tags), buckets: map[bucketKey]*bucket{}}
	if sig.env == "any" {
		sig.env = ""
	}
	if r.RequestedDevice != "any" {
		sig.named = r.RequestedDevice
		if q.named[sig.named] == nil {
			q.named[sig.named] = map[string]*signature{}
		}
		q.named[sig.named][key] = sig
	} else {
		q.anySigs[key] = sig
	}
	q.sigs[key] = sig
	return sig
}

func (q *Queue) dropSignature(sig *signature) {
	delete(q.sigs, sig.key)
	if sig.named == "" {
		delete(q.anySigs, sig.key)
		return
	}
	delete(q.named[sig.named], sig.key)
	if len(q.named[sig.named]) == 0 {
		delete(q.named, sig.named)
	}
}

func (q *Queue) group(name string) *GroupClock {
	g, ok := q.Groups[name]
	if !ok {
		g = &GroupClock{}
		q.Groups[name] = g
	}
	return g
}

// insert files r (whose QueueSeq is set) in its bucket: at the back, or at
// the front when front is true (a request put back after a failed
// assignment, which was the head).
func (q *Queue) insert(r *Request, front bool) {
	sig := q.signatureOf(r)
	k := bucketKey{prio: r.Priority, group: r.FairGroup()}
	b, ok := sig.buckets[k]
	if !ok {
		b = &bucket{key: k, sig: sig}
		sig.buckets[k] = b
	}
	var el *list.Element
	if front {
		el = b.l.PushFront(r)
	} else {
		el = b.l.PushBack(r)
	}
	q.byID[r.ID] = &queueEntry{b: b, el: el}
	g := q.group(k.group)
	if g.waiting == 0 && g.Tag < q.Virtual {
		g.Tag = q.Virtual
	}
	g.waiting++
}

// remove takes r out of the indexes (QueueSeq is left to the caller).
func (q *Queue) remove(r *Request) {
	e, ok := q.byID[r.ID]
	if !ok {
		return
	}
	delete(q.byID, r.ID)
	b := e.b
	b.l.Remove(e.el)
	if b.l.Len() == 0 {
		delete(b.sig.buckets, b.key)
		if len(b.sig.buckets) == 0 {
			q.dropSignature(b.sig)
		}
	}
	if g, ok := q.Groups[b.key.group]; ok {
		g.waiting--
		if g.waiting <= 0 && g.Tag <= q.Virtual && g.Weight == 0 {
			delete(q.Groups, b.key.group)
		}
	}
}

// maxIdleGroups is how many group clocks the queue keeps before it
// forgets those that wait no more and are behind the clock (they would
// restart from the clock anyway).
const maxIdleGroups = 1000

func (q *Queue) sweepGroups() {
	for name, g := range q.Groups {
		if g.waiting <= 0 && g.Tag <= q.Virtual && g.Weight == 0 {
			delete(q.Groups, name)
		}
	}
}

// Waiting reports whether request id is in the queue.
func (q *Queue) Waiting(id int64) bool { _, ok := q.byID[id]; return ok }

// enqueue puts a request at the back of the queue.
func (tx *txn) enqueue(r *Request) {
	q := tx.s.Queue
	if r.QueueSeq != 0 {
		return
	}
	q.Seq++
	r.QueueSeq, r.QueuedAt, r.Reason = q.Seq, tx.at, ""
	q.insert(r, false)
	q.Index = tx.index
	tx.enqueued = append(tx.enqueued, r.ID)
	tx.touchRequest(r.ID)
}

// dequeue takes a request out of the queue (it was served, gave up or
// left its waiting state).
func (tx *txn) dequeue(r *Request) {
	if r.QueueSeq == 0 {
		return
	}
	tx.s.Queue.remove(r)
	r.QueueSeq = 0
	tx.s.Queue.Index = tx.index
	tx.touchRequest(r.ID)
}

// aged reports whether r has waited long enough at command time to join
// the aged class.
func (s *State) aged(r *Request, at time.Time) bool {
	return at.Sub(r.QueuedAt) >= s.scaled(AgingAfter)
}

// before reports whether a is served before b at time at: aged requests
// first; then higher priority; then the group with the smaller fair-share
// tag; then arrival order. It is a total order (sequence numbers are
// unique), so no choice depends on map iteration.
func (s *State) before(a, b *Request, at time.Time) bool {
	aa, ab := s.aged(a, at), s.aged(b, at)
	if aa != ab {
		return aa
	}
	if !aa && a.Priority != b.Priority {
		return a.Priority > b.Priority
	}
	q := s.Queue
	var ta, tb uint64
	if g, ok := q.Groups[a.FairGroup()]; ok {
		ta = g.Tag
	}
	if g, ok := q.Groups[b.FairGroup()]; ok {
		tb = g.Tag
	}
	if ta != tb {
		return ta < tb
	}
	return a.QueueSeq < b.QueueSeq
}

// matchesStatic reports whether d satisfies sig's constraints, whatever
// its state.
func (s *State) matchesStatic(sig *signature, d *Device) bool {
	if sig.named != "" && d.Name != sig.named {
		return false
	}
	if sig.env != "" && d.Environment != sig.env {
		return false
	}
	return s.matchesInventory(sig, d) && s.PXEConfigFor(sig.image, d.HardwareType) != ""
}

// matchesInventory reports whether d has the hardware and tags sig asks
// for: what only the inventory changes. (Environments and image-to-PXE
// mappings are set through the API too, so a request may wait for them.)
func (s *State) matchesInventory(sig *signature, d *Device) bool {
	if sig.named != "" && d.Name != sig.named {
		return false
	}
	if sig.hwType != "" || sig.hwModel != "" {
		hw, ok := s.HardwareTypes[d.HardwareType]
		if !ok || sig.hwType != "" && hw.Type != sig.hwType || sig.hwModel != "" && hw.Model != sig.hwModel {
			return false
		}
	}
	for k, v := range sig.tags {
		if d.Tags[k] != v {
			return false
		}
	}
	return true
}

// isFree reports whether a request may claim d now: idle, unclaimed, on a
// server that is up.
func (tx *txn) isFree(d *Device) bool {
	if tx.devices == nil || d.RequestID != 0 || !tx.devices.Available(d.State) {
		return false
	}
	srv, ok := tx.s.Servers[d.ImagingServer]
	return !ok || !srv.Down
}

// markDevice asks the queue to look at a device at the end of the Apply
// (its free-ness or its matches may have changed).
func (tx *txn) markDevice(name string) {
	if n := len(tx.dirty); n-1 > tx.dirtyDone && tx.dirty[n-1] == name {
		return // marked and not looked at yet
	}
	tx.dirty = append(tx.dirty, name)
}

// markAllDevices marks every device (a change that may affect all
// matches, such as a PXE config mapping or a server's health).
func (tx *txn) markAllDevices(filter func(*Device) bool) {
	for _, name := range slices.Sorted(maps.Keys(tx.s.Devices)) {
		if filter == nil || filter(tx.s.Devices[name]) {
			tx.markDevice(name)
		}
	}
}

// runQueue assigns boards to waiting requests after a change: every
// request that entered the queue in this Apply takes the best free board
// it matches, if any (no request waiting before wanted those, or they
// would have been taken; a board freed in this Apply was used last, so it
// comes after the others); every device marked in this Apply that is free
// goes to the first waiting request it matches (in the queue's order). Then
// the requests that cannot be served as they asked give up. It runs at the
// end of every Apply and costs nothing when nothing was marked.
func (tx *txn) runQueue() {
	if tx.requests == nil || tx.devices == nil {
		return
	}
	s, q := tx.s, tx.s.Queue
	if !q.freeValid {
		// After a restore. Only the index is rebuilt: no free board
		// matched a waiting request when the snapshot was taken, and a
		// node that restored must assign exactly what the others do.
		q.freeValid = true
		for name, d := range s.Devices {
			if tx.isFree(d) {
				q.free[name] = true
			}
		}
	}
	for tx.dirtyDone < len(tx.dirty) || tx.enqueuedDone < len(tx.enqueued) {
		for ; tx.enqueuedDone < len(tx.enqueued); tx.enqueuedDone++ {
			r, ok := s.Requests[tx.enqueued[tx.enqueuedDone]]
			if !ok || r.QueueSeq == 0 {
				continue
			}
			sig := q.sigs[signatureKey(r)]
			if !tx.possible(sig) {
				r.Reason = "no board in the inventory has the hardware and tags the request asks for (" + describeSignature(sig) + ")"
				tx.dequeue(r)
				tx.requests.GiveUp(&RequestTx{tx: tx, r: r}, false)
				continue
			}
			for r.QueueSeq != 0 {
				d := tx.bestFreeFor(r, sig)
				if d == nil {
					break
				}
				tx.assign(r, d)
			}
			if r.QueueSeq != 0 && r.NoWait {
				r.Reason = "no suitable board is free and the request asked not to wait"
				if r.RequestedDevice != "any" {
					r.Reason = fmt.Sprintf("device %s is not free and the request asked not to wait", r.RequestedDevice)
				}
				tx.dequeue(r)
				tx.requests.GiveUp(&RequestTx{tx: tx, r: r}, true)
			}
		}
		for ; tx.dirtyDone < len(tx.dirty); tx.dirtyDone++ {
			name := tx.dirty[tx.dirtyDone]
			d, ok := s.Devices[name]
			if !ok || !tx.isFree(d) {
				delete(q.free, name)
				continue
			}
			q.free[name] = true
			if q.Len() > 0 && !tx.rejected[name] {
				if r := tx.bestRequestFor(d); r != nil {
					tx.assign(r, d)
				}
			}
		}
	}
}

func describeSignature(sig *signature) string {
	var parts []string
	add := func(k, v string) {
		if v != "" {
			parts = append(parts, k+"="+v)
		}
	}
	add("device", sig.named)
	add("hardware_type", sig.hwType)
	add("hardware_model", sig.hwModel)
	for _, k := range slices.Sorted(maps.Keys(sig.tags)) {
		add("tag "+k, sig.tags[k])
	}
	return strings.Join(parts, ", ")
}

// possible reports whether any device of the inventory has the hardware
// and tags the signature asks for (cached until the inventory changes).
func (tx *txn) possible(sig *signature) bool {
	q := tx.s.Queue
	if ok, cached := q.possible[sig.key]; cached {
		return ok
	}
	ok := false
	if sig.named != "" {
		d, found := tx.s.Devices[sig.named]
		ok = found && tx.s.matchesInventory(sig, d)
	} else {
		for _, d := range tx.s.Devices {
			if tx.s.matchesInventory(sig, d) {
				ok = true
				break
			}
		}
	}
	q.possible[sig.key] = ok
	return ok
}

// bestRequestFor returns the first waiting request, in the queue's order,
// that d may serve (nil if none).
func (tx *txn) bestRequestFor(d *Device) *Request {
	s, q := tx.s, tx.s.Queue
	var best *Request
	consider := func(sig *signature) {
		if !s.matchesStatic(sig, d) {
			return
		}
		for _, b := range sig.buckets {
			if h := b.l.Front().Value.(*Request); best == nil || s.before(h, best, tx.at) {
				best = h
			}
		}
	}
	for _, sig := range q.anySigs {
		consider(sig)
	}
	for _, sig := range q.named[d.Name] {
		consider(sig)
	}
	return best
}

// bestFreeFor returns the free device r should take (nil if none): one
// imaged in advance with exactly what r asks for, then the one whose
// history shows the most trust, then one already carrying its reusable
// image with an equal boot config, then the least recently used, then by
// name.
func (tx *txn) bestFreeFor(r *Request, sig *signature) *Device {
	s := tx.s
	img := s.Images[r.Image]
	reusable := func(d *Device) bool {
		return img != nil && img.CanReuse && d.Image == r.Image && sameBootConfig(d.BootConfig, r.BootConfig)
	}
	// A board imaged in advance with exactly what r asks for is handed
	// out without imaging again (lifeguard).
	fresh := func(d *Device) bool {
		return d.Fresh && d.Image == r.Image && d.BootConfig == r.BootConfig
	}
	// Among the rest, the one whose history shows the most trust
	// (DeviceMachine.Trust: clean net boots in a row).
	better := func(a *Device, ta int, b *Device, tb int) bool {
		if fa, fb := fresh(a), fresh(b); fa != fb {
			return fa
		}
		if ta != tb {
			return ta > tb
		}
		if ra, rb := reusable(a), reusable(b); ra != rb {
			return ra
		}
		if !a.LastUsed.Equal(b.LastUsed) {
			return a.LastUsed.Before(b.LastUsed)
		}
		return a.Name < b.Name
	}
	var best *Device
	var bestTrust int
	consider := func(name string) {
		d, ok := s.Devices[name]
		if !ok || tx.rejected[name] || !tx.isFree(d) || !s.matchesStatic(sig, d) {
			return
		}
		td, known := s.Queue.trust[name]
		if !known {
			td = tx.devices.Trust(d.History)
			s.Queue.trust[name] = td
		}
		if best == nil || better(d, td, best, bestTrust) {
			best, bestTrust = d, td
		}
	}
	if sig.named != "" {
		if s.Queue.free[sig.named] {
			consider(sig.named)
		}
		return best
	}
	for name := range s.Queue.free {
		consider(name)
	}
	return best
}

// assign gives d to r: it takes r out of the queue, advances the fair-share
// clock and has the request machine claim and image d. If the device will
// not take the request, everything is put back and d is not offered again
// in this Apply.
func (tx *txn) assign(r *Request, d *Device) {
	q := tx.s.Queue
	g := q.group(r.FairGroup())
	oldTag, oldVirtual := g.Tag, q.Virtual
	q.Virtual = g.Tag
	g.Tag += g.cost()
	if len(q.Groups) > maxIdleGroups {
		q.sweepGroups()
	}
	seq := r.QueueSeq
	tx.dequeue(r)
	if tx.requests.Assign(&RequestTx{tx: tx, r: r}, d.Name) {
		return
	}
	if tx.rejected == nil {
		tx.rejected = map[string]bool{}
	}
	tx.rejected[d.Name] = true
	q.Virtual = oldVirtual
	g = q.group(r.FairGroup())
	g.Tag = oldTag
	if r.QueueSeq == 0 {
		r.QueueSeq = seq
		q.insert(r, true)
	}
}

// sameBootConfig compares two boot configs as parsed JSON; unparsable or
// empty strings compare as {} (as the original).
func sameBootConfig(a, b string) bool {
	parse := func(s string) any {
		var v any
		if json.Unmarshal([]byte(s), &v) != nil || v == nil {
			return map[string]any{}
		}
		return v
	}
	return reflect.DeepEqual(parse(a), parse(b))
}

// ValidateTags checks device tags or a request's tag constraints.
func ValidateTags(tags map[string]string) error {
	if len(tags) > MaxTags {
		return fmt.Errorf("%w: at most %d tags", ErrInvalid, MaxTags)
	}
	for k, v := range tags {
		if k == "" || len(k) > MaxTagLen || len(v) > MaxTagLen || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(v, 0) {
			return fmt.Errorf("%w: tag %q: keys must be 1-%d characters without '=', values at most %d", ErrInvalid, k, MaxTagLen, MaxTagLen)
		}
	}
	return nil
}

func (tx *txn) applyQueueSetWeight(b []byte) (any, error) {
	var c QueueSetWeight
	tx.decode(b, &c)
	switch {
	case c.Group == "" || len(c.Group) > maxGroupLen:
		return nil, fmt.Errorf("%w: group must be 1-%d characters", ErrInvalid, maxGroupLen)
	case c.Weight < 0 || c.Weight > MaxGroupWeight:
		return nil, fmt.Errorf("%w: weight must be between 0 (reset to 1) and %d", ErrInvalid, MaxGroupWeight)
	}
	q := tx.s.Queue
	g := q.group(c.Group)
	if g.waiting == 0 && g.Tag < q.Virtual {
		g.Tag = q.Virtual
	}
	g.Weight = c.Weight
	if c.Weight == 0 && g.waiting == 0 && g.Tag <= q.Virtual {
		delete(q.Groups, c.Group)
	}
	q.Index = tx.index
	return nil, nil
}

// GroupWeights returns the weights set (groups not listed weigh 1).
func (q *Queue) GroupWeights() map[string]int {
	out := map[string]int{}
	for name, g := range q.Groups {
		if g.Weight > 0 {
			out[name] = g.Weight
		}
	}
	return out
}

func (tx *txn) applyQueueEpoch(b []byte) (any, error) {
	var c QueueEpoch
	tx.decode(b, &c)
	if tx.s.Queue.Epoch == 0 {
		tx.s.Queue.Epoch = tx.index
	}
	return nil, nil
}
