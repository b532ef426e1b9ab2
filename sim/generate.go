package sim

import (
	"fmt"

	"github.com/mozpool/mozpool/fsm"
)

// GenerateOptions describe a lab to generate.
type GenerateOptions struct {
	// Servers are the imaging server names, one rack each.
	Servers []string
	// BoardsPerServer is the number of boards in each rack.
	BoardsPerServer int
	// BoardNet is the second octet of the boards' loopback addresses
	// (127.BoardNet.x.y); RelayNet that of the relay boards
	// (127.RelayNet.rack.k). Use different values for labs that run at the
	// same time.
	BoardNet, RelayNet int
	// RelayPort is the relay boards' port (0: pick free ports when the lab
	// starts).
	RelayPort int
	// Standby lists every rack with two servers: its own, then the next
	// one (in Servers order, wrapping) as its standby.
	Standby bool
}

// GenerateInventory builds a lab inventory: per rack, BoardsPerServer
// pandas wired to as many 32-relay ProXR boards as needed, each board on its
// own loopback address (250 per block of the third octet, for both boards
// and relay boards, so up to 62,500 boards); the images and PXE configs of the sample lab.
func GenerateInventory(o GenerateOptions) (fsm.Inventory, error) {
	if len(o.Servers) == 0 || o.BoardsPerServer <= 0 {
		return fsm.Inventory{}, fmt.Errorf("%w: need servers and boards", ErrBadInventory)
	}
	total := len(o.Servers) * o.BoardsPerServer
	// A rack's relay boards take 250 addresses per block of the third
	// octet; the blocks of all racks must fit in it.
	blocks := (o.BoardsPerServer/32 + 250) / 250
	if total > 250*250 || len(o.Servers)*blocks > 255 || o.BoardNet < 1 || o.BoardNet > 255 || o.RelayNet < 1 || o.RelayNet > 255 || o.BoardNet == o.RelayNet {
		return fsm.Inventory{}, fmt.Errorf("%w: bad sizes or networks", ErrBadInventory)
	}
	const hwType, hwModel = "panda", "ES Rev B2"
	pxe := func(stage string) string {
		return "default linux\nlabel linux\n  kernel http://%IPADDRESS%/mobile-imaging/panda/uImage\n" +
			"  append ip=dhcp mobile-imaging-url=http://%IPADDRESS%/mobile-imaging/" + stage + "-second-stage.sh\n"
	}
	inv := fsm.Inventory{
		HardwareTypes: []fsm.InventoryHardwareType{{Type: hwType, Model: hwModel}},
		Images: []fsm.ImageSpec{
			{Name: "b2g", BootConfigKeys: []string{"b2gbase"}, HasSUTAgent: true},
			{Name: "android", BootConfigKeys: []string{}, CanReuse: true, HasSUTAgent: true},
			{Name: "self-test", BootConfigKeys: []string{}, Hidden: true},
			{Name: "maintenance", BootConfigKeys: []string{}, Hidden: true},
		},
		PXEConfigs: []fsm.InventoryPXEConfig{
			{Name: "b2g-pxe", Description: "install B2G", Contents: pxe("b2g")},
			{Name: "android-pxe", Description: "install Android", Contents: pxe("android")},
			{Name: "self-test-pxe", Description: "self-test", Contents: pxe("selftest")},
			{Name: "maintenance-pxe", Description: "maintenance", Contents: pxe("maintenance")},
		},
	}
	for img, pc := range map[string]string{"b2g": "b2g-pxe", "android": "android-pxe", "self-test": "self-test-pxe", "maintenance": "maintenance-pxe"} {
		inv.ImagePXEConfigs = append(inv.ImagePXEConfigs, fsm.InventoryImagePXE{Image: img, HardwareType: hwType, HardwareModel: hwModel, PXEConfig: pc})
	}
	n := 0
	for r, server := range o.Servers {
		inv.ImagingServers = append(inv.ImagingServers, fsm.InventoryServer{Name: server, Rack: fmt.Sprintf("rack%d", r+1)})
		for b := 0; b < o.BoardsPerServer; b++ {
			relayBoard, slot := b/32, b%32
			// Rack r's first 250 relay boards are 127.RelayNet.(r+1).k, the
			// next 250 127.RelayNet.(r+1+len(Servers)).k, and so on.
			host := fmt.Sprintf("127.%d.%d.%d", o.RelayNet, r+1+len(o.Servers)*(relayBoard/250), relayBoard%250+1)
			n++
			inv.Devices = append(inv.Devices, fsm.InventoryDevice{
				Name: fmt.Sprintf("panda-%04d", n), FQDN: fmt.Sprintf("panda-%04d.lab", n), InventoryID: int64(n),
				MAC:           fmt.Sprintf("02:16:3e:%02x:%02x:%02x", n>>16&0xff, n>>8&0xff, n&0xff),
				ImagingServer: server,
				RelayInfo:     fmt.Sprintf("%s:%d:bank%d:relay%d", host, o.RelayPort, slot/8+1, slot%8+1),
				HardwareType:  hwType, HardwareModel: hwModel,
				IPAddress:   fmt.Sprintf("127.%d.%d.%d", o.BoardNet, (n-1)/250, (n-1)%250+1),
				Environment: "prod",
			})
		}
	}
	if o.Standby && len(o.Servers) > 1 {
		for r, server := range o.Servers {
			inv.Racks = append(inv.Racks, fsm.InventoryRack{Name: fmt.Sprintf("rack%d", r+1),
				Servers: []string{server, o.Servers[(r+1)%len(o.Servers)]}})
		}
	}
	return inv, nil
}
