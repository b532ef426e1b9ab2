package relay

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		name    string
		modify  func(*Config)
		wantErr string
	}{
		{"defaults", func(*Config) {}, ""},
		{"no recovery", func(c *Config) { c.Recovery = 0 }, ""},
		{"no logger", func(c *Config) { c.Logger = nil }, "Logger is required"},
		{"no dialer", func(c *Config) { c.Dialer = nil }, "Dialer is required"},
		{"negative recovery", func(c *Config) { c.Recovery = -time.Second }, "Recovery must not be negative"},
		{"zero op timeout", func(c *Config) { c.OpTimeout = 0 }, "OpTimeout must be positive"},
		{"zero comms timeout", func(c *Config) { c.CommsTimeout = 0 }, "CommsTimeout must be positive"},
		{"negative off time", func(c *Config) { c.OffTime = -1 }, "OffTime must not be negative"},
		{"off time too long", func(c *Config) { c.OffTime = c.OpTimeout }, "OffTime (30s) must be shorter than OpTimeout (30s)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.modify(&cfg)
			err := cfg.Validate()
			if tc.wantErr == "" {
				require.NoError(t, err)
				_, err = New(cfg)
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.wantErr)
			_, err = New(cfg)
			require.ErrorContains(t, err, tc.wantErr, "New validates")
		})
	}
}

func TestDefaultConfig(t *testing.T) {
	cfg := DefaultConfig()
	require.Equal(t, time.Second, cfg.Recovery)
	require.Equal(t, 30*time.Second, cfg.OpTimeout)
	require.Equal(t, 10*time.Second, cfg.CommsTimeout)
	require.Equal(t, time.Second, cfg.OffTime)
}
