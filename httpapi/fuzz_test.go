package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/fsm"
	"github.com/mozpool/mozpool/lifeguard"
	"github.com/mozpool/mozpool/requests"
)

// The fuzz targets below post arbitrary bodies to every route that decodes
// one, on a fresh server over a real FSM holding sampleInventory (with the
// device and request machines and fake hardware), and check the answer:
// never a 5xx, a JSON error with a reason for a 4xx, JSON for a 2xx. Run
// one with
//
//	go test -run '^$' -fuzz FuzzPostRequest ./httpapi/
//
// (make fuzz runs them all). Without -fuzz, go test runs the seeds.

// newFuzzEnv is a fresh env per input, so that inputs do not see each
// other's writes: the fuzzer may replay them in any order.
func newFuzzEnv(t *testing.T) *testEnv {
	hw := &fakeHardware{pingOK: true, testOK: true}
	return startTestEnv(t, fsm.Config{Devices: lifeguard.Machine{}, Requests: requests.Machine{}},
		func(c *Config) { c.Hardware = hw })
}

// checkAnswer requires a well-formed answer that is not a server error.
func checkAnswer(t *testing.T, what string, r response) {
	t.Helper()
	require.Less(t, r.StatusCode, 500, "%s: body %q", what, r.body)
	switch {
	case r.StatusCode >= 400:
		r.requireError(t, r.StatusCode)
	case r.StatusCode == http.StatusNoContent:
		require.Empty(t, r.body, what)
	default:
		require.Equal(t, "application/json; charset=utf-8", r.Header.Get("Content-Type"), what)
		require.True(t, json.Valid(r.body), "%s: body %q is not JSON", what, r.body)
	}
}

// bodySeeds are bodies every route should refuse cleanly, added to each
// target's own real examples.
var bodySeeds = []string{
	"", " ", "null", "[]", "{}", "{", `{"a":`, `"string"`, "42", "true",
	`{"comments": 1}`, `{"environment": null}`, `{"duration": "x"}`,
	"\xff\xfe{}", "{}{}", `{"a": 1} trailing`, `{"a": "\u0000"}`,
	`{"inventory": {}}`, `{"name": ""}`, `{"image": "b2g"}`,
}

// fuzzPost is the body of a target that posts fuzzed bodies to one path.
func fuzzPost(f *testing.F, path string, seeds ...string) {
	for _, s := range append(seeds, bodySeeds...) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		e := newFuzzEnv(t)
		// The token, for inventory sync: the body is what is tested.
		checkAnswer(t, "POST "+path+" "+body, e.post(path, body, "X-Mozpool-Token", testToken))
	})
}

func FuzzPostRequest(f *testing.F) {
	for _, s := range []string{
		`{"assignee": "me", "duration": 3600, "image": "android"}`,
		`{"assignee": "me", "duration": "600", "image": "b2g", "b2gbase": "http://x/?a=1&b=<2>"}`,
		`{"assignee": "me", "duration": 1e3, "image": "android", "environment": "even"}`,
		`{"assignee": "me", "duration": -1, "image": "android"}`,
		`{"assignee": "me", "duration": 1e400, "image": "android"}`,
		`{"assignee": "me", "duration": 99999999999999999999, "image": "android"}`,
		`{"assignee": "", "duration": 1, "image": "android"}`,
		`{"assignee": "me", "duration": 1, "image": "b2g", "b2gbase": {"x": [1, null]}}`,
		`{"assignee": "me", "duration": 1, "image": "nope"}`,
		`{"assignee": "me", "duration": " 7 ", "image": "android", "environment": 3}`,
	} {
		f.Add("any", s)
		f.Add("dev1", s)
	}
	f.Add("nodev", `{"assignee": "me", "duration": 1, "image": "android"}`)
	for _, s := range bodySeeds {
		f.Add("any", s)
	}
	f.Fuzz(func(t *testing.T, dev, body string) {
		e := newFuzzEnv(t)
		path := "/api/device/" + url.PathEscape(dev) + "/request/"
		checkAnswer(t, "POST "+path+" "+body, e.post(path, body))
	})
}

func FuzzSetComments(f *testing.F) {
	fuzzPost(f, "/api/device/dev1/set-comments/",
		`{"comments": "broken SD card"}`, `{"comments": ""}`, `{"comments": "\u00e9\ud83d\ude00"}`,
		`{"comments": null}`, `{"comments": ["x"]}`, `{"comments": "`+strings.Repeat("x", 5000)+`"}`)
}

func FuzzSetEnvironment(f *testing.F) {
	fuzzPost(f, "/api/device/dev1/set-environment/",
		`{"environment": "odd"}`, `{"environment": ""}`, `{"environment": "a b/c"}`,
		`{"environment": 3}`, `{"environment": "\u0000"}`)
}

func FuzzRenew(f *testing.F) {
	for _, s := range append([]string{
		`{"duration": 600}`, `{"duration": "600"}`, `{"duration": 0}`, `{"duration": 1.9}`,
		`{"duration": -5}`, `{"duration": "1e3"}`, `{"duration": null}`, `{"duration": 1e308}`,
		`{"duration": 9223372036854775807}`, `{"duration": "-0"}`,
	}, bodySeeds...) {
		f.Add("1", s)
	}
	f.Add("99999", `{"duration": 60}`)
	f.Add("xyz", `{"duration": 60}`)
	f.Add("-1", `{"duration": 60}`)
	f.Fuzz(func(t *testing.T, id, body string) {
		e := newFuzzEnv(t)
		create := e.post("/api/device/any/request/", `{"assignee": "me", "duration": 600, "image": "android"}`)
		require.Equal(t, http.StatusOK, create.StatusCode, "create: %q", create.body)
		path := "/api/request/" + url.PathEscape(id) + "/renew/"
		checkAnswer(t, "POST "+path+" "+body, e.post(path, body))
	})
}

func FuzzRequestEvent(f *testing.F) {
	for _, s := range append([]string{`{"device": "dev1"}`, `{"device": 7}`, `{"x": 1}`}, bodySeeds...) {
		f.Add("1", "close", s)
	}
	f.Add("1", "device_not_found", "")
	f.Add("1", "nonsense", "{}")
	f.Add("2", "close", "")
	f.Fuzz(func(t *testing.T, id, event, body string) {
		e := newFuzzEnv(t)
		create := e.post("/api/device/any/request/", `{"assignee": "me", "duration": 600, "image": "android"}`)
		require.Equal(t, http.StatusOK, create.StatusCode, "create: %q", create.body)
		path := "/api/request/" + url.PathEscape(id) + "/event/" + url.PathEscape(event) + "/"
		checkAnswer(t, "POST "+path+" "+body, e.post(path, body))
	})
}

func FuzzDeviceEvent(f *testing.F) {
	for _, s := range append([]string{
		`{"image": "android", "boot_config": ""}`,
		`{"image": "b2g", "boot_config": "{\"b2gbase\": \"http://x\"}"}`,
		`{"image": "nope"}`, `{"image": 5}`, `{"boot_config": null}`,
	}, bodySeeds...) {
		f.Add("please_image", s)
	}
	for _, ev := range []string{"please_self_test", "please_power_cycle", "free", "ping_ok", "sut_verified", "x"} {
		f.Add(ev, "")
	}
	f.Fuzz(func(t *testing.T, event, body string) {
		e := newFuzzEnv(t)
		path := "/api/device/dev1/event/" + url.PathEscape(event) + "/"
		checkAnswer(t, "POST "+path+" "+body, e.post(path, body))
	})
}

func FuzzStateChange(f *testing.F) {
	for _, s := range []string{"", "{}", "garbage"} {
		f.Add("new", "free", s)
	}
	f.Add("free", "new", "")
	f.Add("new", "failed_pxe_booting", "")
	f.Add("new", "no_such_state", "")
	f.Add("", "free", "")
	f.Add("new", "..", "")
	f.Fuzz(func(t *testing.T, from, to, body string) {
		e := newFuzzEnv(t)
		path := "/api/device/dev1/state-change/" + url.PathEscape(from) + "/to/" + url.PathEscape(to) + "/"
		checkAnswer(t, "POST "+path+" "+body, e.post(path, body))
	})
}

func FuzzRegister(f *testing.F) {
	fuzzPost(f, "/api/device/dev1/register/",
		`{"mac_address": "00:11:22:33:44:01"}`, `{"mac_address": "001122334401"}`,
		`{"mac_address": "00-11-22-33-44-01"}`, `{"mac_address": "00:11:22:33:44:02"}`,
		`{"mac_address": "zz"}`, `{"mac_address": ""}`, `{"mac_address": 1}`)
}

func FuzzPowerCycle(f *testing.F) {
	fuzzPost(f, "/api/device/dev1/power-cycle/",
		`{"pxe_config": "fake-b2g", "boot_config": "{\"b2gbase\": \"http://x\"}"}`,
		`{"pxe_config": "pxe1"}`, `{"pxe_config": "nope"}`, `{"pxe_config": null}`,
		`{"pxe_config": "pxe1", "boot_config": 3}`, `{"boot_config": "x"}`)
}

func FuzzPostImage(f *testing.F) {
	fuzzPost(f, "/api/image/",
		`{"name": "new-image", "boot_config_keys": ["b2gbase"], "can_reuse": false, "hidden": false, "has_sut_agent": true}`,
		`{"name": "android", "can_reuse": false}`, `{"name": "x", "boot_config_keys": null}`,
		`{"name": "x", "boot_config_keys": [1]}`, `{"name": "bad name/"}`, `{"name": "x", "boot_config_keys": [""]}`)
}

func FuzzPostPXEConfig(f *testing.F) {
	fuzzPost(f, "/api/bmm/pxe_config/",
		`{"name": "pxe2", "description": "d", "contents": "KERNEL x", "active": true}`,
		`{"name": "pxe1", "contents": "dup"}`, `{"name": "", "contents": "x"}`,
		`{"name": "p", "active": "yes"}`, `{"name": "p", "contents": null}`)
}

func FuzzUpdatePXEConfig(f *testing.F) {
	for _, s := range append([]string{
		`{"description": "new", "contents": "KERNEL y", "active": false}`,
		`{"active": true}`, `{"name": "other"}`, `{"contents": ""}`,
	}, bodySeeds...) {
		f.Add("pxe1", s)
	}
	f.Add("nope", `{"active": true}`)
	f.Fuzz(func(t *testing.T, name, body string) {
		e := newFuzzEnv(t)
		path := "/api/bmm/pxe_config/" + url.PathEscape(name) + "/update/"
		checkAnswer(t, "POST "+path+" "+body, e.post(path, body))
	})
}

func FuzzImagePXEConfig(f *testing.F) {
	fuzzPost(f, "/api/bmm/image_pxe_config/",
		`{"image": "android", "hardware_type": "panda", "hardware_model": "ES Rev B2", "pxe_config": "pxe1"}`,
		`{"image": "b2g", "hardware_type": "panda", "hardware_model": "ES Rev B2", "pxe_config": ""}`,
		`{"image": "b2g", "hardware_type": "panda", "pxe_config": "old-pxe"}`,
		`{"image": "nope", "hardware_type": "panda", "pxe_config": "pxe1"}`,
		`{"image": "android", "hardware_type": "nope", "pxe_config": "pxe1"}`)
}

func FuzzInventorySync(f *testing.F) {
	inv, err := json.Marshal(sampleInventory())
	require.NoError(f, err)
	fuzzPost(f, "/api/inventory/sync/",
		`{"inventory": `+string(inv)+`}`,
		`{"inventory": `+string(inv)+`, "dry_run": true}`,
		`{"inventory": {"devices": []}, "ship_it": true}`,
		`{"inventory": {"devices": []}, "dry_run": true}`,
		`{"inventory": {"devices": [{"name": "dev1", "mac_address": "bad"}]}, "ship_it": true}`,
		`{"inventory": {"devices": [{"name": "dev9", "imaging_server": "nope"}]}, "ship_it": true}`,
		`{"inventory": {"devices": [{"name": "d", "inventory_id": -1, "relay_info": "a:b:c"}]}}`,
		`{"inventory": null}`, `{"inventory": []}`)
}

func FuzzClusterJoin(f *testing.F) {
	fuzzPost(f, "/api/cluster/join/",
		`{"id": "node2", "name": "server2", "rack": "rack2", "raft_addr": "127.0.0.1:7001", "http_addr": "http://127.0.0.1:8011"}`,
		`{"id": "node2"}`, `{"id": 2, "raft_addr": ["x"]}`)
}

func FuzzClusterRemove(f *testing.F) {
	fuzzPost(f, "/api/cluster/remove/", `{"id": "node2"}`, `{"id": "node9"}`, `{"id": ""}`, `{"id": 2}`)
}

// FuzzRestore posts arbitrary backups to the restore route (the fake
// cluster validates and restores them into the real FSM, as a node does)
// and, when one is accepted, requires that the restored state can be read
// and written through the API without a server error.
func FuzzRestore(f *testing.F) {
	backup := sampleBackup(f)
	f.Add(backup)
	f.Add(backup[:len(backup)/2])
	f.Add(backup[:1])
	f.Add([]byte{})
	f.Add([]byte("garbage"))
	for _, from := range []string{`"state":"ready"`, `"dev1"`, `"id":1`, `"expires":"`, `"panda"`} {
		if i := bytes.Index(backup, []byte(from)); i >= 0 {
			odd := slices.Clone(backup)
			odd[i+len(from)-2] ^= 1 // same length: the record lengths still hold
			f.Add(odd)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		e := newFuzzEnv(t)
		r := e.post("/api/cluster/restore/", data, "X-Mozpool-Token", testToken)
		checkAnswer(t, "restore", r)
		if r.StatusCode != http.StatusOK {
			return
		}
		for _, path := range []string{"/api/device/list/?details=1", "/api/request/list/?include_closed=1",
			"/api/image/list/", "/api/bmm/pxe_config/list/", "/api/environment/list/", "/api/device/dev1/details/",
			"/api/request/1/details/"} {
			checkAnswer(t, "GET "+path, e.get(path))
		}
		// The boot config is served verbatim, not as JSON.
		bc := e.get("/api/device/dev1/bootconfig/")
		require.Less(t, bc.StatusCode, 500, "bootconfig: %q", bc.body)
		checkAnswer(t, "request", e.post("/api/device/any/request/", `{"assignee": "me", "duration": 60, "image": "android"}`))
		checkAnswer(t, "event", e.post("/api/device/dev1/event/please_self_test/", ""))
		checkAnswer(t, "return", e.post("/api/request/1/return/", ""))
	})
}

// sampleBackup is a snapshot of the sample inventory with a request.
func sampleBackup(tb testing.TB) []byte {
	f := fsm.New(fsm.Config{Devices: lifeguard.Machine{}, Requests: requests.Machine{}})
	at := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	for i, c := range []struct {
		typ fsm.CommandType
		cmd fsm.Command
	}{
		{fsm.CmdInventorySync, &fsm.InventorySync{Header: fsm.Header{At: at}, Inventory: sampleInventory(), ShipIt: true}},
		{fsm.CmdDeviceStateChange, &fsm.DeviceStateChange{Header: fsm.Header{At: at}, Device: "dev1", From: "new", To: "ready"}},
		{fsm.CmdRequestCreate, &fsm.RequestCreate{Header: fsm.Header{At: at}, RequestedDevice: "any", Assignee: "me",
			Expires: at.Add(time.Hour), Image: "android", BootConfig: "{}", Environment: "any", Server: "server1"}},
	} {
		b, err := fsm.Encode(c.typ, c.cmd)
		require.NoError(tb, err)
		require.NoError(tb, f.ApplyCommand(uint64(i+1), b).Error())
	}
	snap, err := f.Snapshot()
	require.NoError(tb, err)
	sink := &memSnapshotSink{}
	require.NoError(tb, snap.Persist(sink))
	return sink.Bytes()
}

// FuzzDecodeHelpers drives the body helpers the handlers share
// (decodeObject, stringField, parseDuration, bootConfigString) directly,
// many times faster than through a server: every failure must be a 400
// and every duration a whole number of seconds in range.
func FuzzDecodeHelpers(f *testing.F) {
	for _, s := range append([]string{
		`{"assignee": "me", "duration": 3600, "image": "b2g", "b2gbase": "http://x/?a=1&b=<2>"}`,
		`{"duration": "  42 "}`, `{"duration": 1.99}`, `{"duration": -0.5}`, `{"duration": 1e400}`,
		`{"duration": "9223372036854775808"}`, `{"duration": 9223372036854775807}`, `{"duration": [1]}`,
		`{"duration": 86400000000}`, `{"b2gbase": {"z": 1, "a": [true, null, 1.5e300]}}`, `{"b2gbase": "\u2028"}`,
	}, bodySeeds...) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
		var m map[string]json.RawMessage
		if err := decodeObject(r, &m, maxBodyBytes); err != nil {
			require.Equal(t, http.StatusBadRequest, statusFor(err), "%q: %v", body, err)
			return
		}
		keys := make([]string, 0, len(m))
		for k, raw := range m {
			keys = append(keys, k)
			if _, err := stringField(m, k); err != nil {
				require.Equal(t, http.StatusBadRequest, statusFor(err), "%q: %v", body, err)
			}
			d, err := parseDuration(raw)
			if err != nil {
				require.Equal(t, http.StatusBadRequest, statusFor(err), "%q: %v", body, err)
				continue
			}
			require.GreaterOrEqual(t, d, time.Duration(0), "%q: duration %s", raw, d)
			require.LessOrEqual(t, d, fsm.MaxRequestDuration, "%q: duration %s", raw, d)
			require.Zero(t, d%time.Second, "%q: duration %s", raw, d)
		}
		bc, err := bootConfigString(keys, m)
		if err != nil { // a number out of float64's range
			require.Equal(t, http.StatusBadRequest, statusFor(err), "%q: %v", body, err)
			return
		}
		var back map[string]any
		require.NoError(t, json.Unmarshal([]byte(bc), &back), "boot config %q of %q is not a JSON object", bc, body)
		require.Len(t, back, len(m), "boot config %q of %q", bc, body)
	})
}
