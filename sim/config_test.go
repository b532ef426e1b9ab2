package sim

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestDefaultConfigIsValid(t *testing.T) {
	cfg := DefaultConfig()
	cfg.API = []string{"http://127.0.0.1:8010"}
	require.NoError(t, cfg.Validate())
	require.Equal(t, 20700, cfg.PingPort)
	require.Equal(t, 20701, cfg.SUTPort)
	require.Equal(t, Delay{7 * time.Second, 3 * time.Second}, cfg.Delays.Booting)
	require.Equal(t, 0.05, cfg.Failures.Booting)
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
	}{
		{"no API", func(c *Config) { c.API = nil }},
		{"zero time scale", func(c *Config) { c.TimeScale = 0 }},
		{"probability above 1", func(c *Config) { c.Failures.Extracting = 1.5 }},
		{"negative probability", func(c *Config) { c.Failures.Running = -0.1 }},
		{"broken fraction above 1", func(c *Config) { c.BrokenFraction = 2 }},
		{"broken and flaky above 1", func(c *Config) { c.BrokenFraction, c.FlakyFraction = 0.6, 0.6 }},
		{"faulty relay without duration", func(c *Config) { c.FaultyRelay = &RelayFault{Board: 0} }},
		{"faulty TFTP without server", func(c *Config) { c.FaultyTFTP = &TFTPFault{For: time.Second} }},
		{"self-test outcomes above 1", func(c *Config) { c.Failures.SelfTestOK, c.Failures.SelfTestFailed = 0.8, 0.3 }},
		{"negative delay", func(c *Config) { c.Delays.Booting.Jitter = -time.Second }},
		{"same ports", func(c *Config) { c.SUTPort = c.PingPort }},
		{"bad ping port", func(c *Config) { c.PingPort = 0 }},
		{"negative relay recovery", func(c *Config) { c.RelayRecovery = -time.Second }},
		{"no SD image", func(c *Config) { c.SDImage = "" }},
		{"no logger", func(c *Config) { c.Logger = nil }},
		{"no discovery interval", func(c *Config) { c.Discovery = 0 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.API = []string{"http://127.0.0.1:8010"}
			tc.change(&cfg)
			require.Error(t, cfg.Validate())
		})
	}
}

func TestDelayDraw(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	d := Delay{Mean: 60 * time.Second, Jitter: 30 * time.Second}
	for range 1000 {
		got := d.draw(rng, 0.1)
		require.GreaterOrEqual(t, got, 3*time.Second)
		require.LessOrEqual(t, got, 9*time.Second)
	}
	wide := Delay{Mean: time.Second, Jitter: 5 * time.Second}
	for range 1000 {
		require.GreaterOrEqual(t, wide.draw(rng, 1), time.Duration(0), "never negative")
	}
}

func TestSecondStage(t *testing.T) {
	tests := []struct {
		pxe  string
		want string
	}{
		{"append ip=dhcp mobile-imaging-url=http://10.0.0.1/mobile-imaging/b2g-second-stage.sh\n", "b2g-second-stage"},
		{"mobile-imaging-url=fake/android-second-stage.sh", "android-second-stage"},
		{"x mobile-imaging-url=http://h/a/b/selftest-second-stage.sh y", "selftest-second-stage"},
		{"mobile-imaging-url=http://h/maintenance-second-stage.sh", "maintenance-second-stage"},
		{"mobile-imaging-url=http://h/mobile-imaging script=b2g-second-stage.sh", ""},
		{"append ip=dhcp", ""},
		{"", ""},
	}
	for _, tc := range tests {
		require.Equal(t, tc.want, secondStage(tc.pxe), "secondStage(%q)", tc.pxe)
	}
}

func TestPXEFileName(t *testing.T) {
	b := &board{mac: "00163e0000ab"}
	require.Equal(t, "pxelinux.cfg/01-00-16-3e-00-00-ab", b.pxeFileName())
}

func TestDialable(t *testing.T) {
	require.Equal(t, "10.0.0.5:69", dialable("10.0.0.5:69", "http://10.0.0.5:8010"))
	require.Equal(t, "10.0.0.5:6969", dialable("0.0.0.0:6969", "http://10.0.0.5:8010"))
	require.Equal(t, "10.0.0.5:69", dialable(":69", "http://10.0.0.5:8010"))
	require.Equal(t, "127.0.0.1:69", dialable("[::]:69", "http://127.0.0.1:8010"))
	require.Equal(t, "127.0.0.1:514", dialable(":514", "http://127.0.0.1:8010"))
	require.Equal(t, "", dialable("", "http://10.0.0.5:8010"))
}

func TestResolveSyslog(t *testing.T) {
	cfg := DefaultConfig()
	cfg.API = []string{"http://127.0.0.1:8010"}
	l, err := New(cfg)
	require.NoError(t, err)
	ctx := context.Background()
	require.Equal(t, netip.MustParseAddrPort("127.0.0.1:514"), l.resolveSyslog(ctx, "img1", "127.0.0.1:514"))
	require.Equal(t, netip.MustParseAddrPort("127.0.0.1:514"), l.resolveSyslog(ctx, "img1", "localhost:514"))
	require.False(t, l.resolveSyslog(ctx, "img1", "").IsValid())
	require.False(t, l.resolveSyslog(ctx, "img1", "127.0.0.1:notaport").IsValid())
}
