package httpapi

import (
	"time"

	"github.com/mozpool/mozpool/fsm"
	"github.com/mozpool/mozpool/logstore"
)

// Time layouts of the wire format: naive ISO-8601 in UTC, no zone suffix,
// with six digits of microseconds when they are not zero (as Python's
// datetime.isoformat, which the original's clients were written against).
const (
	timeLayout      = "2006-01-02T15:04:05"
	timeLayoutMicro = "2006-01-02T15:04:05.000000"
)

// FormatTime renders t in the wire format.
func FormatTime(t time.Time) string {
	t = t.UTC()
	if t.Nanosecond()/1000 == 0 {
		return t.Format(timeLayout)
	}
	return t.Format(timeLayoutMicro)
}

// ParseTime parses a wire-format time (any number of fractional digits)
// as UTC.
func ParseTime(s string) (time.Time, error) {
	return time.ParseInLocation(timeLayout, s, time.UTC)
}

// timeOrNil renders t, or null for the zero time.
func timeOrNil(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := FormatTime(t)
	return &s
}

// stringOrNil renders "" as null, as the original's nullable columns.
func stringOrNil(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// deviceView is a device as /api/device/list/?details shows it: exactly
// these 13 keys.
type deviceView struct {
	ID            int64   `json:"id"`
	Name          string  `json:"name"`
	FQDN          string  `json:"fqdn"`
	InventoryID   int64   `json:"inventory_id"`
	MAC           string  `json:"mac_address"`
	ImagingServer string  `json:"imaging_server"`
	RelayInfo     string  `json:"relay_info"`
	State         string  `json:"state"`
	Comments      *string `json:"comments"`
	Image         *string `json:"image"`
	BootConfig    *string `json:"boot_config"`
	Environment   *string `json:"environment"`
	RequestID     *int64  `json:"request_id"`
}

func newDeviceView(d *fsm.Device) deviceView {
	v := deviceView{
		ID:            d.ID,
		Name:          d.Name,
		FQDN:          d.FQDN,
		InventoryID:   d.InventoryID,
		MAC:           d.MAC,
		ImagingServer: d.ImagingServer,
		RelayInfo:     d.RelayInfo,
		State:         d.State,
		Comments:      stringOrNil(d.Comments),
		Image:         stringOrNil(d.Image),
		BootConfig:    stringOrNil(d.BootConfig),
		Environment:   stringOrNil(d.Environment),
	}
	if d.RequestID != 0 {
		id := d.RequestID
		v.RequestID = &id
	}
	return v
}

// deviceDetailsView is what /api/device/:id/details/ adds for operators.
type deviceDetailsView struct {
	deviceView
	HardwareType   string  `json:"hardware_type"` // "type/model"
	StateDeadline  *string `json:"state_deadline"`
	Generation     uint64  `json:"generation"`
	NextImage      *string `json:"next_image"`
	NextBootConfig *string `json:"next_boot_config"`
}

func newDeviceDetailsView(d *fsm.Device) deviceDetailsView {
	return deviceDetailsView{
		deviceView:     newDeviceView(d),
		HardwareType:   d.HardwareType,
		StateDeadline:  timeOrNil(d.StateDeadline),
		Generation:     d.Generation,
		NextImage:      stringOrNil(d.NextImage),
		NextBootConfig: stringOrNil(d.NextBootConfig),
	}
}

// imageView is an image as /api/image/list/ shows it.
type imageView struct {
	ID             int64    `json:"id"`
	Name           string   `json:"name"`
	BootConfigKeys []string `json:"boot_config_keys"`
	CanReuse       bool     `json:"can_reuse"`
	Hidden         bool     `json:"hidden"`
	HasSUTAgent    bool     `json:"has_sut_agent"`
}

func newImageView(img *fsm.Image) imageView {
	keys := img.BootConfigKeys
	if keys == nil {
		keys = []string{}
	}
	return imageView{ID: img.ID, Name: img.Name, BootConfigKeys: keys, CanReuse: img.CanReuse, Hidden: img.Hidden, HasSUTAgent: img.HasSUTAgent}
}

// pxeConfigView is a PXE config as .../details/ shows it.
type pxeConfigView struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Contents    string `json:"contents"`
	Active      bool   `json:"active"`
}

func newPXEConfigView(pc *fsm.PXEConfig) pxeConfigView {
	return pxeConfigView{Name: pc.Name, Description: pc.Description, Contents: pc.Contents, Active: pc.Active}
}

// logView is one log line.
type logView struct {
	ID        uint64 `json:"id"`
	Timestamp string `json:"timestamp"`
	Source    string `json:"source"`
	Message   string `json:"message"`
}

func newLogViews(es []logstore.Entry) []logView {
	out := make([]logView, 0, len(es))
	for _, e := range es {
		out = append(out, logView{ID: e.ID, Timestamp: FormatTime(e.At), Source: e.Source, Message: e.Message})
	}
	return out
}
