package httpapi

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/fsm"
)

func TestImageList(t *testing.T) {
	e := newTestEnv(t)
	images := e.getOK("/api/image/list/")["images"].([]any)
	require.Len(t, images, 2, "hidden images are left out")
	require.Equal(t, map[string]any{
		"id": float64(2), "name": "android", "boot_config_keys": []any{}, "can_reuse": true, "hidden": false, "has_sut_agent": true,
	}, images[0])
	require.Equal(t, map[string]any{
		"id": float64(1), "name": "b2g", "boot_config_keys": []any{"b2gbase"}, "can_reuse": false, "hidden": false, "has_sut_agent": true,
	}, images[1])

	all := e.getOK("/api/image/list/?all")["images"].([]any)
	var names []any
	for _, img := range all {
		names = append(names, img.(map[string]any)["name"])
	}
	require.Equal(t, []any{"android", "b2g", "maintenance", "self-test"}, names)
}

func TestPostImage(t *testing.T) {
	e := newTestEnv(t)
	r := e.post("/api/image/", map[string]any{"name": "fedora", "boot_config_keys": []string{"aa", "bb"}, "can_reuse": true})
	require.Equal(t, http.StatusOK, r.StatusCode, "body %q", r.body)
	require.Equal(t, map[string]any{"image": map[string]any{
		"id": float64(5), "name": "fedora", "boot_config_keys": []any{"aa", "bb"}, "can_reuse": true, "hidden": false, "has_sut_agent": false,
	}}, r.obj(t))

	// Modify: same id, new fields.
	r = e.post("/api/image/", map[string]any{"name": "fedora", "hidden": true})
	require.Equal(t, http.StatusOK, r.StatusCode, "body %q", r.body)
	img := r.obj(t)["image"].(map[string]any)
	require.Equal(t, float64(5), img["id"])
	require.Equal(t, true, img["hidden"])
	require.Equal(t, []any{}, img["boot_config_keys"])

	e.post("/api/image/", `{"name": "bad/name"}`).requireError(t, http.StatusBadRequest)
	e.post("/api/image/", `{"name": "x", "hidden": "yes"}`).requireError(t, http.StatusBadRequest)
	e.post("/api/image/", `not json`).requireError(t, http.StatusBadRequest)
}

func TestPXEConfigList(t *testing.T) {
	e := newTestEnv(t)
	require.Equal(t, []any{"fake-b2g", "old-pxe", "pxe1"}, e.getOK("/api/bmm/pxe_config/list/")["pxe_configs"])
	require.Equal(t, []any{"fake-b2g", "pxe1"}, e.getOK("/api/bmm/pxe_config/list/?active_only=1")["pxe_configs"])
	require.Equal(t, []any{"fake-b2g", "pxe1"}, e.getOK("/api/bmm/pxe_config/list/?active_only=no")["pxe_configs"])
}

func TestPXEConfigDetails(t *testing.T) {
	e := newTestEnv(t)
	require.Equal(t, map[string]any{"details": map[string]any{
		"name": "pxe1", "description": "first", "contents": "KERNEL <vmlinuz> %IPADDRESS%", "active": true,
	}}, e.getOK("/api/bmm/pxe_config/pxe1/details/"))
	r := e.get("/api/bmm/pxe_config/pxe1/details/")
	require.Contains(t, string(r.body), "<vmlinuz>", "HTML characters are not escaped")
	e.get("/api/bmm/pxe_config/nosuch/details/").requireError(t, http.StatusNotFound)
}

func TestPXEConfigCreateAndUpdate(t *testing.T) {
	e := newTestEnv(t)
	r := e.post("/api/bmm/pxe_config/", map[string]any{"name": "new1", "description": "d", "contents": "c"})
	require.Equal(t, http.StatusOK, r.StatusCode, "body %q", r.body)
	require.Equal(t, map[string]any{"details": map[string]any{"name": "new1", "description": "d", "contents": "c", "active": true}}, r.obj(t))

	e.post("/api/bmm/pxe_config/", map[string]any{"name": "new1", "contents": "other"}).requireError(t, http.StatusConflict)

	r = e.post("/api/bmm/pxe_config/", map[string]any{"name": "new2", "contents": "c", "active": false})
	require.Equal(t, http.StatusOK, r.StatusCode, "body %q", r.body)
	require.Equal(t, false, r.obj(t)["details"].(map[string]any)["active"])

	r = e.post("/api/bmm/pxe_config/new1/update/", map[string]any{"contents": "c2", "active": false})
	require.Equal(t, http.StatusOK, r.StatusCode, "body %q", r.body)
	require.Equal(t, map[string]any{"details": map[string]any{"name": "new1", "description": "d", "contents": "c2", "active": false}}, r.obj(t))
	require.Equal(t, "c2", e.getOK("/api/bmm/pxe_config/new1/details/")["details"].(map[string]any)["contents"])

	e.post("/api/bmm/pxe_config/nosuch/update/", map[string]any{"contents": "x"}).requireError(t, http.StatusNotFound)
	e.post("/api/bmm/pxe_config/", map[string]any{"contents": "no name"}).requireError(t, http.StatusBadRequest)
	e.post("/api/bmm/pxe_config/", `{"name": "n", "active": "yes"}`).requireError(t, http.StatusBadRequest)
	e.post("/api/bmm/pxe_config/new1/update/", `[]`).requireError(t, http.StatusBadRequest)
}

func TestImagePXEConfig(t *testing.T) {
	e := newTestEnv(t)
	body := map[string]string{"image": "android", "hardware_type": "panda", "hardware_model": "ES Rev B2", "pxe_config": "pxe1"}
	r := e.post("/api/bmm/image_pxe_config/", body)
	require.Equal(t, http.StatusOK, r.StatusCode, "body %q", r.body)
	require.Equal(t, map[string]any{}, r.obj(t))
	mapping := func() string {
		var pc string
		e.fsm.Read(func(s *fsm.State) { pc = s.PXEConfigFor("android", fsm.HardwareKey("panda", "ES Rev B2")) })
		return pc
	}
	require.Equal(t, "pxe1", mapping())

	body["pxe_config"] = ""
	r = e.post("/api/bmm/image_pxe_config/", body)
	require.Equal(t, http.StatusOK, r.StatusCode, "body %q", r.body)
	require.Empty(t, mapping())

	for _, tc := range []struct {
		field, value string
	}{{"image", "nosuch"}, {"hardware_model", "nosuch"}, {"pxe_config", "nosuch"}} {
		b := map[string]string{"image": "android", "hardware_type": "panda", "hardware_model": "ES Rev B2", "pxe_config": "pxe1"}
		b[tc.field] = tc.value
		e.post("/api/bmm/image_pxe_config/", b).requireError(t, http.StatusNotFound)
	}
	e.post("/api/bmm/image_pxe_config/", `{"pxe_config": "pxe1"}`).requireError(t, http.StatusBadRequest)
}

// bigInventory is sampleInventory with n more devices.
func bigInventory(n int) fsm.Inventory {
	inv := sampleInventory()
	for i := range n {
		d := testDevice(int64(10+i), fmt.Sprintf("extra%d", i), "server2", "")
		d.MAC = fmt.Sprintf("00:aa:00:00:00:%02x", i)
		inv.Devices = append(inv.Devices, d)
	}
	return inv
}

func TestInventorySync(t *testing.T) {
	e := newTestEnv(t)
	tok := []string{"X-Mozpool-Token", testToken}

	// Two new devices: within the safety valve.
	dry := e.post("/api/inventory/sync/", map[string]any{"inventory": bigInventory(2), "dry_run": true}, tok...)
	require.Equal(t, http.StatusOK, dry.StatusCode, "body %q", dry.body)
	m := dry.obj(t)
	require.Equal(t, []string{"applied", "diff", "would_refuse"}, keys(m))
	require.Equal(t, false, m["applied"])
	require.Equal(t, false, m["would_refuse"])
	diff := m["diff"].(map[string]any)
	require.Equal(t, float64(2), diff["device_changes"])
	require.Equal(t, float64(5), diff["limit"])
	e.get("/api/device/extra0/state/").requireError(t, http.StatusNotFound)

	r := e.post("/api/inventory/sync/", map[string]any{"inventory": bigInventory(2)}, tok...)
	require.Equal(t, http.StatusOK, r.StatusCode, "body %q", r.body)
	m = r.obj(t)
	require.Equal(t, []string{"applied", "diff"}, keys(m))
	require.Equal(t, true, m["applied"])
	require.Equal(t, float64(2), m["diff"].(map[string]any)["device_changes"])
	e.getOK("/api/device/extra1/state/")

	// Eight more: beyond the valve.
	dry = e.post("/api/inventory/sync/", map[string]any{"inventory": bigInventory(10), "dry_run": true}, tok...)
	require.Equal(t, http.StatusOK, dry.StatusCode, "body %q", dry.body)
	require.Equal(t, true, dry.obj(t)["would_refuse"])
	dry = e.post("/api/inventory/sync/", map[string]any{"inventory": bigInventory(10), "dry_run": true, "ship_it": true}, tok...)
	require.Equal(t, false, dry.obj(t)["would_refuse"])

	msg := e.post("/api/inventory/sync/", map[string]any{"inventory": bigInventory(10)}, tok...).requireError(t, http.StatusConflict)
	require.Contains(t, msg, "safety limit")
	e.get("/api/device/extra9/state/").requireError(t, http.StatusNotFound)

	r = e.post("/api/inventory/sync/", map[string]any{"inventory": bigInventory(10), "ship_it": true}, "Authorization", "Bearer "+testToken)
	require.Equal(t, http.StatusOK, r.StatusCode, "body %q", r.body)
	e.getOK("/api/device/extra9/state/")
}

func TestInventorySyncErrors(t *testing.T) {
	e := newTestEnv(t)
	body := map[string]any{"inventory": bigInventory(1)}
	e.anon().post("/api/inventory/sync/", body).requireError(t, http.StatusUnauthorized)
	e.post("/api/inventory/sync/", body, "X-Mozpool-Token", "wrong").requireError(t, http.StatusUnauthorized)
	e.post("/api/inventory/sync/", body, "Authorization", "Bearer wrong").requireError(t, http.StatusUnauthorized)
	e.post("/api/inventory/sync/", map[string]any{"dry_run": true}, "X-Mozpool-Token", testToken).requireError(t, http.StatusBadRequest)

	bad := bigInventory(0)
	bad.Devices[0].MAC = "not-a-mac"
	for _, dry := range []bool{true, false} {
		e.post("/api/inventory/sync/", map[string]any{"inventory": bad, "dry_run": dry}, "X-Mozpool-Token", testToken).
			requireError(t, http.StatusBadRequest)
	}
}
