package fsm

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// CommandType identifies a command in the Raft log. The numbers are written to
// disk: they are never reused or reordered; new commands are appended.
type CommandType uint8

const (
	// CmdInvalid is never written; a zero type byte means a corrupt entry.
	CmdInvalid CommandType = 0

	CmdServerUpsert         CommandType = 1
	CmdServerRemove         CommandType = 2
	CmdInventorySync        CommandType = 3
	CmdImageUpsert          CommandType = 4
	CmdPXEConfigUpsert      CommandType = 5
	CmdImagePXEConfigSet    CommandType = 6
	CmdDeviceSetComments    CommandType = 7
	CmdDeviceSetEnvironment CommandType = 8
	CmdLogAppend            CommandType = 9
	CmdDeviceSetNextBoot    CommandType = 10
	CmdDeviceEvent          CommandType = 11
	CmdDeviceTimeout        CommandType = 12
	CmdDeviceStateChange    CommandType = 13
	CmdSetTimeScale         CommandType = 14
	CmdDeviceRegister       CommandType = 15
	CmdRequestCreate        CommandType = 16
	CmdRequestEvent         CommandType = 17
	CmdRequestTimeout       CommandType = 18
	CmdRequestRenew         CommandType = 19
	CmdRequestExpire        CommandType = 20
	CmdRequestCompact       CommandType = 21
	CmdServerHealth         CommandType = 22
	CmdCallbackDone         CommandType = 23
	CmdQueueSetWeight       CommandType = 24
	CmdQueueEpoch           CommandType = 25
	CmdTokenCreate          CommandType = 26
	CmdTokenRevoke          CommandType = 27
	CmdSetPolicy            CommandType = 28
	CmdRackTakeover         CommandType = 29
	CmdRackMove             CommandType = 30

	// IgnoreUnknown is or-ed into a type byte for commands that older nodes
	// may skip safely. A node that does not know a type without this bit
	// panics rather than let replicas diverge.
	IgnoreUnknown CommandType = 0x80
)

var commandNames = map[CommandType]string{
	CmdServerUpsert:         "server_upsert",
	CmdServerRemove:         "server_remove",
	CmdInventorySync:        "inventory_sync",
	CmdImageUpsert:          "image_upsert",
	CmdPXEConfigUpsert:      "pxe_config_upsert",
	CmdImagePXEConfigSet:    "image_pxe_config_set",
	CmdDeviceSetComments:    "device_set_comments",
	CmdDeviceSetEnvironment: "device_set_environment",
	CmdLogAppend:            "log_append",
	CmdDeviceSetNextBoot:    "device_set_next_boot",
	CmdDeviceEvent:          "device_event",
	CmdDeviceTimeout:        "device_timeout",
	CmdDeviceStateChange:    "device_state_change",
	CmdSetTimeScale:         "set_time_scale",
	CmdDeviceRegister:       "device_register",
	CmdRequestCreate:        "request_create",
	CmdRequestEvent:         "request_event",
	CmdRequestTimeout:       "request_timeout",
	CmdRequestRenew:         "request_renew",
	CmdRequestExpire:        "request_expire",
	CmdRequestCompact:       "request_compact",
	CmdServerHealth:         "server_health",
	CmdCallbackDone:         "callback_done",
	CmdQueueSetWeight:       "queue_set_weight",
	CmdQueueEpoch:           "queue_epoch",
	CmdTokenCreate:          "token_create",
	CmdTokenRevoke:          "token_revoke",
	CmdSetPolicy:            "set_policy",
	CmdRackTakeover:         "rack_takeover",
	CmdRackMove:             "rack_move",
}

func (t CommandType) String() string {
	if n, ok := commandNames[t&^IgnoreUnknown]; ok {
		return n
	}
	return fmt.Sprintf("command(%d)", uint8(t))
}

// ErrShortCommand is returned by Decode for an empty buffer.
var ErrShortCommand = errors.New("command too short")

// Header is embedded in every command. At is stamped by the proposer (UTC);
// IdempotencyKey, when set, makes a retried command a no-op that returns the
// first result. Actor is who made the write through the API: a token's
// name, or "anonymous@<address>" ("" for the nodes' own commands); every
// log line the command files names it.
type Header struct {
	At             time.Time `json:"at"`
	IdempotencyKey string    `json:"idempotency_key,omitempty"`
	Actor          string    `json:"actor,omitempty"`
}

// Head returns the header; every command type embeds Header.
func (h *Header) Head() *Header { return h }

// Command is implemented by every command body.
type Command interface {
	Head() *Header
}

// Encode writes the type byte followed by the JSON encoding of v.
func Encode(t CommandType, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", t, err)
	}
	return append([]byte{byte(t)}, b...), nil
}

// Decode splits a log entry into its type and decodes the JSON body into v
// (v may be nil to read the type only).
func Decode(b []byte, v any) (CommandType, error) {
	if len(b) < 1 {
		return CmdInvalid, ErrShortCommand
	}
	t := CommandType(b[0])
	if v == nil {
		return t, nil
	}
	if err := json.Unmarshal(b[1:], v); err != nil {
		return t, fmt.Errorf("decode %s: %w", t, err)
	}
	return t, nil
}

// ServerUpsert registers a cluster node as an imaging server (or updates its
// addresses). The leader proposes it on a join, each node for itself.
type ServerUpsert struct {
	Header
	Name     string `json:"name"`
	NodeID   string `json:"node_id"`
	Rack     string `json:"rack,omitempty"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr"`
	// GossipAddr is the node's memberlist address (host:port).
	GossipAddr string `json:"gossip_addr,omitempty"`
	// TFTPAddr is the node's TFTP server address (host:port), if any.
	TFTPAddr string `json:"tftp_addr,omitempty"`
	// SyslogAddr is the node's syslog receiver address (UDP host:port),
	// if any.
	SyslogAddr string `json:"syslog_addr,omitempty"`
}

// ServerHealth records the leader's view of whether an imaging server's
// node is reachable. Device choice skips the boards of a server marked
// down: their rack is frozen until the node returns.
type ServerHealth struct {
	Header
	Name string `json:"name"`
	Down bool   `json:"down"`
}

// ServerRemove detaches a cluster node from its imaging server entry. The
// imaging server stays (devices still name it); only its node binding goes.
type ServerRemove struct {
	Header
	NodeID string `json:"node_id"`
}

// InventorySync merges a lab inventory. See Inventory.
type InventorySync struct {
	Header
	Inventory Inventory `json:"inventory"`
	// ShipIt lifts the safety valve on the number of device changes.
	ShipIt bool `json:"ship_it,omitempty"`
}

// ImageUpsert adds an image or modifies one with the same name.
type ImageUpsert struct {
	Header
	Image ImageSpec `json:"image"`
}

// PXEConfigUpsert adds a PXE config or modifies one with the same name. Nil
// fields of a modification are left unchanged.
type PXEConfigUpsert struct {
	Header
	Name        string  `json:"name"`
	Description *string `json:"description,omitempty"`
	Contents    *string `json:"contents,omitempty"`
	Active      *bool   `json:"active,omitempty"`
	// Create must be true to add a new config, false to modify one; it keeps
	// "add" from overwriting and "modify" from creating by mistake.
	Create bool `json:"create"`
}

// ImagePXEConfigSet maps (image, hardware type) to a PXE config; an empty
// PXEConfig removes the mapping.
type ImagePXEConfigSet struct {
	Header
	Image         string `json:"image"`
	HardwareType  string `json:"hardware_type"`
	HardwareModel string `json:"hardware_model"`
	PXEConfig     string `json:"pxe_config"`
}

// DeviceSetComments replaces a device's free-text comments.
type DeviceSetComments struct {
	Header
	Device   string `json:"device"`
	Comments string `json:"comments"`
}

// DeviceSetEnvironment sets a device's environment.
type DeviceSetEnvironment struct {
	Header
	Device      string `json:"device"`
	Environment string `json:"environment"`
}

// DeviceSetNextBoot sets the boot config a device will be given by its
// next network boot (served by GET /api/device/{id}/bootconfig/). The BMM
// power-cycle route uses it; the next image is left as it is.
type DeviceSetNextBoot struct {
	Header
	Device     string `json:"device"`
	BootConfig string `json:"boot_config"`
}

// DeviceEvent delivers an event to a device's machine. Generation is zero
// for events from outside (API, boards); a hardware result carries the
// generation of the state entry it was started for, and is discarded if the
// device has moved on since.
type DeviceEvent struct {
	Header
	Device     string    `json:"device"`
	Event      string    `json:"event"`
	Args       EventArgs `json:"args"`
	Generation uint64    `json:"generation,omitempty"`
	// Source is the log source of the event ("api", "bmm", "sut", ...);
	// From, for events from the API, is the client's address.
	Source string `json:"source,omitempty"`
	From   string `json:"from,omitempty"`
	// Fence, set by the imaging server whose executor proposes a result,
	// names the rack ownership it acted under.
	Fence
}

// DeviceTimeout tells a device's machine that the deadline of the state
// entered at Generation has passed. Proposed by the device's owner; a
// timeout for an older generation is discarded.
type DeviceTimeout struct {
	Header
	Device     string `json:"device"`
	Generation uint64 `json:"generation"`
	// Deadline, when set, is the deadline that passed; a timeout of an
	// entry whose deadline has been re-armed since (DeviceTx.Rearm) is
	// stale.
	Deadline time.Time `json:"deadline,omitzero"`
	// Fence: see DeviceEvent.
	Fence
}

// DeviceStateChange is a forced, conditional state change: it applies only
// if the device is in From (or in a state the machine does not know).
type DeviceStateChange struct {
	Header
	Device string `json:"device"`
	From   string `json:"from"`
	To     string `json:"to"`
	// Fence: see DeviceEvent (unset for an operator's change).
	Fence
}

// DeviceRegister is a board announcing itself (hostname and MAC, which
// must match its inventory entry). A board still in state "new" starts its
// self-test at once.
type DeviceRegister struct {
	Header
	Device  string `json:"device"`
	MAC     string `json:"mac_address"`
	Address string `json:"address,omitempty"` // where the announcement came from
}

// RequestCreate creates a request and puts it in the queue in the same
// Apply (where it gets a free board at once if one suits it). The proposer
// computes Expires (its time + duration).
type RequestCreate struct {
	Header
	RequestedDevice string    `json:"requested_device"` // "any" or a device name
	Assignee        string    `json:"assignee"`
	Expires         time.Time `json:"expires"`
	Image           string    `json:"image"`
	BootConfig      string    `json:"boot_config"`
	Environment     string    `json:"environment"`
	// Server is the imaging server that received the request.
	Server string `json:"server"`
	// CallbackURL, if set, is notified of the request's outcomes
	// (see Callback).
	CallbackURL string `json:"callback_url,omitempty"`

	// Queue fields (all optional; see Request). Priority is nil for the
	// default; MaxWait 0 for the default.
	Priority      *int              `json:"priority,omitempty"`
	Group         string            `json:"group,omitempty"`
	HardwareType  string            `json:"hardware_type,omitempty"`
	HardwareModel string            `json:"hardware_model,omitempty"`
	Tags          map[string]string `json:"tags,omitempty"`
	MaxWait       time.Duration     `json:"max_wait,omitempty"`
	NoWait        bool              `json:"no_wait,omitempty"`

	// Owner is the name of the token the request was created with ("":
	// anonymous). Only its owner, or an operator, may renew or return it.
	Owner string `json:"owner,omitempty"`
}

// RequestEvent delivers an event to a request ("close" is a return).
// Generation is zero for events from outside.
type RequestEvent struct {
	Header
	ID         int64            `json:"id"`
	Event      string           `json:"event"`
	Args       RequestEventArgs `json:"args"`
	Generation uint64           `json:"generation,omitempty"`
	// Caller, when set, must own the request, or the request must have
	// no owner (ErrForbidden otherwise).
	Caller string `json:"caller,omitempty"`
}

// RequestTimeout tells a request that the deadline of the state entered at
// Generation has passed (proposed by the leader's request driver).
type RequestTimeout struct {
	Header
	ID         int64  `json:"id"`
	Generation uint64 `json:"generation"`
}

// RequestRenew sets a request's expiry (the proposer's time + duration), in
// any state.
type RequestRenew struct {
	Header
	ID      int64     `json:"id"`
	Expires time.Time `json:"expires"`
	// Caller: as in RequestEvent.
	Caller string `json:"caller,omitempty"`
}

// RequestExpire expires a request whose expiry has passed at the command's
// time (proposed by the leader's request driver).
type RequestExpire struct {
	Header
	ID int64 `json:"id"`
}

// RequestCompact deletes requests that are closed or failed and expired
// before Before.
type RequestCompact struct {
	Header
	Before time.Time `json:"before"`
}

// SetTimeScale sets the cluster's time scale (see State.TimeScale).
type SetTimeScale struct {
	Header
	TimeScale float64 `json:"time_scale"`
	// MinDeviceTimeout is the floor of scaled device timeouts (see
	// State.MinDeviceTimeout); 0 for none, at most an hour.
	MinDeviceTimeout time.Duration `json:"min_device_timeout,omitempty"`
}

// LogAppend files log lines for devices or requests without changing state.
// Nodes use it so that entries written on one node (a BMM action, a syslog
// line) are queryable on every node.
type LogAppend struct {
	Header
	Entries []LogEntry `json:"entries"`
	// Server, when set, is the imaging server that observed the lines,
	// and RackGenerations the ownership generation of each rack it
	// acted under: a device's line is dropped unless Server owns the
	// device's rack at that generation (or, for a device in no rack, is
	// its imaging server). Request lines are always filed.
	Server          string            `json:"server,omitempty"`
	RackGenerations map[string]uint64 `json:"rack_generations,omitempty"`
}

// QueueSetWeight sets a fair-share group's weight: a group of weight w is
// served w times as often as a group of weight 1 while both wait. Weight 0
// resets it to 1.
type QueueSetWeight struct {
	Header
	Group  string `json:"group"`
	Weight int    `json:"weight"`
}

// QueueEpoch marks the log as written by nodes that run the queue. The
// request driver proposes it when it starts on a leader whose state has
// none. It changes nothing for them; a node from before the queue does not
// know the command and stops there, instead of applying the requests that
// follow differently from its peers (it searched where they queue).
type QueueEpoch struct {
	Header
}

// TokenCreate adds an API token. Only the SHA-256 of the secret is
// replicated (hex); the secret itself is shown once to its creator.
type TokenCreate struct {
	Header
	Name string `json:"name"`
	Role string `json:"role"`
	Hash string `json:"hash"`
}

// TokenRevoke deletes an API token by name.
type TokenRevoke struct {
	Header
	Name string `json:"name"`
}

// SetPolicy sets the cluster's access policy (PolicyOpen or PolicyStrict).
type SetPolicy struct {
	Header
	Policy string `json:"policy"`
}
