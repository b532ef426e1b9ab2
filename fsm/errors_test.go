package fsm_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/fsm"
)

func TestWireError(t *testing.T) {
	sentinels := []error{
		fsm.ErrUnknownDevice, fsm.ErrUnknownImage, fsm.ErrUnknownPXEConfig, fsm.ErrUnknownHardwareType,
		fsm.ErrUnknownServer, fsm.ErrUnknownRequest, fsm.ErrInvalid, fsm.ErrExists, fsm.ErrConflict, fsm.ErrTooManyChanges,
		fsm.ErrNoMachine,
	}
	for _, sentinel := range sentinels {
		t.Run(sentinel.Error(), func(t *testing.T) {
			err := fmt.Errorf("set pxe for panda-0001: %w", sentinel)
			we := fsm.WireError(err)
			require.Equal(t, err.Error(), we.Message)
			require.NotEmpty(t, we.Code)

			b, jerr := json.Marshal(we)
			require.NoError(t, jerr)
			var back fsm.Error
			require.NoError(t, json.Unmarshal(b, &back))
			require.ErrorIs(t, &back, sentinel)
			require.Equal(t, err.Error(), back.Error())
			for _, other := range sentinels {
				if other != sentinel {
					require.NotErrorIs(t, &back, other)
				}
			}

			// An *Error passes through unchanged.
			require.Same(t, we, fsm.WireError(fmt.Errorf("forwarded: %w", we)))
		})
	}

	require.Nil(t, fsm.WireError(nil))
	plain := fsm.WireError(errors.New("disk on fire"))
	require.Equal(t, &fsm.Error{Message: "disk on fire"}, plain)
	require.Nil(t, plain.Unwrap())
}

func TestResult_JSON(t *testing.T) {
	f := testFSM(t)
	res := apply(t, f, 1, fsm.CmdDeviceSetComments, fsm.DeviceSetComments{Header: fsm.Header{At: t0}, Device: "panda-0001"})

	// A leader hands the result to the follower that forwarded the command.
	b, err := json.Marshal(res)
	require.NoError(t, err)
	var back fsm.Result
	require.NoError(t, json.Unmarshal(b, &back))
	require.ErrorIs(t, back.Error(), fsm.ErrUnknownDevice)
	require.ErrorIs(t, back.Decode(&struct{}{}), fsm.ErrUnknownDevice)

	res = applyOK(t, f, 2, fsm.CmdImageUpsert, fsm.ImageUpsert{Header: fsm.Header{At: t0}, Image: fsm.ImageSpec{Name: "b2g"}})
	b, err = json.Marshal(res)
	require.NoError(t, err)
	back = fsm.Result{}
	require.NoError(t, json.Unmarshal(b, &back))
	require.NoError(t, back.Error())
	var img fsm.Image
	require.NoError(t, back.Decode(&img))
	require.Equal(t, "b2g", img.Name)

	// No value and no error: Error is an untyped nil and Decode a no-op.
	var empty fsm.Result
	require.True(t, empty.Error() == nil)
	require.NoError(t, empty.Decode(&img))
	require.NoError(t, empty.Decode(nil))
}

func TestValidName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"panda-0001", true},
		{"b2g_v2", true},
		{"X", true},
		{strings.Repeat("a", 32), true},
		{"", false},
		{strings.Repeat("a", 33), false},
		{"../x", false},
		{"a/b", false},
		{"a.b", false},
		{"a b", false},
		{"é", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := fsm.ValidName(tc.name)
			if tc.ok {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, fsm.ErrInvalid)
			}
		})
	}
}

func TestNormalizeMAC(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr bool
	}{
		{in: "AA:BB:CC:DD:EE:FF", want: "aabbccddeeff"},
		{in: "aa-bb-cc-dd-ee-ff", want: "aabbccddeeff"},
		{in: "001122334455", want: "001122334455"},
		{in: "", wantErr: true},
		{in: "AA:BB:CC:DD:EE", wantErr: true},
		{in: "AA:BB:CC:DD:EE:FF:00", wantErr: true},
		{in: "GG:BB:CC:DD:EE:FF", wantErr: true},
		{in: "AA.BB.CC.DD.EE.FF", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := fsm.NormalizeMAC(tc.in)
			if tc.wantErr {
				require.ErrorIs(t, err, fsm.ErrInvalid)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got, "NormalizeMAC(%q)", tc.in)
		})
	}
}
