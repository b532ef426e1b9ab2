package cluster

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/memberlist"

	"github.com/mozpool/mozpool/fsm"
)

// gossipLabel keeps other memberlist users on the network out of ours.
const gossipLabel = "mozpool"

// rejoinInterval is how often a node re-joins gossip peers it has lost (a
// join to a dead address is one refused connection, so this is cheap).
const rejoinInterval = 2 * time.Second

func splitHostPort(a string) (string, int, error) {
	host, p, err := net.SplitHostPort(a)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, fmt.Errorf("port %q: %w", p, err)
	}
	return host, port, nil
}

func (n *Node) openGossip() error {
	mc := memberlist.DefaultLANConfig()
	mc.Name = n.id
	host, port, err := splitHostPort(n.cfg.GossipBind)
	if err != nil {
		return fmt.Errorf("cluster: gossip bind: %w", err)
	}
	mc.BindAddr, mc.BindPort = host, port
	if n.cfg.GossipAdvertise != "" {
		host, port, err := splitHostPort(n.cfg.GossipAdvertise)
		if err != nil {
			return fmt.Errorf("cluster: gossip advertise: %w", err)
		}
		mc.AdvertiseAddr, mc.AdvertisePort = host, port
	}
	mc.Label = gossipLabel
	if n.cfg.Token != "" {
		key := sha256.Sum256([]byte("mozpool-gossip:" + n.cfg.Token))
		mc.SecretKey = key[:]
	}
	// A node that comes back under the same id with a new address is
	// accepted after this long instead of GossipToTheDeadTime.
	mc.DeadNodeReclaimTime = 10 * time.Second
	mc.Delegate = (*gossipDelegate)(n)
	mc.Events = n.health
	mc.LogOutput = nil
	mc.Logger = n.cfg.Logger.Named("memberlist").StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true})
	ml, err := memberlist.Create(mc)
	if err != nil {
		return fmt.Errorf("cluster: start gossip: %w", err)
	}
	n.ml = ml
	return nil
}

func (n *Node) gossipAddr() string {
	ln := n.ml.LocalNode()
	return net.JoinHostPort(ln.Addr.String(), strconv.Itoa(int(ln.Port)))
}

// gossipDelegate publishes the node's identity as memberlist metadata.
type gossipDelegate Node

func (d *gossipDelegate) NodeMeta(limit int) []byte {
	b, _ := json.Marshal(d.self)
	if len(b) > limit {
		// Identity is far below memberlist's 512-byte limit unless names
		// are absurd; drop the optional fields rather than the node.
		b, _ = json.Marshal(Identity{ID: d.self.ID, HTTPAddr: d.self.HTTPAddr})
	}
	return b
}
func (d *gossipDelegate) NotifyMsg([]byte)                           {}
func (d *gossipDelegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *gossipDelegate) LocalState(join bool) []byte                { return nil }
func (d *gossipDelegate) MergeRemoteState(buf []byte, join bool)     {}

// gossipIdentity returns a node's identity from its gossip metadata.
func (n *Node) gossipIdentity(id string) *Identity {
	p, ok := n.health.get(id)
	if !ok || p.ident.HTTPAddr == "" {
		return nil
	}
	ident := p.ident
	return &ident
}

// rejoinGossip joins the gossip addresses of servers in the replicated table
// that memberlist does not know as alive. It runs at start and every
// rejoinInterval, since memberlist forgets peers after a long partition.
func (n *Node) rejoinGossip() {
	defer n.wg.Done()
	t := time.NewTicker(rejoinInterval)
	defer t.Stop()
	for {
		var addrs []string
		n.cfg.FSM.Read(func(s *fsm.State) {
			for _, srv := range s.Servers {
				if srv.NodeID == "" || srv.NodeID == n.id || srv.GossipAddr == "" {
					continue
				}
				if p, ok := n.health.get(srv.NodeID); ok && p.gossip == "alive" {
					continue
				}
				addrs = append(addrs, srv.GossipAddr)
			}
		})
		if len(addrs) > 0 {
			if k, err := n.ml.Join(addrs); err != nil && k == 0 {
				n.logger.Debug("gossip rejoin failed", "addrs", addrs, "error", err)
			}
		}
		select {
		case <-n.shutdownCh:
			return
		case <-t.C:
		}
	}
}

// peer is what this node knows of another node's health.
type peer struct {
	ident  Identity
	gossip string // alive, suspect, dead, left
	// lastContact is when gossip or Raft last heard from the node.
	lastContact time.Time
	// raftFailing is set on the leader while heartbeats to the node fail
	// in its current term (cleared when a term starts or ends).
	raftFailing bool
}

// peerHealth tracks peers from gossip events and Raft heartbeat
// observations. It implements memberlist.EventDelegate.
type peerHealth struct {
	mu    sync.Mutex
	peers map[string]*peer
}

func newPeerHealth() *peerHealth { return &peerHealth{peers: map[string]*peer{}} }

func (h *peerHealth) get(id string) (peer, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	p, ok := h.peers[id]
	if !ok {
		return peer{}, false
	}
	return *p, true
}

func (h *peerHealth) peerLocked(id string) *peer {
	p, ok := h.peers[id]
	if !ok {
		p = &peer{gossip: "unknown"}
		h.peers[id] = p
	}
	return p
}

func (h *peerHealth) gossipEvent(node *memberlist.Node, state string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	p := h.peerLocked(node.Name)
	var ident Identity
	if err := json.Unmarshal(node.Meta, &ident); err == nil && ident.ID != "" {
		p.ident = ident
	}
	p.gossip = state
	if state == "alive" {
		p.lastContact = time.Now()
	}
}

func (h *peerHealth) NotifyJoin(node *memberlist.Node)   { h.gossipEvent(node, "alive") }
func (h *peerHealth) NotifyUpdate(node *memberlist.Node) { h.gossipEvent(node, "alive") }
func (h *peerHealth) NotifyLeave(node *memberlist.Node) {
	state := "dead"
	if node.State == memberlist.StateLeft {
		state = "left"
	}
	h.gossipEvent(node, state)
}

// forgetRaftFailures clears every peer's raftFailing. Raft reports a
// follower's heartbeats only to the leader of the term, and reports their
// resumption only after a failure in that term: a node that leads again
// would otherwise keep, for a follower that came back under another
// leader and never failed its heartbeats since, the failures of its
// earlier term. lastContact is kept.
func (h *peerHealth) forgetRaftFailures() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, p := range h.peers {
		p.raftFailing = false
	}
}

// raftContact records the leader's view of a follower's heartbeats.
func (h *peerHealth) raftContact(id string, failing bool, last time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	p := h.peerLocked(id)
	p.raftFailing = failing
	if !last.IsZero() && last.After(p.lastContact) {
		p.lastContact = last
	}
}
