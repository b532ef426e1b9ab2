package main

import (
	"context"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// runQueue lists the waiting requests, in service order within each group
// of requests that compete for the same boards:
//
//	queue [--group G] [--assignee A] [--device D] [--env E] [--image I] [--hardware-type T]
func runQueue(ctx context.Context, e *env, args []string) error {
	fs := e.commandFlags()
	filters := map[string]*string{
		"group":         fs.String("group", "", "only this fair-share `group`"),
		"assignee":      fs.String("assignee", "", "only this `assignee`"),
		"device":        fs.String("device", "", "only requests for this `device` (or any)"),
		"environment":   fs.String("env", "", "only requests for this `environment`"),
		"image":         fs.String("image", "", "only requests for this `image`"),
		"hardware_type": fs.String("hardware-type", "", "only requests for this hardware `type`"),
	}
	if _, err := e.parse(fs, args); err != nil {
		return err
	}
	q := url.Values{}
	for k, v := range filters {
		if *v != "" {
			q.Set(k, *v)
		}
	}
	reply, err := e.client().Queue(ctx, q)
	if err != nil {
		return err
	}
	if e.json {
		return e.printJSON(reply)
	}
	t := e.table("ID", "POSITION", "PRIORITY", "GROUP", "ASSIGNEE", "DEVICE", "IMAGE", "CONSTRAINTS", "QUEUED", "ETA")
	for _, r := range reply.Queue {
		var cons []string
		if r.Environment != "" && r.Environment != "any" {
			cons = append(cons, "env="+r.Environment)
		}
		if r.HardwareType != "" {
			cons = append(cons, "type="+r.HardwareType)
		}
		if r.HardwareModel != "" {
			cons = append(cons, "model="+r.HardwareModel)
		}
		for k, v := range r.Tags {
			cons = append(cons, k+"="+v)
		}
		sort.Strings(cons)
		pos := fmt.Sprintf("%d/%d", r.QueuePosition, r.QueueLength)
		if r.Aged {
			pos += " aged"
		}
		t.row(r.ID, pos, r.Priority, r.Group, r.Assignee, r.RequestedDevice, r.Image,
			orDash(strings.Join(cons, ",")), r.QueuedAt, orDash(r.ETA))
	}
	return t.flush()
}

// runQueueWeight sets a fair-share group's weight:
//
//	queue weight GROUP WEIGHT
func runQueueWeight(ctx context.Context, e *env, args []string) error {
	pos, err := e.parse(e.commandFlags(), args, "GROUP", "WEIGHT")
	if err != nil {
		return err
	}
	w, err := strconv.Atoi(pos[1])
	if err != nil || w < 0 {
		return usagef("WEIGHT %q is not a non-negative integer", pos[1])
	}
	if err := e.client().SetGroupWeight(ctx, pos[0], w); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "group %s: weight %d\n", pos[0], max(w, 1))
	return nil
}
