package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/mozpool/mozpool/api"
	"github.com/mozpool/mozpool/client"
)

func runDeviceList(ctx context.Context, e *env, args []string) error {
	fs := e.commandFlags()
	details := fs.Bool("details", false, "show state, image, environment and owner")
	if _, err := e.parse(fs, args); err != nil {
		return err
	}
	c := e.client()
	if !*details {
		names, err := c.Devices(ctx)
		if err != nil {
			return err
		}
		if e.json {
			return e.printJSON(names)
		}
		for _, n := range names {
			fmt.Fprintln(e.stdout, n)
		}
		return nil
	}
	devs, err := c.DeviceDetails(ctx)
	if err != nil {
		return err
	}
	if e.json {
		return e.printJSON(devs)
	}
	t := e.table("NAME", "STATE", "IMAGE", "ENVIRONMENT", "IMAGING SERVER", "RELAY", "REQUEST", "COMMENTS")
	for _, d := range devs {
		t.row(d.Name, d.State, orDash(deref(d.Image)), orDash(deref(d.Environment)), d.ImagingServer,
			orDash(d.RelayInfo), requestID(d.RequestID), orDash(deref(d.Comments)))
	}
	return t.flush()
}

func requestID(id *int64) string {
	if id == nil || *id == 0 {
		return "-"
	}
	return strconv.FormatInt(*id, 10)
}

func runDeviceShow(ctx context.Context, e *env, args []string) error {
	pos, err := e.parse(e.commandFlags(), args, "NAME")
	if err != nil {
		return err
	}
	d, err := e.client().Device(ctx, pos[0])
	if err != nil {
		return fmt.Errorf("device %s: %w", pos[0], err)
	}
	if e.json {
		return e.printJSON(d)
	}
	t := e.table("name:", d.Name)
	t.row("id:", d.ID)
	t.row("fqdn:", d.FQDN)
	t.row("inventory id:", d.InventoryID)
	t.row("mac address:", d.MAC)
	t.row("hardware type:", orDash(d.HardwareType))
	t.row("imaging server:", d.ImagingServer)
	t.row("relay info:", orDash(d.RelayInfo))
	t.row("state:", fmt.Sprintf("%s (generation %d)", d.State, d.Generation))
	t.row("state deadline:", orDash(deref(d.StateDeadline)))
	t.row("image:", orDash(deref(d.Image)))
	t.row("boot config:", orDash(deref(d.BootConfig)))
	t.row("next image:", orDash(deref(d.NextImage)))
	t.row("next boot config:", orDash(deref(d.NextBootConfig)))
	t.row("environment:", orDash(deref(d.Environment)))
	t.row("request:", requestID(d.RequestID))
	t.row("comments:", orDash(deref(d.Comments)))
	t.row("health score:", d.HealthScore)
	t.row("history:", historyLine(d.History))
	return t.flush()
}

// historyLine writes a device's history on one line, newest first:
// "imaging ok, boot failed (pxe_booting), …" ("-" when empty).
func historyLine(h []api.DeviceOutcome) string {
	if len(h) == 0 {
		return "-"
	}
	parts := make([]string, 0, len(h))
	for i := len(h) - 1; i >= 0; i-- {
		o := h[i]
		switch {
		case o.Op == "reset":
			parts = append(parts, "reset")
		case o.Fail == "":
			parts = append(parts, o.Op+" ok")
		default:
			parts = append(parts, o.Op+" failed ("+o.Fail+")")
		}
	}
	return strings.Join(parts, ", ")
}

func runDeviceSetComments(ctx context.Context, e *env, args []string) error {
	pos, err := e.parse(e.commandFlags(), args, "NAME", "TEXT")
	if err != nil {
		return err
	}
	return setDevice(ctx, e, pos[0], "comments", pos[1], (*client.Client).SetComments)
}

func runDeviceSetEnvironment(ctx context.Context, e *env, args []string) error {
	pos, err := e.parse(e.commandFlags(), args, "NAME", "ENV")
	if err != nil {
		return err
	}
	return setDevice(ctx, e, pos[0], "environment", pos[1], (*client.Client).SetEnvironment)
}

// setDevice runs one of the device setters and reports it.
func setDevice(ctx context.Context, e *env, name, field, value string,
	set func(*client.Client, context.Context, string, string) error) error {
	if err := set(e.client(), ctx, name, value); err != nil {
		return fmt.Errorf("set %s of %s: %w", field, name, err)
	}
	if e.json {
		return e.printJSON(map[string]string{"device": name, field: value})
	}
	fmt.Fprintf(e.stdout, "set %s of %s to %q\n", field, name, value)
	return nil
}
