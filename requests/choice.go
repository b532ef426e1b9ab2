package requests

import (
	"encoding/json"
	"reflect"
	"sort"

	"github.com/mozpool/mozpool/fsm"
	"github.com/mozpool/mozpool/lifeguard"
)

// claimAndContact chooses a device for the request, claims it and tells its
// machine to image it (or only to power-cycle it when it already carries
// the reusable image with an equal boot config) — all in this Apply. It
// returns false when no device could be claimed. Choice (deterministic):
// among the candidates, a device already carrying the reusable image with
// an equal boot config; then the least recently used, then by name.
func claimAndContact(m *fsm.RequestTx) bool {
	r := m.Request()
	img, ok := m.Image()
	if !ok {
		return false
	}
	cands := candidates(m)
	if len(cands) == 0 {
		return false
	}
	reusable := func(d fsm.DeviceView) bool {
		return img.CanReuse && d.Image == r.Image && sameBootConfig(d.BootConfig, r.BootConfig)
	}
	sort.Slice(cands, func(i, j int) bool {
		a, b := cands[i], cands[j]
		if ra, rb := reusable(a), reusable(b); ra != rb {
			return ra
		}
		if !a.LastUsed.Equal(b.LastUsed) {
			return a.LastUsed.Before(b.LastUsed)
		}
		return a.Name < b.Name
	})
	d := cands[0]
	image := r.Image
	event, args := lifeguard.EventPleaseImage, fsm.EventArgs{Image: &image}
	if reusable(d) {
		event, args = lifeguard.EventPleasePowerCycle, fsm.EventArgs{}
	} else {
		bc, _ := json.Marshal(r.BootConfig)
		args.BootConfig = bc
	}
	// Claim first: the device machine's effects (an imaging result) must
	// find the claim.
	if err := m.Claim(d.Name); err != nil {
		m.Log("mozpool", "cannot claim device %s: %v", d.Name, err)
		return false
	}
	err := m.SendDeviceEvent(d.Name, string(event), args)
	if after, _ := m.LookupDevice(d.Name); err != nil || after.Generation == d.Generation {
		m.Unclaim()
		m.Log("mozpool", "device %s did not accept %s", d.Name, event)
		return false
	}
	m.Log("mozpool", "claimed device %s and sent it %s", d.Name, event)
	m.LogDevice(d.Name, "mozpool", "claimed by request %d (%s for %s)", r.ID, event, r.Assignee)
	return true
}

// candidates are the devices the request may claim: available (ready) and
// unclaimed, on an imaging server that is up, matching the requested device
// and environment, with hardware that has a PXE config for the image.
func candidates(m *fsm.RequestTx) []fsm.DeviceView {
	r := m.Request()
	var out []fsm.DeviceView
	consider := func(d fsm.DeviceView) {
		switch {
		case !lifeguard.State(d.State).Available() || d.Claimed:
		case d.ServerDown: // its rack is frozen until its node returns
		case r.Environment != "" && r.Environment != "any" && d.Environment != r.Environment:
		case m.PXEConfigFor(r.Image, d.HardwareType) == "":
		default:
			out = append(out, d)
		}
	}
	if m.Any() {
		m.EachDevice(consider)
	} else if d, ok := m.LookupDevice(r.RequestedDevice); ok {
		consider(d)
	}
	return out
}

// sameBootConfig compares two boot configs as parsed JSON; unparsable or
// empty strings compare as {} (as the original).
func sameBootConfig(a, b string) bool {
	parse := func(s string) any {
		var v any
		if json.Unmarshal([]byte(s), &v) != nil || v == nil {
			return map[string]any{}
		}
		return v
	}
	return reflect.DeepEqual(parse(a), parse(b))
}
