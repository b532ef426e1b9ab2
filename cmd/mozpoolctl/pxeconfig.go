package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/mozpool/mozpool/api"
)

// contentsFlags are the two ways of giving a PXE config's contents.
type contentsFlags struct {
	file, text *string
}

func addContentsFlags(fs *flag.FlagSet) contentsFlags {
	return contentsFlags{
		file: fs.String("contents-file", "", "read the contents from `file`"),
		text: fs.String("contents", "", "the contents `text`"),
	}
}

// get returns the contents and whether any was given; giving both is a
// usage error.
func (c contentsFlags) get(fs *flag.FlagSet) (string, bool, error) {
	set := flagsSet(fs)
	switch {
	case set["contents-file"] && set["contents"]:
		return "", false, usagef("give --contents-file or --contents, not both")
	case set["contents-file"]:
		b, err := os.ReadFile(*c.file)
		if err != nil {
			return "", false, fmt.Errorf("read contents: %w", err)
		}
		return string(b), true, nil
	case set["contents"]:
		return *c.text, true, nil
	}
	return "", false, nil
}

// flagsSet returns the names of the flags given on the command line.
func flagsSet(fs *flag.FlagSet) map[string]bool {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set
}

func runPXEConfigAdd(ctx context.Context, e *env, args []string) error {
	fs := e.commandFlags()
	contents := addContentsFlags(fs)
	desc := fs.String("description", "", "`description`")
	inactive := fs.Bool("inactive", false, "add the config inactive")
	pos, err := e.parse(fs, args, "NAME")
	if err != nil {
		return err
	}
	text, ok, err := contents.get(fs)
	if err != nil {
		return err
	}
	if !ok {
		return usagef("missing --contents-file or --contents")
	}
	pc, err := e.client().AddPXEConfig(ctx, api.PXEConfig{
		Name: pos[0], Description: *desc, Contents: text, Active: !*inactive,
	})
	if err != nil {
		return fmt.Errorf("add pxe config %s: %w", pos[0], err)
	}
	if e.json {
		return e.printJSON(pc)
	}
	fmt.Fprintf(e.stdout, "added pxe config %s\n", pc.Name)
	return nil
}

func runPXEConfigModify(ctx context.Context, e *env, args []string) error {
	fs := e.commandFlags()
	contents := addContentsFlags(fs)
	desc := fs.String("description", "", "new `description`")
	active := fs.Bool("active", false, "make the config active")
	inactive := fs.Bool("inactive", false, "make the config inactive")
	pos, err := e.parse(fs, args, "NAME")
	if err != nil {
		return err
	}
	var u api.PXEConfigUpdate
	text, ok, err := contents.get(fs)
	if err != nil {
		return err
	}
	if ok {
		u.Contents = &text
	}
	set := flagsSet(fs)
	if set["description"] {
		u.Description = desc
	}
	switch {
	case *active && *inactive:
		return usagef("give --active or --inactive, not both")
	case *active:
		u.Active = active
	case *inactive:
		f := false
		u.Active = &f
	}
	if u == (api.PXEConfigUpdate{}) {
		return usagef("nothing to modify")
	}
	pc, err := e.client().UpdatePXEConfig(ctx, pos[0], u)
	if err != nil {
		return fmt.Errorf("modify pxe config %s: %w", pos[0], err)
	}
	if e.json {
		return e.printJSON(pc)
	}
	fmt.Fprintf(e.stdout, "modified pxe config %s\n", pc.Name)
	return nil
}

func runPXEConfigShow(ctx context.Context, e *env, args []string) error {
	pos, err := e.parse(e.commandFlags(), args, "NAME")
	if err != nil {
		return err
	}
	pc, err := e.client().PXEConfig(ctx, pos[0])
	if err != nil {
		return fmt.Errorf("pxe config %s: %w", pos[0], err)
	}
	if e.json {
		return e.printJSON(pc)
	}
	fmt.Fprintf(e.stdout, "name:        %s\ndescription: %s\nactive:      %s\ncontents:\n", pc.Name, pc.Description, yesNo(pc.Active))
	fmt.Fprint(e.stdout, pc.Contents)
	if !strings.HasSuffix(pc.Contents, "\n") {
		fmt.Fprintln(e.stdout)
	}
	return nil
}

func runPXEConfigList(ctx context.Context, e *env, args []string) error {
	fs := e.commandFlags()
	activeOnly := fs.Bool("active-only", false, "list only active configs")
	if _, err := e.parse(fs, args); err != nil {
		return err
	}
	names, err := e.client().PXEConfigs(ctx, *activeOnly)
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

func runPXEConfigMap(ctx context.Context, e *env, args []string) error {
	pos, err := e.parse(e.commandFlags(), args, "IMAGE", "HWTYPE", "HWMODEL", "PXECONFIG")
	if err != nil {
		return err
	}
	image, hwType, hwModel, pxe := pos[0], pos[1], pos[2], pos[3]
	if err := e.client().SetImagePXEConfig(ctx, image, hwType, hwModel, pxe); err != nil {
		return fmt.Errorf("map %s on %s/%s: %w", image, hwType, hwModel, err)
	}
	if e.json {
		return e.printJSON(map[string]string{
			"image": image, "hardware_type": hwType, "hardware_model": hwModel, "pxe_config": pxe,
		})
	}
	if pxe == "" {
		fmt.Fprintf(e.stdout, "unmapped %s on %s/%s\n", image, hwType, hwModel)
	} else {
		fmt.Fprintf(e.stdout, "mapped %s on %s/%s to %s\n", image, hwType, hwModel, pxe)
	}
	return nil
}
