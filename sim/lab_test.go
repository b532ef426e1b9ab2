package sim_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/bmm/relay"
	"github.com/mozpool/mozpool/sim"
)

func TestB2GImagingOverTFTP(t *testing.T) {
	t.Parallel()
	subnet := testSubnet()
	api := newFakeAPI(t)
	inv := testInventory(subnet, 2)
	l := startLab(t, testConfig(t, inv, api))
	ip := subnet + ".1"

	// The lab starts with every board powered; with no PXE file dev1
	// boots its SD card.
	waitPhase(t, l, "dev1", "running_android")
	require.Zero(t, board(t, l, "dev1").TFTPFetches)
	require.Empty(t, api.eventsOf("dev1"))

	// A b2g PXE file and a power cycle through the real relay client.
	api.setPXE(inv.Devices[0].MAC, pxeB2G)
	api.setBootConfig("dev1", `{"b2gbase": "https://example.com/b2g"}`)
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	require.NoError(t, relayClient(t).PowerCycle(ctx, relayOf(t, l, "dev1")))

	// Imaging takes 7+1+60+90+3 s of simulated time: that it ends within
	// testWait proves TimeScale (a thousandth) shortens it.
	want := []string{"mobile_init_started", "b2g_downloading", "b2g_extracting", "b2g_rebooting"}
	require.Eventually(t, func() bool {
		s := board(t, l, "dev1")
		return s.Phase == "running_b2g" && len(api.eventsOf("dev1")) == len(want)
	}, testWait, testPoll, "imaging did not end within %s", testWait)
	require.Equal(t, want, api.eventsOf("dev1"), "events the API received")
	for _, remote := range api.remotesOf("dev1") {
		require.Equal(t, ip, remote, "events come from the board's own address")
	}

	s := board(t, l, "dev1")
	require.Equal(t, "b2g", s.SDImage)
	require.Equal(t, 1, s.TFTPFetches)
	require.True(t, s.Powered)
	require.True(t, s.Pingable)
	require.True(t, s.SUTAgent)
	require.Len(t, s.Events, len(want))
	for i, ev := range s.Events {
		require.Equal(t, want[i], ev.Event)
		require.Equal(t, http.StatusOK, ev.Status)
	}
	require.True(t, answers(pingAddr(ip)), "ping port answers")
	require.Equal(t, "/mnt/sdcard", testroot(t, sutAddr(ip)))

	// dev2 was not touched.
	require.Equal(t, "running_android", board(t, l, "dev2").Phase)
	require.Empty(t, api.eventsOf("dev2"))
}

func TestSDBootAndPowerOff(t *testing.T) {
	t.Parallel()
	subnet := testSubnet()
	api := newFakeAPI(t)
	l := startLab(t, testConfig(t, testInventory(subnet, 1), api))
	ip := subnet + ".1"
	rc := relayClient(t)
	ri := relayOf(t, l, "dev1")
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()

	waitPhase(t, l, "dev1", "running_android")
	require.True(t, answers(pingAddr(ip)))
	require.True(t, answers(sutAddr(ip)))
	on, err := rc.Status(ctx, ri)
	require.NoError(t, err)
	require.True(t, on)

	require.NoError(t, rc.SetPower(ctx, ri, false))
	s := board(t, l, "dev1")
	require.False(t, s.Powered, "the relay's callback runs before it answers")
	require.Equal(t, sim.PhaseOff, s.Phase)
	require.False(t, answers(pingAddr(ip)), "an unpowered board does not answer ping")
	require.False(t, answers(sutAddr(ip)))

	require.NoError(t, rc.SetPower(ctx, ri, true))
	waitPhase(t, l, "dev1", "running_android")
	require.True(t, answers(pingAddr(ip)))
	require.Equal(t, 2, board(t, l, "dev1").Boots)

	rs := l.Relay(ri.Addr())
	require.Equal(t, []string{"get bank1 relay1", "set bank1 relay1 on", "set bank1 relay1 off"}, rs.Commands)
	require.Equal(t, 2, rs.Actuations)
}

func TestPowerOffAbortsImaging(t *testing.T) {
	t.Parallel()
	subnet := testSubnet()
	api := newFakeAPI(t)
	inv := testInventory(subnet, 1)
	cfg := testConfig(t, inv, api)
	cfg.Delays.Extracting = sim.Delay{Mean: time.Hour}
	l := startLab(t, cfg)
	rc := relayClient(t)
	ri := relayOf(t, l, "dev1")
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()

	waitPhase(t, l, "dev1", "running_android")
	api.setPXE(inv.Devices[0].MAC, pxeAndroid)
	require.NoError(t, rc.PowerCycle(ctx, ri))
	waitEvents(t, api, "dev1", "mobile_init_started", "android_downloading", "android_extracting")
	require.Equal(t, "android_extracting", board(t, l, "dev1").Phase)
	require.Equal(t, "corrupt", board(t, l, "dev1").SDImage)
	require.True(t, answers(pingAddr(subnet+".1")), "the live image answers ping")

	require.NoError(t, rc.SetPower(ctx, ri, false))
	s := board(t, l, "dev1")
	require.Equal(t, sim.PhaseOff, s.Phase)
	require.Equal(t, "corrupt", s.SDImage, "an interrupted extraction leaves the SD card corrupt")
	require.False(t, answers(pingAddr(subnet+".1")))
	require.Equal(t, []string{"mobile_init_started", "android_downloading", "android_extracting"}, api.eventsOf("dev1"))
}

func TestAndroidImagingCompletes(t *testing.T) {
	t.Parallel()
	subnet := testSubnet()
	api := newFakeAPI(t)
	inv := testInventory(subnet, 1)
	cfg := testConfig(t, inv, api)
	cfg.SDImage = "b2g"
	l := startLab(t, cfg)
	waitPhase(t, l, "dev1", "running_b2g")

	// A non-200 answer is recorded and logged; imaging goes on.
	api.failEvent("android_extracting", http.StatusServiceUnavailable)
	api.setPXE(inv.Devices[0].MAC, pxeAndroid)
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	require.NoError(t, relayClient(t).PowerCycle(ctx, relayOf(t, l, "dev1")))

	waitPhase(t, l, "dev1", "running_android")
	require.Equal(t, []string{"mobile_init_started", "android_downloading", "android_extracting", "android_rebooting"},
		api.eventsOf("dev1"))
	s := board(t, l, "dev1")
	require.Equal(t, "android", s.SDImage)
	require.Equal(t, http.StatusServiceUnavailable, s.Events[2].Status)
	require.NotEmpty(t, s.Events[2].Error)
	require.Equal(t, "/mnt/sdcard", testroot(t, sutAddr(subnet+".1")))
}

func TestSelfTestAndMaintenance(t *testing.T) {
	t.Parallel()
	subnet := testSubnet()
	api := newFakeAPI(t)
	inv := testInventory(subnet, 2)
	api.setPXE(inv.Devices[0].MAC, pxeSelfTest)
	api.setPXE(inv.Devices[1].MAC, pxeMaintenance)
	l := startLab(t, testConfig(t, inv, api))

	waitPhase(t, l, "dev1", sim.PhaseSelfTestOK)
	waitEvents(t, api, "dev1", "mobile_init_started", "self_test_running", "self_test_ok")
	require.True(t, answers(pingAddr(subnet+".1")), "the live image stays up")
	require.False(t, answers(sutAddr(subnet+".1")), "the live image runs no SUT agent")

	waitPhase(t, l, "dev2", sim.PhaseMaintenance)
	waitEvents(t, api, "dev2", "mobile_init_started", "maint_mode")
	require.True(t, answers(pingAddr(subnet+".2")))
}

func TestFailedSelfTest(t *testing.T) {
	t.Parallel()
	subnet := testSubnet()
	api := newFakeAPI(t)
	inv := testInventory(subnet, 1)
	api.setPXE(inv.Devices[0].MAC, pxeSelfTest)
	cfg := testConfig(t, inv, api)
	cfg.Failures.SelfTestOK, cfg.Failures.SelfTestFailed = 0, 1
	l := startLab(t, cfg)
	waitPhase(t, l, "dev1", sim.PhaseSelfTestBad)
	waitEvents(t, api, "dev1", "mobile_init_started", "self_test_running", "failed_self_test")
}

func TestFailureRestartsBoot(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		failures   sim.Failures
		bootConfig string
		wantIn     string   // LastFailure mentions it
		wantEvents []string // first events of every boot
		never      string   // event never posted
	}{
		{"booting", sim.Failures{Booting: 1}, `{"b2gbase": "x"}`, "booting", nil, "mobile_init_started"},
		{"mobile init", sim.Failures{MobileInit: 1}, `{"b2gbase": "x"}`, "mobile_init", []string{"mobile_init_started"}, "b2g_downloading"},
		{"downloading", sim.Failures{Downloading: 1}, `{"b2gbase": "x"}`, "b2g_downloading",
			[]string{"mobile_init_started", "b2g_downloading"}, "b2g_extracting"},
		{"extracting", sim.Failures{Extracting: 1}, `{"b2gbase": "x"}`, "b2g_extracting",
			[]string{"mobile_init_started", "b2g_downloading", "b2g_extracting"}, "b2g_rebooting"},
		{"bad boot config", sim.Failures{}, `{"other": 1}`, "b2gbase", []string{"mobile_init_started"}, "b2g_downloading"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			subnet := testSubnet()
			api := newFakeAPI(t)
			inv := testInventory(subnet, 1)
			api.setPXE(inv.Devices[0].MAC, pxeB2G)
			api.setBootConfig("dev1", tc.bootConfig)
			cfg := testConfig(t, inv, api)
			cfg.Failures = tc.failures
			l := startLab(t, cfg)

			require.Eventually(t, func() bool { return board(t, l, "dev1").Failures >= 3 }, testWait, testPoll)
			s := board(t, l, "dev1")
			require.Contains(t, s.LastFailure, tc.wantIn)
			require.GreaterOrEqual(t, s.Boots, 3, "every failure starts a new boot")
			require.True(t, s.Powered, "failures happen with the power on")
			require.NotContains(t, api.eventsOf("dev1"), tc.never)
			if tc.wantEvents != nil {
				got := api.eventsOf("dev1")
				require.Equal(t, tc.wantEvents, got[:len(tc.wantEvents)])
				require.Equal(t, tc.wantEvents, got[len(tc.wantEvents):2*len(tc.wantEvents)], "the next boot starts over")
			}
		})
	}
}

func TestRunningFailureReboots(t *testing.T) {
	t.Parallel()
	api := newFakeAPI(t)
	cfg := testConfig(t, testInventory(testSubnet(), 1), api)
	cfg.Failures.Running = 1
	l := startLab(t, cfg)
	require.Eventually(t, func() bool { return board(t, l, "dev1").Boots >= 3 }, testWait, testPoll)
	require.Contains(t, board(t, l, "dev1").LastFailure, "running_android")
}

func TestBrokenBoardsNeverAnswer(t *testing.T) {
	t.Parallel()
	subnet := testSubnet()
	api := newFakeAPI(t)
	inv := testInventory(subnet, 4)
	cfg := testConfig(t, inv, api)
	cfg.BrokenFraction = 0.5
	cfg.Seed = 7
	l := startLab(t, cfg)

	var broken, healthy []sim.BoardState
	for _, s := range l.Boards() {
		if s.Broken {
			broken = append(broken, s)
		} else {
			healthy = append(healthy, s)
		}
	}
	require.Len(t, broken, 2)
	for _, s := range healthy {
		waitPhase(t, l, s.Name, "running_android")
		require.True(t, answers(pingAddr(s.IP)), s.Name)
	}
	for _, s := range broken {
		waitPhase(t, l, s.Name, "running_android")
		s = board(t, l, s.Name)
		require.True(t, s.Powered)
		require.False(t, s.Pingable)
		require.False(t, s.SUTAgent)
		require.False(t, answers(pingAddr(s.IP)), "%s is broken", s.Name)
		require.False(t, answers(sutAddr(s.IP)), "%s is broken", s.Name)
	}
}

func TestSameSeedSameBrokenBoards(t *testing.T) {
	t.Parallel()
	brokenSet := func(seed int64) []string {
		cfg := sim.DefaultConfig()
		cfg.Inventory = testInventory(testSubnet(), 30)
		cfg.API = []string{"http://127.0.0.1:1"}
		cfg.BrokenFraction = 0.2
		cfg.Seed = seed
		l, err := sim.New(cfg)
		require.NoError(t, err)
		var names []string
		for _, s := range l.Boards() {
			if s.Broken {
				names = append(names, s.Name)
			}
		}
		return names
	}
	a := brokenSet(42)
	require.Len(t, a, 6, "20%% of 30 boards")
	require.Equal(t, a, brokenSet(42))
	require.NotEqual(t, a, brokenSet(43), "another seed picks other boards")
}

func TestNoImagingServerBootsSDCard(t *testing.T) {
	t.Parallel()
	api := newFakeAPI(t)
	inv := testInventory(testSubnet(), 1)
	api.setPXE(inv.Devices[0].MAC, pxeB2G)
	cfg := testConfig(t, inv, api)
	cfg.API = []string{"http://127.0.0.1:1"} // nothing answers
	l := startLab(t, cfg)
	waitPhase(t, l, "dev1", "running_android")
	require.Zero(t, board(t, l, "dev1").TFTPFetches)
}

func TestDiscoveryIsRefreshed(t *testing.T) {
	t.Parallel()
	api := newFakeAPI(t)
	inv := testInventory(testSubnet(), 1)
	api.setPXE(inv.Devices[0].MAC, pxeMaintenance)
	api.hide(true)
	cfg := testConfig(t, inv, api)
	// Refreshed often, so that the Eventually below sees the server soon
	// after it appears; a refresh that times out is simply retried.
	cfg.Discovery = 200 * time.Millisecond
	l := startLab(t, cfg)
	waitPhase(t, l, "dev1", "running_android")
	require.Zero(t, board(t, l, "dev1").TFTPFetches, "no imaging server known: no TFTP")

	// The server appears in the cluster status; the next boot finds it.
	api.hide(false)
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), testWait)
		defer cancel()
		require.NoError(t, relayClient(t).PowerCycle(ctx, relayOf(t, l, "dev1")))
		return board(t, l, "dev1").TFTPFetches > 0
	}, testWait, 100*time.Millisecond)
	waitPhase(t, l, "dev1", sim.PhaseMaintenance)
}

func TestInventoryHasBoundPorts(t *testing.T) {
	t.Parallel()
	api := newFakeAPI(t)
	subnet := testSubnet()
	inv := testInventory(subnet, 10)
	l, err := sim.New(testConfig(t, inv, api))
	require.NoError(t, err)
	require.Equal(t, inv, l.Inventory(), "before Start, the inventory as given")
	require.NoError(t, l.Start(context.Background()))
	defer l.Shutdown(context.Background())

	got := l.Inventory()
	require.Len(t, got.Devices, 10)
	var addr string
	for i, d := range got.Devices {
		ri, err := relay.ParseRelayInfo(d.RelayInfo)
		require.NoError(t, err, "bound relay_info parses with the real parser")
		require.Equal(t, "127.0.0.1", ri.Host)
		require.NotEqual(t, relay.DefaultPort, ri.Port)
		if addr == "" {
			addr = ri.Addr()
		}
		require.Equal(t, addr, ri.Addr(), "one relay board per distinct host:port")
		require.Equal(t, inv.Devices[i].IPAddress, d.IPAddress)
	}
	rs := l.Relay(addr)
	require.Equal(t, addr, rs.Addr)
	require.Empty(t, l.Relay("127.0.0.1:1").Addr, "no such relay board")
	require.Empty(t, l.Board("nosuch").Name, "no such board")
	require.Len(t, l.Relays(), 1)
	require.Contains(t, inv.Devices[0].RelayInfo, ":0:", "the caller's inventory is not changed")
}

func TestGroundTruthEndpoint(t *testing.T) {
	t.Parallel()
	api := newFakeAPI(t)
	subnet := testSubnet()
	inv := testInventory(subnet, 2)
	api.setPXE(inv.Devices[0].MAC, pxeMaintenance)
	l := startLab(t, testConfig(t, inv, api))
	waitPhase(t, l, "dev1", sim.PhaseMaintenance)
	srv := httptest.NewServer(l.Handler())
	defer srv.Close()

	getJSON := func(path string, want int, out any) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, want, resp.StatusCode, path)
		require.Equal(t, "application/json; charset=utf-8", resp.Header.Get("Content-Type"))
		require.NoError(t, json.NewDecoder(resp.Body).Decode(out))
	}

	var boards []map[string]any
	getJSON("/boards", http.StatusOK, &boards)
	require.Len(t, boards, 2)
	b := boards[0]
	for _, key := range []string{"name", "ip", "imaging_server", "powered", "phase", "sd_image", "broken", "relay", "events", "tftp_fetches"} {
		require.Contains(t, b, key)
	}
	require.Equal(t, "dev1", b["name"])
	require.Equal(t, subnet+".1", b["ip"])
	require.Equal(t, server, b["imaging_server"])
	require.Equal(t, true, b["powered"])
	require.Equal(t, false, b["broken"])
	require.Equal(t, "android", b["sd_image"])
	require.Equal(t, float64(1), b["tftp_fetches"])
	rel := b["relay"].(map[string]any)
	require.True(t, strings.HasPrefix(rel["host"].(string), "127.0.0.1:"))
	require.Equal(t, float64(1), rel["bank"])
	require.Equal(t, float64(1), rel["relay"])
	ev := b["events"].([]any)[0].(map[string]any)
	require.Equal(t, "mobile_init_started", ev["event"])
	require.Equal(t, float64(200), ev["status"])
	require.Contains(t, ev, "at")

	var one sim.BoardState
	getJSON("/boards/dev2", http.StatusOK, &one)
	require.Equal(t, "dev2", one.Name)
	var e map[string]string
	getJSON("/boards/nosuch", http.StatusNotFound, &e)
	require.Contains(t, e["error"], "unknown board")

	var relays []map[string]any
	getJSON("/relays", http.StatusOK, &relays)
	require.Len(t, relays, 1)
	for _, key := range []string{"addr", "commands", "actuations"} {
		require.Contains(t, relays[0], key)
	}
	require.Equal(t, rel["host"], relays[0]["addr"])
}

func TestShutdownIsIdempotent(t *testing.T) {
	t.Parallel()
	api := newFakeAPI(t)
	subnet := testSubnet()
	l, err := sim.New(testConfig(t, testInventory(subnet, 1), api))
	require.NoError(t, err)
	require.NoError(t, l.Shutdown(context.Background()), "before Start")

	l, err = sim.New(testConfig(t, testInventory(subnet, 1), api))
	require.NoError(t, err)
	require.NoError(t, l.Start(context.Background()))
	require.ErrorIs(t, l.Start(context.Background()), sim.ErrStarted)
	waitPhase(t, l, "dev1", "running_android")
	require.NoError(t, l.Shutdown(context.Background()))
	require.NoError(t, l.Shutdown(context.Background()))
	require.False(t, answers(pingAddr(subnet+".1")), "listeners closed")
	require.ErrorIs(t, l.Start(context.Background()), sim.ErrShutdown)
}

func TestNewRejectsBadInventories(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		change func(*sim.Config)
	}{
		{"no ip address", func(c *sim.Config) { c.Inventory.Devices[0].IPAddress = "" }},
		{"shared ip address", func(c *sim.Config) { c.Inventory.Devices[1].IPAddress = c.Inventory.Devices[0].IPAddress }},
		{"no relay info", func(c *sim.Config) { c.Inventory.Devices[0].RelayInfo = "" }},
		{"bad relay info", func(c *sim.Config) { c.Inventory.Devices[0].RelayInfo = "127.0.0.1:0:bank9:relay1" }},
		{"shared relay", func(c *sim.Config) { c.Inventory.Devices[1].RelayInfo = c.Inventory.Devices[0].RelayInfo }},
		{"bad mac", func(c *sim.Config) { c.Inventory.Devices[0].MAC = "nope" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := sim.DefaultConfig()
			cfg.API = []string{"http://127.0.0.1:1"}
			cfg.Inventory = testInventory(testSubnet(), 2)
			tc.change(&cfg)
			_, err := sim.New(cfg)
			require.ErrorIs(t, err, sim.ErrBadInventory)
		})
	}
}

// While FaultyTFTP holds, the imaging server's TFTP does not answer its
// boards: a board power-cycled with a PXE file fetches nothing and boots
// its SD card; once the fault ends it fetches its PXE file again.
func TestFaultyTFTPBootsSDCard(t *testing.T) {
	t.Parallel()
	subnet := testSubnet()
	api := newFakeAPI(t)
	inv := testInventory(subnet, 1)
	cfg := testConfig(t, inv, api)
	cfg.TFTPTimeout, cfg.TFTPRetries = 100*time.Millisecond, 1
	// A thousandth: the fault starts at once and lasts 3 s.
	cfg.FaultyTFTP = &sim.TFTPFault{Server: inv.Devices[0].ImagingServer, For: 3000 * time.Second}
	l := startLab(t, cfg)
	require.Eventually(t, func() bool { return l.TFTPDown(inv.Devices[0].ImagingServer) }, testWait, testPoll)
	waitPhase(t, l, "dev1", "running_android")

	api.setPXE(inv.Devices[0].MAC, pxeB2G)
	api.setBootConfig("dev1", `{"b2gbase": "https://example.com/b2g"}`)
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	boots := board(t, l, "dev1").Boots
	require.NoError(t, relayClient(t).PowerCycle(ctx, relayOf(t, l, "dev1")))
	require.Eventually(t, func() bool {
		s := board(t, l, "dev1")
		return s.Boots > boots && s.Phase == "running_android"
	}, testWait, testPoll)
	require.Zero(t, board(t, l, "dev1").TFTPFetches, "nothing fetched while TFTP does not answer")

	require.Eventually(t, func() bool { return !l.TFTPDown(inv.Devices[0].ImagingServer) }, testWait, testPoll)
	require.NoError(t, relayClient(t).PowerCycle(ctx, relayOf(t, l, "dev1")))
	require.Eventually(t, func() bool { return board(t, l, "dev1").TFTPFetches == 1 }, testWait, testPoll)
}
