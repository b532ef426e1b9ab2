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
)

// snapshotVersion is written in the header; Restore refuses other versions.
const snapshotVersion = 1

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
	recRelayHealth      recordType = 14
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

// encodeSnapshotAt writes the header (with index, the last log entry s
// reflects) and then one record per entity, each as a type byte, a uvarint
// length and JSON. Records are sorted by key, so equal states at equal
// indexes encode to equal bytes.
func encodeSnapshotAt(s *State, index uint64) ([]byte, error) {
	var buf bytes.Buffer
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
		buf.WriteByte(byte(t))
		buf.Write(lenBuf[:binary.PutUvarint(lenBuf[:], uint64(len(b)))])
		buf.Write(b)
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
	putSorted(put, recRelayHealth, s.RelayHealth) // none in older snapshots
	put(recCounters, s.NextID)
	if s.TimeScale != 0 {
		// Deadlines depend on it: a restored node must scale as the
		// others do.
		put(recTimeScale, s.TimeScale)
	}
	if s.MinDeviceTimeout != 0 {
		put(recMinDeviceTimeout, s.MinDeviceTimeout)
	}
	for _, e := range s.idemOrder {
		put(recIdempotency, e)
	}
	for _, e := range s.autoOrder {
		put(recIdempotency, e)
	}
	return buf.Bytes(), err
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
	br := bufio.NewReader(r)
	s := newState()
	var index uint64
	first := true
	for {
		tb, err := br.ReadByte()
		if err == io.EOF {
			if first {
				return nil, 0, fmt.Errorf("restore: empty snapshot")
			}
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
		if h.Version != snapshotVersion {
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
	case recRelayHealth:
		return restoreInto(s.RelayHealth, b, func(v *RelayHealth) string { return v.Addr })
	case recCounters:
		return json.Unmarshal(b, &s.NextID)
	case recTimeScale:
		return json.Unmarshal(b, &s.TimeScale)
	case recMinDeviceTimeout:
		return json.Unmarshal(b, &s.MinDeviceTimeout)
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
