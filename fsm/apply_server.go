package fsm

import "fmt"

func (tx *txn) applyServerUpsert(b []byte) (any, error) {
	var c ServerUpsert
	tx.decode(b, &c)
	if c.Name == "" || c.NodeID == "" {
		return nil, fmt.Errorf("%w: server needs a name and a node id", ErrInvalid)
	}
	s := tx.s
	// A node id is bound to one server name: rebinding moves it.
	if old := s.ServerByNode(c.NodeID); old != nil && old.Name != c.Name {
		old.NodeID, old.RaftAddr, old.HTTPAddr, old.GossipAddr, old.TFTPAddr, old.SyslogAddr = "", "", "", "", "", ""
	}
	srv, ok := s.Servers[c.Name]
	if !ok {
		srv = &ImagingServer{ID: s.nextID("server"), Name: c.Name}
		s.Servers[c.Name] = srv
	}
	srv.NodeID, srv.RaftAddr, srv.HTTPAddr, srv.GossipAddr = c.NodeID, c.RaftAddr, c.HTTPAddr, c.GossipAddr
	srv.TFTPAddr, srv.SyslogAddr = c.TFTPAddr, c.SyslogAddr
	if c.Rack != "" {
		srv.Rack = c.Rack
	}
	out := *srv
	return &out, nil
}

func (tx *txn) applyServerHealth(b []byte) (any, error) {
	var c ServerHealth
	tx.decode(b, &c)
	srv, ok := tx.s.Servers[c.Name]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownServer, c.Name)
	}
	if srv.Down != c.Down {
		// Its boards leave or rejoin the free ones.
		tx.markAllDevices(func(d *Device) bool { return d.ImagingServer == c.Name })
	}
	srv.Down = c.Down
	return nil, nil
}

func (tx *txn) applyServerRemove(b []byte) (any, error) {
	var c ServerRemove
	tx.decode(b, &c)
	srv := tx.s.ServerByNode(c.NodeID)
	if srv == nil {
		return nil, fmt.Errorf("%w: node %q", ErrUnknownServer, c.NodeID)
	}
	srv.NodeID, srv.RaftAddr, srv.HTTPAddr, srv.GossipAddr, srv.TFTPAddr, srv.SyslogAddr = "", "", "", "", "", ""
	return nil, nil
}
