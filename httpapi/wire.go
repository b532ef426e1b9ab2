package httpapi

import (
	"time"

	"github.com/mozpool/mozpool/api"
	"github.com/mozpool/mozpool/fsm"
	"github.com/mozpool/mozpool/logstore"
)

// This file turns the FSM's storage structs into the api types the routes
// answer with. The storage structs keep their own JSON (the snapshot
// format); only the api types are ever written to a client.

// timeOrNil renders t, or null for the zero time.
func timeOrNil(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := api.FormatTime(t)
	return &s
}

// stringOrNil renders "" as null, as the original's nullable columns.
func stringOrNil(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func newDevice(d *fsm.Device) api.Device {
	v := api.Device{
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
		HealthScore:   fsm.HealthScore(d.History),
	}
	if d.RequestID != 0 {
		id := d.RequestID
		v.RequestID = &id
	}
	return v
}

func newDeviceDetails(d *fsm.Device) api.DeviceDetails {
	history := make([]api.DeviceOutcome, len(d.History))
	for i, o := range d.History {
		history[i] = api.DeviceOutcome{At: api.FormatTime(o.At), Op: o.Op, Fail: o.Fail}
	}
	return api.DeviceDetails{
		Device:         newDevice(d),
		HardwareType:   d.HardwareType,
		StateDeadline:  timeOrNil(d.StateDeadline),
		Generation:     d.Generation,
		NextImage:      stringOrNil(d.NextImage),
		NextBootConfig: stringOrNil(d.NextBootConfig),
		History:        history,
	}
}

func newImage(img *fsm.Image) api.Image {
	keys := img.BootConfigKeys
	if keys == nil {
		keys = []string{}
	}
	return api.Image{ID: img.ID, ImageSpec: api.ImageSpec{
		Name: img.Name, BootConfigKeys: keys, CanReuse: img.CanReuse, Hidden: img.Hidden, HasSUTAgent: img.HasSUTAgent,
		InAdvance: img.InAdvance,
	}}
}

func newPXEConfig(pc *fsm.PXEConfig) api.PXEConfig {
	return api.PXEConfig{Name: pc.Name, Description: pc.Description, Contents: pc.Contents, Active: pc.Active}
}

func newLogEntries(es []logstore.Entry) []api.LogEntry {
	out := make([]api.LogEntry, 0, len(es))
	for _, e := range es {
		out = append(out, api.LogEntry{ID: int64(e.ID), Timestamp: api.FormatTime(e.At), Source: e.Source, Message: e.Message})
	}
	return out
}
