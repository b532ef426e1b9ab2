package fsm

import (
	"maps"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Every command type that has an applier has a body CheckCommand decodes.
func TestCheckCommand_KnowsEveryApplier(t *testing.T) {
	require.ElementsMatch(t, slices.Collect(maps.Keys(appliers)), slices.Collect(maps.Keys(commandBodies)))
	for typ, body := range commandBodies {
		b, err := Encode(typ, body())
		require.NoError(t, err)
		require.NoError(t, CheckCommand(b), "%s", typ)
	}
}

// Every reference inside an entity of the state (a map, a slice, a
// pointer) must be copied by clone, or Apply could change a snapshot
// while Persist encodes it. A new one fails here until clone copies it
// and it is listed.
func TestClone_CopiesEveryReference(t *testing.T) {
	copied := map[string]bool{"Image.BootConfigKeys": true, "Device.Counters": true, "Request.Counters": true, "Request.Callbacks": true, "Device.Tags": true, "Request.Tags": true, "Request.Claims": true, "Device.History": true, "RelayHealth.Recent": true, "Rack.Servers": true}
	for _, v := range []any{ImagingServer{}, HardwareType{}, Image{}, PXEConfig{}, ImagePXEConfig{}, Device{}, Request{}, RelayBoard{}, Token{}, RelayHealth{}, Rack{}} {
		typ := reflect.TypeOf(v)
		for i := range typ.NumField() {
			f := typ.Field(i)
			switch f.Type.Kind() {
			case reflect.Map, reflect.Slice, reflect.Pointer, reflect.Interface, reflect.Array, reflect.Struct:
				if f.Type == reflect.TypeOf(time.Time{}) {
					continue
				}
				require.True(t, copied[typ.Name()+"."+f.Name], "%s.%s (%s) is not copied by clone", typ.Name(), f.Name, f.Type)
			}
		}
	}
	st := reflect.TypeOf(State{})
	for i := range st.NumField() {
		require.Contains(t, []string{"Servers", "HardwareTypes", "Images", "PXEConfigs", "ImagePXEConfigs", "Devices",
			"Requests", "RelayBoards", "NextID", "TimeScale", "MinDeviceTimeout", "idem", "idemOrder", "autoOrder", "Queue", "History", "Tokens", "Policy", "RelayHealth", "Racks", "TFTPHealth"},
			st.Field(i).Name, "State.%s is not copied by clone", st.Field(i).Name)
	}
}

// A snapshot holds the state of the moment it was taken, whatever Apply
// does before Persist runs.
func TestSnapshot_PersistsTheStateItWasTakenAt(t *testing.T) {
	f := New(Config{})
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	apply := func(index uint64, typ CommandType, cmd Command) {
		b, err := Encode(typ, cmd)
		require.NoError(t, err)
		require.NoError(t, f.ApplyCommand(index, b).Error())
	}
	apply(1, CmdImageUpsert, &ImageUpsert{Header: Header{At: at, IdempotencyKey: "k1"}, Image: ImageSpec{Name: "b2g", BootConfigKeys: []string{"a"}}})
	f.stateMu.RLock()
	want, err := encodeSnapshotAt(f.s, 1)
	f.stateMu.RUnlock()
	require.NoError(t, err)

	snap, err := f.Snapshot()
	require.NoError(t, err)
	apply(2, CmdImageUpsert, &ImageUpsert{Header: Header{At: at, IdempotencyKey: "k2"}, Image: ImageSpec{Name: "b2g", BootConfigKeys: []string{"b", "c"}}})
	apply(3, CmdImageUpsert, &ImageUpsert{Header: Header{At: at}, Image: ImageSpec{Name: "android"}})
	got, err := encodeSnapshotAt(snap.(*snapshot).state, snap.(*snapshot).index)
	require.NoError(t, err)
	require.Equal(t, string(want), string(got))
}
