package httpapi

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/fsm"
)

// encode renders v as writeJSON does.
func encode(t *testing.T, v any) string {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	require.NoError(t, enc.Encode(v))
	return buf.String()
}

// TestDeviceWire pins the bytes of a device as the list and details routes
// write it: Mozpool 4.x clients read these keys, nulls included.
func TestDeviceWire(t *testing.T) {
	d := &fsm.Device{
		ID: 7, Name: "panda-0007", FQDN: "panda-0007.lab", InventoryID: 1007, MAC: "00163e000007",
		ImagingServer: "mobile-imaging-001", RelayInfo: "relay1:bank1:relay7", HardwareType: "panda/ES Rev B2",
		State: "free", Generation: 3,
	}
	require.Equal(t, `{"id":7,"name":"panda-0007","fqdn":"panda-0007.lab","inventory_id":1007,"mac_address":"00163e000007",`+
		`"imaging_server":"mobile-imaging-001","relay_info":"relay1:bank1:relay7","state":"free",`+
		`"comments":null,"image":null,"boot_config":null,"environment":null,"request_id":null,"health_score":100}`+"\n",
		encode(t, newDevice(d)))
	require.Equal(t, `{"id":7,"name":"panda-0007","fqdn":"panda-0007.lab","inventory_id":1007,"mac_address":"00163e000007",`+
		`"imaging_server":"mobile-imaging-001","relay_info":"relay1:bank1:relay7","state":"free",`+
		`"comments":null,"image":null,"boot_config":null,"environment":null,"request_id":null,"health_score":100,`+
		`"hardware_type":"panda/ES Rev B2","state_deadline":null,"generation":3,"next_image":null,"next_boot_config":null,`+
		`"history":[]}`+"\n",
		encode(t, newDeviceDetails(d)))
	d.History = []fsm.Outcome{
		{At: time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC), Op: "boot", Fail: "pxe_booting"},
		{At: time.Date(2024, 3, 1, 12, 5, 0, 0, time.UTC), Op: "imaging"},
	}
	require.Contains(t, encode(t, newDeviceDetails(d)), `"health_score":50,`)
	require.Contains(t, encode(t, newDeviceDetails(d)), `"history":[`+
		`{"at":"2024-03-01T12:00:00","op":"boot","fail":"pxe_booting"},{"at":"2024-03-01T12:05:00","op":"imaging"}]}`)
	d.History = nil

	d.Comments, d.Image, d.BootConfig, d.Environment, d.RequestID = "a <b>", "b2g", `{"b2gbase": "http://x/?a=1&b=2"}`, "prod", 42
	d.StateDeadline = time.Date(2013, 2, 22, 22, 29, 6, 412207000, time.UTC)
	d.NextImage, d.NextBootConfig = "android", "{}"
	require.Equal(t, `{"id":7,"name":"panda-0007","fqdn":"panda-0007.lab","inventory_id":1007,"mac_address":"00163e000007",`+
		`"imaging_server":"mobile-imaging-001","relay_info":"relay1:bank1:relay7","state":"free",`+
		`"comments":"a <b>","image":"b2g","boot_config":"{\"b2gbase\": \"http://x/?a=1&b=2\"}","environment":"prod","request_id":42,"health_score":100,`+
		`"hardware_type":"panda/ES Rev B2","state_deadline":"2013-02-22T22:29:06.412207","generation":3,"next_image":"android","next_boot_config":"{}",`+
		`"history":[]}`+"\n",
		encode(t, newDeviceDetails(d)))
}
