package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/mozpool/mozpool/api"
)

func runImageAdd(ctx context.Context, e *env, args []string) error {
	fs := e.commandFlags()
	keys := fs.String("boot-config-keys", "", "comma-separated boot config `keys` a request must give")
	canReuse := fs.Bool("can-reuse", false, "a device with this image can be reused without reimaging")
	hidden := fs.Bool("hidden", false, "leave the image out of the image list (utility images)")
	sut := fs.Bool("has-sut-agent", false, "the image runs a SUT agent")
	pos, err := e.parse(fs, args, "NAME")
	if err != nil {
		return err
	}
	spec := api.ImageSpec{Name: pos[0], BootConfigKeys: splitList(*keys), CanReuse: *canReuse, Hidden: *hidden, HasSUTAgent: *sut}
	img, err := e.client().UpsertImage(ctx, spec)
	if err != nil {
		return fmt.Errorf("add image %s: %w", spec.Name, err)
	}
	if e.json {
		return e.printJSON(img)
	}
	fmt.Fprintf(e.stdout, "saved image %s (id %d)\n", img.Name, img.ID)
	return nil
}

func runImageList(ctx context.Context, e *env, args []string) error {
	fs := e.commandFlags()
	all := fs.Bool("all", false, "include hidden images")
	if _, err := e.parse(fs, args); err != nil {
		return err
	}
	imgs, err := e.client().Images(ctx, *all)
	if err != nil {
		return err
	}
	if e.json {
		return e.printJSON(imgs)
	}
	t := e.table("ID", "NAME", "BOOT CONFIG KEYS", "CAN REUSE", "HIDDEN", "SUT AGENT")
	for _, img := range imgs {
		t.row(img.ID, img.Name, orDash(strings.Join(img.BootConfigKeys, ",")), yesNo(img.CanReuse), yesNo(img.Hidden), yesNo(img.HasSUTAgent))
	}
	return t.flush()
}

// splitList splits "a, b,,c" into [a b c]; "" gives an empty list.
func splitList(s string) []string {
	out := []string{}
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
