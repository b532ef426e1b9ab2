package main

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/bmm/bmmtest"
	"github.com/mozpool/mozpool/internal/testlog"
)

func newRelayBoard(t *testing.T, opts bmmtest.RelayBoardOptions) *bmmtest.RelayBoard {
	t.Helper()
	opts.Recovery = -1
	opts.Logger = testlog.New(t)
	b, err := bmmtest.NewRelayBoard(opts)
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	return b
}

func TestRelayCommands(t *testing.T) {
	b := newRelayBoard(t, bmmtest.RelayBoardOptions{})
	steps := []struct {
		args     []string
		want     string
		powered  bool
		wantCmds []string // appended by this step
	}{
		{[]string{"status", b.Addr(), "2", "3"}, "bank 2, relay 3 status: on\n", true, []string{"get bank2 relay3"}},
		{[]string{"turnoff", b.Addr(), "2", "3"}, "OK\n", false, []string{"set bank2 relay3 on"}},
		{[]string{"status", b.Addr(), "bank2", "relay3"}, "bank 2, relay 3 status: off\n", false, []string{"get bank2 relay3"}},
		{[]string{"turnon", b.Addr(), "2", "3"}, "OK\n", true, []string{"set bank2 relay3 off"}},
		{[]string{"powercycle", b.Addr(), "2", "3"}, "OK\n", true,
			[]string{"set bank2 relay3 on", "get bank2 relay3", "set bank2 relay3 off", "get bank2 relay3"}},
	}
	var want []string
	for _, st := range steps {
		r := runCLI(t, nil, append([]string{"relay"}, st.args...)...)
		require.Equal(t, exitOK, r.code, "relay %v", st.args)
		require.Equal(t, st.want, r.stdout, "relay %v", st.args)
		require.Empty(t, r.stderr)
		require.Equal(t, st.powered, b.DevicePowered(2, 3), "relay %v", st.args)
		want = append(want, st.wantCmds...)
		require.Equal(t, want, b.CommandTexts(), "relay %v", st.args)
	}
}

func TestRelayJSON(t *testing.T) {
	b := newRelayBoard(t, bmmtest.RelayBoardOptions{})
	r := runCLI(t, nil, "relay", "turnoff", b.Addr(), "1", "8", "--json")
	require.Equal(t, exitOK, r.code)
	require.JSONEq(t, `{"success": true}`, r.stdout)

	r = runCLI(t, nil, "--json", "relay", "status", b.Addr(), "1", "8")
	require.Equal(t, exitOK, r.code)
	var got map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &got))
	require.Equal(t, map[string]any{"success": true, "bank": 1.0, "relay": 8.0, "on": false}, got)
}

func TestRelayFailures(t *testing.T) {
	refusing := newRelayBoard(t, bmmtest.RelayBoardOptions{Refuse: true})
	failing := newRelayBoard(t, bmmtest.RelayBoardOptions{FailFirst: 100})
	cases := []struct {
		name    string
		args    []string
		wantOut string
		wantErr string
	}{
		{"powercycle refused", []string{"relay", "powercycle", refusing.Addr(), "1", "1"}, "FAILED\n", "refused the connection"},
		{"turnoff refused", []string{"relay", "turnoff", refusing.Addr(), "1", "1"}, "FAILED\n", "refused the connection"},
		{"status refused", []string{"relay", "status", refusing.Addr(), "1", "1"}, "FAILED\n", "refused the connection"},
		{"turnon no reply", []string{"relay", "turnon", failing.Addr(), "1", "1"}, "FAILED\n", "bad reply"},
		{"json", []string{"relay", "turnon", failing.Addr(), "1", "1", "--json"}, "{\n  \"success\": false\n}\n", "bad reply"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, nil, tc.args...)
			require.Equal(t, exitFailure, r.code)
			require.Equal(t, tc.wantOut, r.stdout)
			require.Contains(t, r.stderr, tc.wantErr)
		})
	}
}

func TestRelayUsage(t *testing.T) {
	const board = "127.0.0.1:1"
	cases := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"no action", []string{"relay"}, "missing ACTION HOST[:PORT] BANK RELAY"},
		{"no relay", []string{"relay", "status", board, "1"}, "missing RELAY"},
		{"extra argument", []string{"relay", "status", board, "1", "1", "x"}, `unexpected argument "x"`},
		{"unknown action", []string{"relay", "reboot", board, "1", "1"}, `unknown relay action "reboot"`},
		{"bank 0", []string{"relay", "status", board, "0", "1"}, `bank "0" is not a number in 1..4`},
		{"bank 5", []string{"relay", "turnon", board, "5", "1"}, `bank "5" is not a number in 1..4`},
		{"relay 9", []string{"relay", "turnoff", board, "1", "9"}, `relay "9" is not a number in 1..8`},
		{"relay not a number", []string{"relay", "powercycle", board, "1", "x"}, `relay "x" is not a number in 1..8`},
		{"bad port", []string{"relay", "status", "127.0.0.1:99999", "1", "1"}, `port "99999" is not a number in 1..65535`},
		{"no host", []string{"relay", "status", "", "1", "1"}, "no host"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, nil, tc.args...)
			require.Equal(t, exitUsage, r.code)
			require.Empty(t, r.stdout)
			require.Contains(t, r.stderr, tc.wantErr)
			require.Contains(t, r.stderr, "usage: mozpoolctl relay powercycle|status|turnon|turnoff HOST[:PORT] BANK RELAY")
		})
	}
}
