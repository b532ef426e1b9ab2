package fsm

import (
	"time"
)

// ImagingServer is one imaging server of the lab. Servers are created by
// inventory sync (name and rack) and bound to a cluster node when a node with
// that name joins (node id and addresses).
type ImagingServer struct {
	ID       int64  `json:"id"`
	Name     string `json:"name"`
	Rack     string `json:"rack,omitempty"`
	NodeID   string `json:"node_id,omitempty"`
	RaftAddr string `json:"raft_addr,omitempty"`
	HTTPAddr string `json:"http_addr,omitempty"`
	// GossipAddr is the node's memberlist address, used to rejoin gossip.
	GossipAddr string `json:"gossip_addr,omitempty"`
	// TFTPAddr is where the node serves network boot files ("" if it
	// does not).
	TFTPAddr string `json:"tftp_addr,omitempty"`
	// SyslogAddr is where the node receives its boards' syslog (UDP
	// host:port; "" if it does not).
	SyslogAddr string `json:"syslog_addr,omitempty"`
	// Down is set by the leader while the node is unreachable.
	Down bool `json:"down,omitempty"`
}

// HardwareType is a board type and model, e.g. panda / ES Rev B2.
type HardwareType struct {
	ID    int64  `json:"id"`
	Type  string `json:"type"`
	Model string `json:"model"`
}

// Key is the unique name of a hardware type: "type/model".
func (h *HardwareType) Key() string { return HardwareKey(h.Type, h.Model) }

// HardwareKey joins a hardware type and model into a map key.
func HardwareKey(typ, model string) string { return typ + "/" + model }

// Image is an operating-system image that can be written to a board.
type Image struct {
	ID             int64    `json:"id"`
	Name           string   `json:"name"`
	BootConfigKeys []string `json:"boot_config_keys"`
	CanReuse       bool     `json:"can_reuse"`
	Hidden         bool     `json:"hidden"`
	HasSUTAgent    bool     `json:"has_sut_agent"`
	InAdvance      bool     `json:"in_advance,omitempty"`
}

// PXEConfig is a named pxelinux configuration template.
type PXEConfig struct {
	ID          int64  `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description"`
	Contents    string `json:"contents"`
	Active      bool   `json:"active"`
}

// ImagePXEConfig maps an image on a hardware type to the PXE config that
// installs it.
type ImagePXEConfig struct {
	Image        string `json:"image"`
	HardwareType string `json:"hardware_type"` // HardwareKey
	PXEConfig    string `json:"pxe_config"`
}

// Device is one board. Its state fields belong to the lifeguard machine; the
// FSM stores them and the machine table decides their values.
type Device struct {
	ID          int64  `json:"id"`
	Name        string `json:"name"`
	FQDN        string `json:"fqdn"`
	InventoryID int64  `json:"inventory_id"`
	MAC         string `json:"mac_address"`
	// ImagingServer is the server that acts on the board now: the owner
	// of its rack (Rack) when it has one, else its inventory's server.
	ImagingServer string `json:"imaging_server"`
	// Rack is the rack of the inventory's imaging server ("" for none).
	Rack         string `json:"rack,omitempty"`
	RelayInfo    string `json:"relay_info"`
	HardwareType string `json:"hardware_type"` // HardwareKey
	// IPAddress is the board's address when the inventory gives one.
	IPAddress   string `json:"ip_address,omitempty"`
	Environment string `json:"environment"`
	Comments    string `json:"comments"`
	// Tags are free-form labels from the inventory (cpu, android, ...)
	// that requests may constrain.
	Tags map[string]string `json:"tags,omitempty"`

	State string `json:"state"`
	// StateDeadline is when the state times out; zero means no timeout.
	StateDeadline time.Time `json:"state_deadline,omitzero"`
	// StateEntered is when the current state was entered.
	StateEntered time.Time      `json:"state_entered,omitzero"`
	Counters     map[string]int `json:"counters,omitempty"`
	// Generation increments on every state entry; results and timeouts
	// carry the generation they were started for.
	Generation uint64 `json:"generation"`

	Image          string `json:"image,omitempty"`
	BootConfig     string `json:"boot_config,omitempty"`
	NextImage      string `json:"next_image,omitempty"`
	NextBootConfig string `json:"next_boot_config,omitempty"`
	// Fresh: Image and BootConfig were written while no request held the
	// device (imaged in advance) and nobody has used it since, so a
	// request for exactly them may have it without imaging it again.
	Fresh bool `json:"fresh,omitempty"`

	// RequestID is the request that has claimed the device (0: none).
	RequestID int64 `json:"request_id,omitempty"`
	// LastUsed is when the device was last claimed; device choice prefers
	// the least recently used.
	LastUsed time.Time `json:"last_used,omitzero"`

	// History is the rolling record of the device's outcomes, oldest
	// first, at most HistoryLen (health.go). Absent in snapshots taken
	// before it existed.
	History []Outcome `json:"history,omitempty"`
}

// Address is how the imaging server reaches the board: its IP address
// when the inventory gives one, else its fqdn.
func (d *Device) Address() string {
	if d.IPAddress != "" {
		return d.IPAddress
	}
	return d.FQDN
}

// Request is a reservation of a device (the Mozpool layer).
type Request struct {
	ID              int64          `json:"id"`
	ImagingServer   string         `json:"imaging_server"`
	RequestedDevice string         `json:"requested_device"`
	Assignee        string         `json:"assignee"`
	Expires         time.Time      `json:"expires"`
	Image           string         `json:"image"`
	BootConfig      string         `json:"boot_config"`
	Environment     string         `json:"environment"`
	State           string         `json:"state"`
	StateDeadline   time.Time      `json:"state_deadline,omitzero"`
	StateEntered    time.Time      `json:"state_entered,omitzero"`
	Counters        map[string]int `json:"counters,omitempty"`
	Generation      uint64         `json:"generation"`
	Created         time.Time      `json:"created"`

	// Device is the claimed device ("" when none); ImagingResult is the
	// claim's imaging result ("", complete, failed-bad-device,
	// failed-bad-image).
	Device        string `json:"device,omitempty"`
	ImagingResult string `json:"imaging_result,omitempty"`

	// CallbackURL and Callbacks: see callback.go.
	CallbackURL string     `json:"callback_url,omitempty"`
	Callbacks   []Callback `json:"callbacks,omitempty"`
	// Queue fields (see queue.go). Priority orders requests (higher
	// first); Group is the fair-share group (the assignee when not
	// given). HardwareType, HardwareModel and Tags constrain the boards
	// an "any" request may get. MaxWait is how long (unscaled) it may
	// wait for one (0: DefaultMaxWait); NoWait makes a request for a
	// named board fail at once when the board is not free.
	Priority      int               `json:"priority,omitempty"`
	Group         string            `json:"group,omitempty"`
	HardwareType  string            `json:"hardware_type,omitempty"`
	HardwareModel string            `json:"hardware_model,omitempty"`
	Tags          map[string]string `json:"tags,omitempty"`
	MaxWait       time.Duration     `json:"max_wait,omitempty"`
	NoWait        bool              `json:"no_wait,omitempty"`
	// QueueSeq is the request's place in the queue while it waits (0:
	// not waiting); QueuedAt is when it entered the queue.
	QueueSeq uint64    `json:"queue_seq,omitempty"`
	QueuedAt time.Time `json:"queued_at,omitzero"`
	// ClaimedAt and ReadyAt time the request's last claim and the moment
	// its board became ready (the queue's history learns from them).
	ClaimedAt time.Time `json:"claimed_at,omitzero"`
	ReadyAt   time.Time `json:"ready_at,omitzero"`
	// Reused: the claimed board already carried the image and was only
	// power-cycled.
	Reused bool `json:"reused,omitempty"`
	// Reason says why the queue gave up on the request.
	Reason string `json:"reason,omitempty"`
	// Owner is the name of the token that created the request ("":
	// created anonymously, which anyone may renew or return).
	Owner string `json:"owner,omitempty"`
	// Claims is the request's claim history, oldest first: every device
	// it held, with the log indexes of the entries that claimed and
	// released it. Replicated like the rest of the record, it lets a
	// checker prove over the whole history, not a sample of it, that no
	// device was ever held by two requests at once.
	Claims []Claim `json:"claims,omitempty"`
	// Index is the log index of the last change to the record.
	Index uint64 `json:"index,omitempty"`
}

// FairGroup is the group a request shares the boards as.
func (r *Request) FairGroup() string {
	if r.Group != "" {
		return r.Group
	}
	return r.Assignee
}

// Claim is one span of a request's hold on a device: from the log index of
// the entry that claimed it to that of the entry that released it (0 while
// held). Spans are half-open, [From, To): a device released and claimed
// again by one entry is held by one request at a time.
type Claim struct {
	Device string `json:"device"`
	From   uint64 `json:"from"`
	To     uint64 `json:"to,omitempty"`
}

// openClaim starts a span of r's hold on device at index.
func (r *Request) openClaim(device string, index uint64) {
	r.Claims = append(r.Claims, Claim{Device: device, From: index})
}

// closeClaim ends r's current span, if one is open, at index.
func (r *Request) closeClaim(index uint64) {
	if n := len(r.Claims); n > 0 && r.Claims[n-1].To == 0 {
		r.Claims[n-1].To = index
	}
}

// RelayBoard is a ProXR relay board controlling a rack's power.
type RelayBoard struct {
	ID            int64  `json:"id"`
	Name          string `json:"name"`
	FQDN          string `json:"fqdn"` // host, without the port
	Port          int    `json:"port"`
	ImagingServer string `json:"imaging_server"`
	// Rack: as for Device; ImagingServer follows the rack's owner.
	Rack string `json:"rack,omitempty"`
}

// LogEntry is one line of a device's or a request's log. Entries are not
// kept in the FSM; they are handed to Config.Notify.
type LogEntry struct {
	// Kind is "device" or "request".
	Kind    string    `json:"kind"`
	Name    string    `json:"name"` // device name or request id
	At      time.Time `json:"at"`
	Source  string    `json:"source"`
	Message string    `json:"message"`
}

// Log kinds.
const (
	LogDevice  = "device"
	LogRequest = "request"
)

// idemEntry remembers the result of a command that carried an idempotency key.
type idemEntry struct {
	Key    string    `json:"key"`
	At     time.Time `json:"at"`
	Result Result    `json:"result"`
}

// State is the whole replicated state. Maps are keyed by name (or id for
// requests). Code outside this package reads it only inside FSM.Read.
type State struct {
	Servers         map[string]*ImagingServer  `json:"-"`
	HardwareTypes   map[string]*HardwareType   `json:"-"`
	Images          map[string]*Image          `json:"-"`
	PXEConfigs      map[string]*PXEConfig      `json:"-"`
	ImagePXEConfigs map[string]*ImagePXEConfig `json:"-"` // key image + "\x00" + hardware key
	Devices         map[string]*Device         `json:"-"`
	Requests        map[int64]*Request         `json:"-"`
	RelayBoards     map[string]*RelayBoard     `json:"-"`
	Tokens          map[string]*Token          `json:"-"`
	// Racks is keyed by rack name (rack.go).
	Racks map[string]*Rack `json:"-"`

	// Policy is the cluster's access policy: PolicyOpen ("" reads as
	// open) or PolicyStrict.
	Policy string `json:"policy,omitempty"`
	// RelayHealth is keyed by relay board address (relayhealth.go).
	RelayHealth map[string]*RelayHealth `json:"-"`
	// TFTPHealth is keyed by imaging server name: the tally of its
	// boards' PXE/TFTP failures (relayhealth.go).
	TFTPHealth map[string]*RelayHealth `json:"-"`

	// NextID holds the last id given out per entity kind.
	NextID map[string]int64 `json:"next_id"`
	// TimeScale multiplies every state timeout (0 or 1: real time). It is
	// replicated so that every node computes the same deadlines.
	TimeScale float64 `json:"time_scale,omitempty"`
	// MinDeviceTimeout is the shortest a device state's timeout becomes
	// under the time scale (a timeout shorter than it unscaled is kept as
	// it is). What a board does within a state scales, but the round trips
	// around it — a commit, the board's HTTP post — do not: compressed
	// below them, a state times out on any busy machine. 0: no floor.
	MinDeviceTimeout time.Duration `json:"min_device_timeout,omitempty"`

	// idem maps idempotency keys to their first result; idemOrder and
	// autoOrder hold client and node-generated keys oldest first.
	idem      map[string]*idemEntry
	idemOrder []*idemEntry
	autoOrder []*idemEntry

	// Queue holds the waiting requests and the fair-share clock;
	// History the measured times the ETAs come from.
	Queue   *Queue   `json:"-"`
	History *History `json:"-"`
}

func newState() *State {
	return &State{
		Servers:         map[string]*ImagingServer{},
		HardwareTypes:   map[string]*HardwareType{},
		Images:          map[string]*Image{},
		PXEConfigs:      map[string]*PXEConfig{},
		ImagePXEConfigs: map[string]*ImagePXEConfig{},
		Devices:         map[string]*Device{},
		Requests:        map[int64]*Request{},
		RelayBoards:     map[string]*RelayBoard{},
		Tokens:          map[string]*Token{},
		Racks:           map[string]*Rack{},
		RelayHealth:     map[string]*RelayHealth{},
		TFTPHealth:      map[string]*RelayHealth{},
		NextID:          map[string]int64{},
		idem:            map[string]*idemEntry{},
		Queue:           newQueue(),
		History:         newHistory(),
	}
}

func (s *State) nextID(kind string) int64 {
	s.NextID[kind]++
	return s.NextID[kind]
}

func imagePXEKey(image, hwKey string) string { return image + "\x00" + hwKey }

// PXEConfigFor returns the PXE config that installs image on the given
// hardware type ("" when the pair is not supported).
func (s *State) PXEConfigFor(image, hwKey string) string {
	if m, ok := s.ImagePXEConfigs[imagePXEKey(image, hwKey)]; ok {
		return m.PXEConfig
	}
	return ""
}

// ServerByNode returns the imaging server bound to a cluster node id. An
// empty id matches nothing (unbound servers have an empty NodeID).
func (s *State) ServerByNode(nodeID string) *ImagingServer {
	if nodeID == "" {
		return nil
	}
	for _, srv := range s.Servers {
		if srv.NodeID == nodeID {
			return srv
		}
	}
	return nil
}
