package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/mozpool/mozpool/api"
)

// runStatus prints the cluster's servers, then the leader, the term and
// indexes, the failure tolerance and the device counts.
func runStatus(ctx context.Context, e *env, args []string) error {
	fs := e.commandFlags()
	if _, err := e.parse(fs, args); err != nil {
		return err
	}
	st, err := e.client().ClusterStatus(ctx)
	if err != nil {
		return err
	}
	if e.json {
		return e.printJSON(st)
	}

	t := e.table("ID", "NAME", "RACK", "SUFFRAGE", "RAFT", "HTTP", "LEADER", "HEALTHY", "LAST CONTACT")
	for _, s := range st.Servers {
		leader := ""
		if s.Leader {
			leader = "*"
		}
		healthy := yesNo(s.Healthy)
		if !s.Healthy && s.Gossip != "" && s.Gossip != "alive" {
			healthy += " (" + s.Gossip + ")"
		}
		t.row(s.ID, orDash(s.Name), orDash(s.Rack), s.Suffrage, orDash(s.RaftAddr), orDash(s.HTTPAddr),
			leader, healthy, lastContact(s.LastContactMS))
	}
	if err := t.flush(); err != nil {
		return err
	}

	fmt.Fprintln(e.stdout)
	t = e.table("leader:", leaderName(st.Leader))
	t.row("node:", fmt.Sprintf("%s (%s)", st.Node.ID, strings.ToLower(st.State)))
	t.row("term:", st.Term)
	t.row("commit index:", st.CommitIndex)
	t.row("applied index:", st.AppliedIndex)
	t.row("failure tolerance:", st.FailureTolerance)
	t.row("devices:", countsLine(st.DevicesByState))
	for _, rack := range sortedKeys(st.DevicesByRack) {
		t.row("  "+orDash(rack)+":", countsLine(st.DevicesByRack[rack]))
	}
	for _, rb := range st.SuspectRelayBoards {
		t.row("suspect relay board:", fmt.Sprintf("%s since %s: %s failed in %s", rb.Addr, rb.Since, strings.Join(rb.Devices, ", "), rb.Kind))
	}
	for _, ts := range st.SuspectTFTPServers {
		t.row("suspect PXE/TFTP:", fmt.Sprintf("%s since %s: %s failed in %s", ts.Server, ts.Since, strings.Join(ts.Devices, ", "), ts.Kind))
	}
	return t.flush()
}

func leaderName(l *api.Identity) string {
	if l == nil || l.ID == "" {
		return "none"
	}
	if l.Name != "" && l.Name != l.ID {
		return fmt.Sprintf("%s (%s)", l.ID, l.Name)
	}
	return l.ID
}

func lastContact(ms *int64) string {
	if ms == nil {
		return "-"
	}
	return (time.Duration(*ms) * time.Millisecond).String()
}

// countsLine renders {"new": 3, "ready": 20} as "23 (new 3, ready 20)".
func countsLine(m map[string]int) string {
	total := 0
	parts := make([]string, 0, len(m))
	for _, k := range sortedKeys(m) {
		total += m[k]
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	if total == 0 {
		return "0"
	}
	return fmt.Sprintf("%d (%s)", total, strings.Join(parts, ", "))
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// runJoin reads the new node's identity from NODE_URL/api/cluster/self/
// (unless --id and --raft give it) and asks --server to add it.
func runJoin(ctx context.Context, e *env, args []string) error {
	fs := e.commandFlags()
	id := fs.String("id", "", "node `id` (with --raft: skip asking the node)")
	raftAddr := fs.String("raft", "", "node Raft `address` host:port")
	name := fs.String("name", "", "imaging server `name` the node serves")
	rack := fs.String("rack", "", "`rack` the node serves")
	pos, err := e.parse(fs, args, "NODE_URL")
	if err != nil {
		return err
	}
	node := e.clientAt(pos[0])

	var ident api.Identity
	if *id == "" || *raftAddr == "" {
		if ident, err = node.Self(ctx); err != nil {
			return fmt.Errorf("read identity of %s: %w", node.BaseURL(), err)
		}
	}
	if *id != "" {
		ident.ID = *id
	}
	if *raftAddr != "" {
		ident.RaftAddr = *raftAddr
	}
	if *name != "" {
		ident.Name = *name
	}
	if *rack != "" {
		ident.Rack = *rack
	}
	if ident.HTTPAddr == "" {
		ident.HTTPAddr = node.BaseURL()
	}

	res, err := e.client().Join(ctx, ident)
	if err != nil {
		return fmt.Errorf("join %s: %w", ident.ID, err)
	}
	if e.json {
		return e.printJSON(struct {
			Node   api.Identity   `json:"node"`
			Result api.JoinResult `json:"result"`
		}{ident, res})
	}
	label := ident.ID
	if ident.Name != "" {
		label += " (" + ident.Name + ")"
	}
	fmt.Fprintf(e.stdout, "joined %s as %s: %s\n", label, res.Suffrage, res.Action)
	return nil
}

// runHealth checks one node's health (for scripts and monitors).
func runHealth(ctx context.Context, e *env, args []string) error {
	if _, err := e.parse(e.commandFlags(), args); err != nil {
		return err
	}
	if err := e.client().Health(ctx); err != nil {
		return fmt.Errorf("%s is not healthy: %w", e.server, err)
	}
	if e.json {
		return e.printJSON(map[string]bool{"ok": true})
	}
	fmt.Fprintf(e.stdout, "%s is healthy\n", e.server)
	return nil
}

// runRemove removes a node from the Raft configuration.
func runRemove(ctx context.Context, e *env, args []string) error {
	pos, err := e.parse(e.commandFlags(), args, "ID")
	if err != nil {
		return err
	}
	if err := e.client().Remove(ctx, pos[0]); err != nil {
		return fmt.Errorf("remove %s: %w", pos[0], err)
	}
	if e.json {
		return e.printJSON(map[string]string{"removed": pos[0]})
	}
	fmt.Fprintf(e.stdout, "removed %s\n", pos[0])
	return nil
}
