package api

// Inventory is a lab inventory: the file `mozpoolctl inventory sync` reads
// and the body of /api/inventory/sync/ (as InventorySync.Inventory).
// Devices are merged by inventory id (added, updated, deleted); the other
// entities are added or updated, never deleted by a sync.
type Inventory struct {
	ImagingServers  []InventoryServer       `json:"imaging_servers"`
	RelayBoards     []InventoryRelayBoard   `json:"relay_boards,omitempty"`
	HardwareTypes   []InventoryHardwareType `json:"hardware_types"`
	Images          []ImageSpec             `json:"images"`
	PXEConfigs      []InventoryPXEConfig    `json:"pxe_configs"`
	ImagePXEConfigs []ImagePXEConfig        `json:"image_pxe_configs"`
	Devices         []InventoryDevice       `json:"devices"`
	// Racks lists, per rack, the imaging servers that may act on its
	// boards: the preferred owner first, then the standbys in the order
	// they take the rack over. A rack not listed is served by the
	// servers whose rack it is, in name order.
	Racks []InventoryRack `json:"racks,omitempty"`
}

// InventoryRack names the imaging servers of a rack, owner preference
// first.
type InventoryRack struct {
	Name    string   `json:"name"`
	Servers []string `json:"servers"`
}

// InventoryServer is an imaging server and the rack it serves.
type InventoryServer struct {
	Name string `json:"name"`
	Rack string `json:"rack,omitempty"`
}

// InventoryRelayBoard is a relay board. Boards named by devices' relay_info
// need not be listed; listing one sets its imaging server explicitly.
type InventoryRelayBoard struct {
	Name          string `json:"name,omitempty"`
	FQDN          string `json:"fqdn"`
	ImagingServer string `json:"imaging_server"`
}

// InventoryHardwareType is a board type and model.
type InventoryHardwareType struct {
	Type  string `json:"type"`
	Model string `json:"model"`
}

// InventoryPXEConfig is a PXE config; Active defaults to true.
type InventoryPXEConfig struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Contents    string `json:"contents"`
	Active      *bool  `json:"active,omitempty"`
}

// InventoryDevice is one board as the inventory knows it.
type InventoryDevice struct {
	Name          string `json:"name"`
	FQDN          string `json:"fqdn"`
	InventoryID   int64  `json:"inventory_id"`
	MAC           string `json:"mac_address"`
	ImagingServer string `json:"imaging_server"`
	RelayInfo     string `json:"relay_info"`
	HardwareType  string `json:"hardware_type"`
	HardwareModel string `json:"hardware_model"`
	// IPAddress, when set, is the address the imaging server uses to reach
	// the board (ping, SUT agent) and recognises it by (syslog) instead of
	// resolving its fqdn.
	IPAddress string `json:"ip_address,omitempty"`
	// Environment, when set, is the device's environment; when empty the
	// environment set through the API is kept.
	Environment string `json:"environment,omitempty"`
	// Tags are free-form labels (cpu: armv7, android: 4.0.4, ...) that
	// requests may constrain; at most 16, keys and values at most 64
	// characters.
	Tags map[string]string `json:"tags,omitempty"`
}

// Change is one line of an inventory diff.
type Change struct {
	Op     string   `json:"op"`   // add, update, delete
	Kind   string   `json:"kind"` // device, image, pxe_config, ...
	Name   string   `json:"name"`
	Fields []string `json:"fields,omitempty"`
}

// InventoryDiff is what a sync changed (or, for a dry run, would change).
type InventoryDiff struct {
	Changes []Change `json:"changes"`
	// DeviceChanges counts added, updated and deleted devices; the safety
	// valve compares it with Limit.
	DeviceChanges int `json:"device_changes"`
	Limit         int `json:"limit"`
}

// InventorySync is the body of /api/inventory/sync/ (cluster token
// required). DryRun only computes the diff; ShipIt lifts the safety valve
// on the number of device changes.
type InventorySync struct {
	Inventory *Inventory `json:"inventory"`
	DryRun    bool       `json:"dry_run"`
	ShipIt    bool       `json:"ship_it"`
}

// SyncResult answers /api/inventory/sync/. Its keys are in sorted order.
type SyncResult struct {
	// Applied is true when the sync changed the state (never for a dry
	// run).
	Applied bool          `json:"applied"`
	Diff    InventoryDiff `json:"diff"`
	// WouldRefuse is present only in a dry run's answer: true when the
	// changes exceed the safety valve, so that the real sync would need
	// ShipIt. See Refused.
	WouldRefuse *bool `json:"would_refuse,omitempty"`
}

// Refused reports whether a dry run found that the real sync would be
// refused without ShipIt.
func (r SyncResult) Refused() bool { return r.WouldRefuse != nil && *r.WouldRefuse }
