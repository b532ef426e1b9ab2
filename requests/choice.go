package requests

import (
	"encoding/json"
	"reflect"

	"github.com/mozpool/mozpool/fsm"
	"github.com/mozpool/mozpool/lifeguard"
)

// claimAndContact claims the device the queue chose for the request and
// tells its machine to image it (or only to power-cycle it when it already
// carries the reusable image with an equal boot config) — all in this
// Apply. It returns false, with the claim undone, when the device would
// not take the event. (Which device, and which request first, is the
// queue's choice: see fsm/queue.go.)
func claimAndContact(m *fsm.RequestTx, device string) bool {
	r := m.Request()
	img, ok := m.Image()
	if !ok {
		return false
	}
	d, ok := m.LookupDevice(device)
	if !ok || !lifeguard.State(d.State).Available() || d.Claimed {
		return false
	}
	reusable := img.CanReuse && d.Image == r.Image && sameBootConfig(d.BootConfig, r.BootConfig)
	image := r.Image
	event, args := lifeguard.EventPleaseImage, fsm.EventArgs{Image: &image}
	if reusable {
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
	m.SetReused(reusable)
	m.Log("mozpool", "claimed device %s and sent it %s", d.Name, event)
	m.LogDevice(d.Name, "mozpool", "claimed by request %d (%s for %s)", r.ID, event, r.Assignee)
	return true
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
