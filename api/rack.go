package api

import "time"

// Rack is one rack as GET /api/rack/list/ shows it: its imaging servers
// (owner preference first), the one that acts on its boards now, and the
// ownership generation, which increases at every change of owner.
type Rack struct {
	Name       string    `json:"name"`
	Servers    []string  `json:"servers"`
	Owner      string    `json:"owner"`
	Generation uint64    `json:"generation"`
	Moved      time.Time `json:"moved,omitzero"`
	// Reason is why the owner last changed: inventory, takeover or move.
	Reason string `json:"reason,omitempty"`
	// Devices and RelayBoards count the rack's boards.
	Devices     int `json:"devices"`
	RelayBoards int `json:"relay_boards"`
	// Down lists the rack's servers whose nodes are unreachable.
	Down []string `json:"down,omitempty"`
}

// RackList is the reply of GET /api/rack/list/.
type RackList struct {
	Racks []Rack `json:"racks"`
}

// RackMoveBody is the body of POST /api/rack/{name}/move/. Generation, if
// not zero, must be the rack's current one (409 otherwise).
type RackMoveBody struct {
	Server     string `json:"server"`
	Generation uint64 `json:"generation,omitempty"`
}
