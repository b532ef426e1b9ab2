package fsm

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// snapshotVersion is written in the header. Version 2 added the queue and
// history records; Restore reads versions 1 and 2 (a version 1 snapshot
// has no waiting request: they enter the queue at their next state
// timeout) and refuses others.
const (
	snapshotVersion    = 2
	minSnapshotVersion = 1
)

// recordType tags each record of a snapshot. Numbers are on disk: never
// reuse or reorder them.
type recordType uint8

const (
	recHeader           recordType = 1
	recServer           recordType = 2
	recHardwareType     recordType = 3
	recImage            recordType = 4
	recPXEConfig        recordType = 5
	recImagePXEConfig   recordType = 6
	recDevice           recordType = 7
	recRequest          recordType = 8
	recRelayBoard       recordType = 9
	recCounters         recordType = 10
	recIdempotency      recordType = 11
	recTimeScale        recordType = 12
	recMinDeviceTimeout recordType = 13
	recQueue            recordType = 14
	recHistory          recordType = 15
	recToken            recordType = 16
	recPolicy           recordType = 17
	recRelayHealth      recordType = 18
	recRack             recordType = 19
	recTFTPHealth       recordType = 21
)

// ErrSnapshotVersion is returned by Restore for a snapshot it cannot read.
var ErrSnapshotVersion = errors.New("unsupported snapshot version")

type snapshotHeader struct {
	Version int `json:"version"`
	// Index is the index of the last log entry the state reflects, so
	// that a node restoring the snapshot knows how far it has applied
	// (0: unknown, as in a backup about to be installed elsewhere).
	Index uint64 `json:"index,omitempty"`
}

// encodeSnapshot is encodeSnapshotAt without an index.
func encodeSnapshot(s *State) ([]byte, error) { return encodeSnapshotAt(s, 0) }

// encodeSnapshotAt returns the uncompressed records writeSnapshot writes.
func encodeSnapshotAt(s *State, index uint64) ([]byte, error) {
	var buf bytes.Buffer
	err := writeSnapshot(&buf, s, index)
	return buf.Bytes(), err
}

// writeSnapshot writes the header (with index, the last log entry s
// reflects) and then one record per entity, each as a type byte, a uvarint
// length and JSON. Records are sorted by key, so equal states at equal
// indexes encode to equal bytes.
func writeSnapshot(w io.Writer, s *State, index uint64) error {
	var lenBuf [binary.MaxVarintLen64]byte
	var err error
	put := func(t recordType, v any) {
		if err != nil {
			return
		}
		var b []byte
		if b, err = json.Marshal(v); err != nil {
			err = fmt.Errorf("snapshot record %d: %w", t, err)
			return
		}
		rec := make([]byte, 0, 1+binary.MaxVarintLen64+len(b))
		rec = append(rec, byte(t))
		rec = append(rec, lenBuf[:binary.PutUvarint(lenBuf[:], uint64(len(b)))]...)
		if _, err = w.Write(append(rec, b...)); err != nil {
			err = fmt.Errorf("snapshot record %d: %w", t, err)
		}
	}
	put(recHeader, snapshotHeader{Version: snapshotVersion, Index: index})
	putSorted(put, recServer, s.Servers)
	putSorted(put, recHardwareType, s.HardwareTypes)
	putSorted(put, recImage, s.Images)
	putSorted(put, recPXEConfig, s.PXEConfigs)
	putSorted(put, recImagePXEConfig, s.ImagePXEConfigs)
	putSorted(put, recDevice, s.Devices)
	putSorted(put, recRequest, s.Requests)
	putSorted(put, recRelayBoard, s.RelayBoards)
	putSorted(put, recToken, s.Tokens)
	if s.Policy != "" {
		put(recPolicy, s.Policy)
	}
	putSorted(put, recRelayHealth, s.RelayHealth) // none in older snapshots
	putSorted(put, recRack, s.Racks)              // none in older snapshots
	putSorted(put, recTFTPHealth, s.TFTPHealth)   // none in older snapshots
	put(recCounters, s.NextID)
	if s.TimeScale != 0 {
		// Deadlines depend on it: a restored node must scale as the
		// others do.
		put(recTimeScale, s.TimeScale)
	}
	if s.MinDeviceTimeout != 0 {
		put(recMinDeviceTimeout, s.MinDeviceTimeout)
	}
	put(recQueue, s.Queue)
	put(recHistory, s.History)
	for _, e := range s.idemOrder {
		put(recIdempotency, e)
	}
	for _, e := range s.autoOrder {
		put(recIdempotency, e)
	}
	return err
}

// zstdMagic starts a zstd frame. A snapshot's records start with
// recHeader, so the two cannot be mistaken for each other.
var zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}

// writeCompressedSnapshot writes the records of writeSnapshot as one zstd
// frame: the JSON of a lab's devices repeats its keys and values, and
// compresses some tenfold.
func writeCompressedSnapshot(w io.Writer, s *State, index uint64) error {
	zw, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(zw, 256<<10)
	if err := writeSnapshot(bw, s, index); err != nil {
		zw.Close()
		return err
	}
	if err := bw.Flush(); err != nil {
		zw.Close()
		return err
	}
	return zw.Close()
}

// snapshotReader returns the records of a snapshot read from r, which
// holds them as they are (every snapshot before compression) or in a
// zstd frame. The caller calls done when finished.
func snapshotReader(r io.Reader) (br *bufio.Reader, done func(), err error) {
	br = bufio.NewReaderSize(r, 256<<10)
	if head, _ := br.Peek(len(zstdMagic)); !bytes.Equal(head, zstdMagic) {
		return br, func() {}, nil
	}
	zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(64<<20))
	if err != nil {
		return nil, nil, fmt.Errorf("restore: %w", err)
	}
	return bufio.NewReaderSize(zr, 256<<10), zr.Close, nil
}

func putSorted[K string | int64, V any](put func(recordType, any), t recordType, m map[K]V) {
	for _, k := range slices.Sorted(maps.Keys(m)) {
		put(t, m[k])
	}
}

// decodeSnapshot reads what encodeSnapshot wrote into a new State.
func decodeSnapshot(r io.Reader) (*State, error) {
	s, _, err := decodeSnapshotAt(r)
	return s, err
}

// decodeSnapshotAt reads what encodeSnapshotAt wrote into a new State and
// returns the index its header names.
func decodeSnapshotAt(r io.Reader) (*State, uint64, error) {
	br, done, err := snapshotReader(r)
	if err != nil {
		return nil, 0, err
	}
	defer done()
	s := newState()
	var index uint64
	first := true
	for {
		tb, err := br.ReadByte()
		if err == io.EOF {
			if first {
				return nil, 0, fmt.Errorf("restore: empty snapshot")
			}
			s.Queue.rebuild(s)
			return s, index, nil
		}
		if err != nil {
			return nil, 0, fmt.Errorf("restore: %w", err)
		}
		b, err := readRecordBody(br)
		if err != nil {
			return nil, 0, err
		}
		t := recordType(tb)
		if first != (t == recHeader) {
			return nil, 0, fmt.Errorf("restore: snapshot must start with its header")
		}
		first = false
		if err := s.restoreRecord(t, b); err != nil {
			return nil, 0, fmt.Errorf("restore: record type %d: %w", t, err)
		}
		if t == recHeader {
			var h snapshotHeader
			_ = json.Unmarshal(b, &h) // restoreRecord has checked it
			index = h.Index
		}
	}
}

// readRecordBody reads a record's uvarint length and body.
func readRecordBody(br *bufio.Reader) ([]byte, error) {
	n, err := binary.ReadUvarint(br)
	if err != nil {
		return nil, fmt.Errorf("restore: record length: %w", err)
	}
	if n > 64<<20 {
		return nil, fmt.Errorf("restore: record of %d bytes", n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(br, b); err != nil {
		return nil, fmt.Errorf("restore: record body: %w", err)
	}
	return b, nil
}

// WithoutIndex returns a copy of the snapshot data whose header names no
// log index. A backup is installed at a new index of the cluster it is
// restored into, so the index it was taken at means nothing there.
func WithoutIndex(data []byte) ([]byte, error) {
	if bytes.HasPrefix(data, zstdMagic) {
		// A compressed snapshot: its records, uncompressed (Restore
		// reads either).
		br, done, err := snapshotReader(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		raw, err := io.ReadAll(br)
		done()
		if err != nil {
			return nil, fmt.Errorf("%w: snapshot: %v", ErrInvalid, err)
		}
		data = raw
	}
	if len(data) == 0 || recordType(data[0]) != recHeader {
		return nil, fmt.Errorf("%w: snapshot must start with its header", ErrInvalid)
	}
	n, k := binary.Uvarint(data[1:])
	if k <= 0 || n > uint64(len(data)-1-k) {
		return nil, fmt.Errorf("%w: snapshot header is cut short", ErrInvalid)
	}
	body, rest := data[1+k:1+k+int(n)], data[1+k+int(n):]
	var h snapshotHeader
	if err := json.Unmarshal(body, &h); err != nil {
		return nil, fmt.Errorf("%w: snapshot header: %v", ErrInvalid, err)
	}
	h.Index = 0
	hb, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	var lenBuf [binary.MaxVarintLen64]byte
	out := make([]byte, 0, len(data))
	out = append(out, byte(recHeader))
	out = append(out, lenBuf[:binary.PutUvarint(lenBuf[:], uint64(len(hb)))]...)
	out = append(out, hb...)
	return append(out, rest...), nil
}

func restoreInto[K comparable, V any](m map[K]*V, b []byte, key func(*V) K) error {
	v := new(V)
	if err := json.Unmarshal(b, v); err != nil {
		return err
	}
	m[key(v)] = v
	return nil
}

func (s *State) restoreRecord(t recordType, b []byte) error {
	switch t {
	case recHeader:
		var h snapshotHeader
		if err := json.Unmarshal(b, &h); err != nil {
			return err
		}
		if h.Version < minSnapshotVersion || h.Version > snapshotVersion {
			return fmt.Errorf("%w: %d", ErrSnapshotVersion, h.Version)
		}
		return nil
	case recServer:
		return restoreInto(s.Servers, b, func(v *ImagingServer) string { return v.Name })
	case recHardwareType:
		return restoreInto(s.HardwareTypes, b, (*HardwareType).Key)
	case recImage:
		return restoreInto(s.Images, b, func(v *Image) string { return v.Name })
	case recPXEConfig:
		return restoreInto(s.PXEConfigs, b, func(v *PXEConfig) string { return v.Name })
	case recImagePXEConfig:
		return restoreInto(s.ImagePXEConfigs, b, func(v *ImagePXEConfig) string { return imagePXEKey(v.Image, v.HardwareType) })
	case recDevice:
		return restoreInto(s.Devices, b, func(v *Device) string { return v.Name })
	case recRequest:
		return restoreInto(s.Requests, b, func(v *Request) int64 { return v.ID })
	case recRelayBoard:
		return restoreInto(s.RelayBoards, b, func(v *RelayBoard) string { return v.Name })
	case recToken:
		return restoreInto(s.Tokens, b, func(v *Token) string { return v.Name })
	case recPolicy:
		return json.Unmarshal(b, &s.Policy)
	case recRelayHealth:
		return restoreInto(s.RelayHealth, b, func(v *RelayHealth) string { return v.Addr })
	case recRack:
		return restoreInto(s.Racks, b, func(v *Rack) string { return v.Name })
	case recTFTPHealth:
		return restoreInto(s.TFTPHealth, b, func(v *RelayHealth) string { return v.Addr })
	case recCounters:
		return json.Unmarshal(b, &s.NextID)
	case recTimeScale:
		return json.Unmarshal(b, &s.TimeScale)
	case recMinDeviceTimeout:
		return json.Unmarshal(b, &s.MinDeviceTimeout)
	case recQueue:
		q := newQueue()
		if err := json.Unmarshal(b, q); err != nil {
			return err
		}
		if q.Groups == nil {
			q.Groups = map[string]*GroupClock{}
		}
		s.Queue = q
		return nil
	case recHistory:
		h := newHistory()
		if err := json.Unmarshal(b, h); err != nil {
			return err
		}
		if h.Imaging == nil {
			h.Imaging = map[string]*Mean{}
		}
		if h.Hold == nil {
			h.Hold = map[string]*Mean{}
		}
		s.History = h
		return nil
	case recIdempotency:
		e := new(idemEntry)
		if err := json.Unmarshal(b, e); err != nil {
			return err
		}
		s.idem[e.Key] = e
		if strings.HasPrefix(e.Key, AutoKeyPrefix) {
			s.autoOrder = append(s.autoOrder, e)
		} else {
			s.idemOrder = append(s.idemOrder, e)
		}
		return nil
	default:
		// Records from a newer version that this one does not know are
		// an error: skipping them would silently lose state.
		return fmt.Errorf("unknown record type")
	}
}

// recordKinds names the record types StateRecords returns.
var recordKinds = map[recordType]string{
	recServer: "server", recHardwareType: "hardware_type", recImage: "image", recPXEConfig: "pxe_config",
	recImagePXEConfig: "image_pxe_config", recDevice: "device", recRequest: "request", recRelayBoard: "relay_board",
	recRack: "rack", recCounters: "counters", recTimeScale: "time_scale", recMinDeviceTimeout: "min_device_timeout",
}

// StateRecord is one entity of the replicated state as a snapshot holds it.
type StateRecord struct {
	// Kind is the entity kind: "server", "device", "request", ...
	Kind string
	// JSON is the entity as the snapshot encodes it.
	JSON json.RawMessage
}

// StateRecords returns the replicated state as snapshot records in
// snapshot order, without the header and without the remembered results
// of idempotency keys (every command adds one, even a refused one), so
// that equal states give equal records on every node: tests compare them
// to show that a refused call changed nothing.
func (f *FSM) StateRecords() ([]StateRecord, error) {
	f.stateMu.RLock()
	b, err := encodeSnapshotAt(f.s, 0)
	f.stateMu.RUnlock()
	if err != nil {
		return nil, err
	}
	var out []StateRecord
	for len(b) > 0 {
		t := recordType(b[0])
		n, k := binary.Uvarint(b[1:])
		body := b[1+k : 1+k+int(n)]
		b = b[1+k+int(n):]
		if kind, ok := recordKinds[t]; ok {
			out = append(out, StateRecord{Kind: kind, JSON: body})
		}
	}
	return out, nil
}

// clone copies the state deeply enough that Apply may change the original
// while the copy is encoded: every entity is copied, with its maps and
// slices. Idempotency entries are shared: Apply never changes one, it
// replaces it (the queues are copied, as pruning clears their slots).
// TestClone_CopiesEveryReference keeps it in step with the entity types.
func (s *State) clone() *State {
	// A request's callbacks and claims are changed in place (Done, To).
	request := func(v *Request) {
		v.Counters, v.Callbacks, v.Claims = maps.Clone(v.Counters), slices.Clone(v.Callbacks), slices.Clone(v.Claims)
		v.Tags = maps.Clone(v.Tags)
	}
	c := &State{
		Servers:         cloneEntities(s.Servers, nil),
		HardwareTypes:   cloneEntities(s.HardwareTypes, nil),
		Images:          cloneEntities(s.Images, func(v *Image) { v.BootConfigKeys = slices.Clone(v.BootConfigKeys) }),
		PXEConfigs:      cloneEntities(s.PXEConfigs, nil),
		ImagePXEConfigs: cloneEntities(s.ImagePXEConfigs, nil),
		Devices: cloneEntities(s.Devices, func(v *Device) {
			v.Counters, v.Tags, v.History = maps.Clone(v.Counters), maps.Clone(v.Tags), slices.Clone(v.History)
		}),
		Requests:         cloneEntities(s.Requests, request),
		RelayBoards:      cloneEntities(s.RelayBoards, nil),
		NextID:           maps.Clone(s.NextID),
		TimeScale:        s.TimeScale,
		MinDeviceTimeout: s.MinDeviceTimeout,
		idem:             s.idem, // not encoded: the queues are
		idemOrder:        slices.Clone(s.idemOrder),
		autoOrder:        slices.Clone(s.autoOrder),
		Tokens:           cloneEntities(s.Tokens, nil),
		Racks:            cloneEntities(s.Racks, func(v *Rack) { v.Servers = slices.Clone(v.Servers) }),
		RelayHealth:      cloneEntities(s.RelayHealth, func(v *RelayHealth) { v.Recent = slices.Clone(v.Recent) }),
		TFTPHealth:       cloneEntities(s.TFTPHealth, func(v *RelayHealth) { v.Recent = slices.Clone(v.Recent) }),
		Policy:           s.Policy,
		Queue:            s.Queue.cloneEncoded(),
		History:          s.History.clone(),
	}
	return c
}

// cloneEncoded copies what a snapshot encodes of the queue: its clocks.
// The indexes are rebuilt from the requests on restore.
func (q *Queue) cloneEncoded() *Queue {
	return &Queue{Seq: q.Seq, Virtual: q.Virtual, Index: q.Index, Epoch: q.Epoch,
		Groups: cloneEntities(q.Groups, nil)}
}

func (h *History) clone() *History {
	return &History{Imaging: cloneEntities(h.Imaging, nil), Hold: cloneEntities(h.Hold, nil), Wanted: cloneEntities(h.Wanted, nil)}
}

// cloneEntities copies every entity of m; deep, if set, copies the
// references inside one.
func cloneEntities[K comparable, V any](m map[K]*V, deep func(*V)) map[K]*V {
	out := make(map[K]*V, len(m))
	for k, p := range m {
		v := *p
		if deep != nil {
			deep(&v)
		}
		out[k] = &v
	}
	return out
}
