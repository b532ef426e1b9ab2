package relay

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseRelayInfo(t *testing.T) {
	cases := []struct {
		in      string
		want    RelayInfo
		wantErr string // substring; empty for success
	}{
		{in: "relay-1.lab:bank1:relay1", want: RelayInfo{Host: "relay-1.lab", Port: 2101, Bank: 1, Relay: 1}},
		{in: "relay-1.lab:2102:bank4:relay8", want: RelayInfo{Host: "relay-1.lab", Port: 2102, Bank: 4, Relay: 8}},
		{in: "10.0.0.5:bank2:relay3", want: RelayInfo{Host: "10.0.0.5", Port: 2101, Bank: 2, Relay: 3}},
		{in: "localhost:65535:bank3:relay7", want: RelayInfo{Host: "localhost", Port: 65535, Bank: 3, Relay: 7}},

		{in: "", wantErr: "want host[:port]:bankB:relayR"},
		{in: "relay-1.lab", wantErr: "want host[:port]:bankB:relayR"},
		{in: "relay-1.lab:bank1", wantErr: "want host[:port]:bankB:relayR"},
		{in: "a:1:2:bank1:relay1", wantErr: "want host[:port]:bankB:relayR"},
		{in: ":bank1:relay1", wantErr: "no host"},
		{in: ":2101:bank1:relay1", wantErr: "no host"},
		{in: "h:bank0:relay1", wantErr: `bank "0" is not a number in 1..4`},
		{in: "h:bank5:relay1", wantErr: `bank "5" is not a number in 1..4`},
		{in: "h:bank-1:relay1", wantErr: `bank "-1" is not a number in 1..4`},
		{in: "h:bankx:relay1", wantErr: `bank "x" is not a number in 1..4`},
		{in: "h:bank:relay1", wantErr: `bank "" is not a number in 1..4`},
		{in: "h:1:relay1", wantErr: `"1" does not start with "bank"`},
		{in: "h:bank1:relay0", wantErr: `relay "0" is not a number in 1..8`},
		{in: "h:bank1:relay9", wantErr: `relay "9" is not a number in 1..8`},
		{in: "h:bank1:relay12", wantErr: `relay "12" is not a number in 1..8`},
		{in: "h:bank1:1", wantErr: `"1" does not start with "relay"`},
		{in: "h:relay1:bank1", wantErr: `"relay1" does not start with "bank"`},
		{in: "h::bank1:relay1", wantErr: `port "" is not a number in 1..65535`},
		{in: "h:0:bank1:relay1", wantErr: `port "0" is not a number in 1..65535`},
		{in: "h:65536:bank1:relay1", wantErr: `port "65536" is not a number in 1..65535`},
		{in: "h:http:bank1:relay1", wantErr: `port "http" is not a number in 1..65535`},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseRelayInfo(tc.in)
			if tc.wantErr != "" {
				require.ErrorIs(t, err, ErrBadRelayInfo)
				require.ErrorContains(t, err, tc.wantErr)
				require.Zero(t, got)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got, "ParseRelayInfo(%q)", tc.in)
			// String round-trips, always with the port.
			again, err := ParseRelayInfo(got.String())
			require.NoError(t, err)
			require.Equal(t, got, again)
		})
	}
}

func TestRelayInfoAddrAndString(t *testing.T) {
	ri := RelayInfo{Host: "relay-1.lab", Port: 2101, Bank: 2, Relay: 3}
	require.Equal(t, "relay-1.lab:2101", ri.Addr())
	require.Equal(t, "relay-1.lab:2101:bank2:relay3", ri.String())
}

func TestRelayInfoValidate(t *testing.T) {
	cases := []struct {
		name    string
		ri      RelayInfo
		wantErr string
	}{
		{"ok", RelayInfo{Host: "h", Port: 2101, Bank: 1, Relay: 1}, ""},
		{"no host", RelayInfo{Port: 2101, Bank: 1, Relay: 1}, "no host"},
		{"no port", RelayInfo{Host: "h", Bank: 1, Relay: 1}, "port 0"},
		{"bank 5", RelayInfo{Host: "h", Port: 2101, Bank: 5, Relay: 1}, "bank 5"},
		{"relay 0", RelayInfo{Host: "h", Port: 2101, Bank: 1, Relay: 0}, "relay 0"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.ri.validate()
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrBadRelayInfo)
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
}
