package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/mozpool/mozpool/api"
	"github.com/mozpool/mozpool/client"
)

// followPoll is how often --follow polls a log for new lines, and
// followLimit how many of the newest lines each poll reads.
const (
	followPoll  = time.Second
	followLimit = 1000
)

// baseContext is the context commands run under until Ctrl-C; tests
// replace it to stop a --follow.
var baseContext = context.Background

// interrupted reports whether err only says the user stopped a --follow.
func interrupted(ctx context.Context, err error) bool {
	return ctx.Err() != nil && (err == nil || errors.Is(err, context.Canceled) || errors.Is(err, ctx.Err()))
}

func runDevicePlease(ctx context.Context, e *env, args []string) error {
	fs := e.commandFlags()
	image := fs.String("image", "", "the image to install (please_image)")
	bootConfig := fs.String("boot-config", "", "the boot config, a JSON object (please_image)")
	pos, err := e.parse(fs, args, "NAME", "EVENT")
	if err != nil {
		return err
	}
	name, event := pos[0], pos[1]
	if !strings.HasPrefix(event, "please_") {
		event = "please_" + event
	}
	body := map[string]any{}
	if *image != "" {
		body["image"] = *image
	}
	if *bootConfig != "" {
		var v map[string]any
		if err := json.Unmarshal([]byte(*bootConfig), &v); err != nil {
			return usagef("--boot-config must be a JSON object: %v", err)
		}
		body["boot_config"] = *bootConfig
	} else if *image != "" {
		body["boot_config"] = "{}"
	}
	if event == "please_image" && *image == "" {
		return usagef("please_image needs --image")
	}
	if err := e.client().DeviceEvent(ctx, name, event, body); err != nil {
		return fmt.Errorf("device %s: %s: %w", name, event, err)
	}
	if e.json {
		return e.printJSON(map[string]string{"device": name, "event": event})
	}
	fmt.Fprintf(e.stdout, "sent %s to %s\n", event, name)
	return nil
}

func runDeviceState(ctx context.Context, e *env, args []string) error {
	fs := e.commandFlags()
	from := fs.String("from", "", "the state the device must be in (required)")
	to := fs.String("to", "", "the state to move it to (required)")
	pos, err := e.parse(fs, args, "NAME")
	if err != nil {
		return err
	}
	if *from == "" || *to == "" {
		return usagef("--from and --to are required")
	}
	if err := e.client().ForceState(ctx, pos[0], *from, *to); err != nil {
		return fmt.Errorf("device %s: %w", pos[0], err)
	}
	if e.json {
		return e.printJSON(map[string]string{"device": pos[0], "from": *from, "to": *to})
	}
	fmt.Fprintf(e.stdout, "moved %s from %s to %s\n", pos[0], *from, *to)
	return nil
}

// deviceOp is a hardware operation command on one device.
func deviceOp(verb string, op func(*client.Client, context.Context, string) error) func(context.Context, *env, []string) error {
	return func(ctx context.Context, e *env, args []string) error {
		pos, err := e.parse(e.commandFlags(), args, "NAME")
		if err != nil {
			return err
		}
		if err := op(e.client(), ctx, pos[0]); err != nil {
			return fmt.Errorf("%s %s: %w", verb, pos[0], err)
		}
		if e.json {
			return e.printJSON(map[string]any{"device": pos[0], "started": verb})
		}
		fmt.Fprintf(e.stdout, "%s of %s started\n", verb, pos[0])
		return nil
	}
}

var (
	runDevicePowerCycle = deviceOp("power cycle", (*client.Client).PowerCycle)
	runDevicePowerOff   = deviceOp("power off", (*client.Client).PowerOff)
)

// errNoAnswer makes `device ping` exit 1 for a board that does not answer.
var errNoAnswer = errors.New("no answer")

func runDevicePing(ctx context.Context, e *env, args []string) error {
	pos, err := e.parse(e.commandFlags(), args, "NAME")
	if err != nil {
		return err
	}
	ok, err := e.client().Ping(ctx, pos[0])
	if err != nil {
		return fmt.Errorf("ping %s: %w", pos[0], err)
	}
	if e.json {
		if err := e.printJSON(map[string]any{"device": pos[0], "success": ok}); err != nil {
			return err
		}
	} else if ok {
		fmt.Fprintf(e.stdout, "%s answers\n", pos[0])
	}
	if !ok {
		return fmt.Errorf("ping %s: %w", pos[0], errNoAnswer)
	}
	return nil
}

// followLog prints a log (fetch returns it oldest first), then with follow
// polls it and prints the new lines until ctx ends or done reports true.
func followLog(ctx context.Context, e *env, lines int, follow bool, fetch func(ctx context.Context, limit int) ([]api.LogEntry, error),
	done func(context.Context) (bool, error)) error {
	var last int64 = -1
	print := func(log []api.LogEntry) error {
		for _, l := range log {
			if l.ID <= last {
				continue
			}
			last = l.ID
			if e.json {
				b, err := json.Marshal(l)
				if err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "%s\n", b)
			} else {
				fmt.Fprintf(e.stdout, "%s  %-12s  %s\n", l.Timestamp, l.Source, l.Message)
			}
		}
		return nil
	}
	log, err := fetch(ctx, lines)
	if err != nil {
		return err
	}
	if !follow && e.json {
		return e.printJSON(lastLines(log, lines))
	}
	if err := print(lastLines(log, lines)); err != nil || !follow {
		return err
	}
	for _, l := range log {
		last = max(last, l.ID)
	}
	t := time.NewTicker(followPoll)
	defer t.Stop()
	for {
		finished := false
		if done != nil {
			if finished, err = done(ctx); err != nil {
				if interrupted(ctx, err) {
					return nil
				}
				return err
			}
		}
		log, err := fetch(ctx, followLimit)
		if err != nil {
			if interrupted(ctx, err) {
				return nil
			}
			return err
		}
		if err := print(log); err != nil {
			return err
		}
		if finished {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func runDeviceLog(ctx context.Context, e *env, args []string) error {
	fs := e.commandFlags()
	lines := fs.Int("lines", defaultLogLines, "how many of the newest log `lines` to show first")
	follow := fs.Bool("follow", false, "keep printing new lines until interrupted")
	pos, err := e.parse(fs, args, "NAME")
	if err != nil {
		return err
	}
	if *lines < 0 {
		return usagef("--lines must not be negative")
	}
	c := e.client()
	fetch := func(ctx context.Context, limit int) ([]api.LogEntry, error) {
		log, err := c.DeviceLog(ctx, pos[0], limit)
		if err != nil {
			return nil, fmt.Errorf("device %s: %w", pos[0], err)
		}
		return log, nil
	}
	return followLog(ctx, e, *lines, *follow, fetch, nil)
}

// requestFinished reports whether a request is in a final state: closed
// or failed (it logs nothing more of its own).
func requestFinished(state string) bool {
	return state == "closed" || state == "expired" || strings.HasPrefix(state, "failed_")
}

func runRequestLog(ctx context.Context, e *env, args []string) error {
	fs := e.commandFlags()
	lines := fs.Int("lines", defaultLogLines, "how many of the newest log `lines` to show first")
	follow := fs.Bool("follow", false, "keep printing new lines until the request is closed or failed, or until interrupted")
	pos, err := e.parse(fs, args, "ID")
	if err != nil {
		return err
	}
	id, err := parseRequestID(pos[0])
	if err != nil {
		return err
	}
	if *lines < 0 {
		return usagef("--lines must not be negative")
	}
	c := e.client()
	fetch := func(ctx context.Context, _ int) ([]api.LogEntry, error) {
		log, err := c.RequestLog(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("request %d: %w", id, err)
		}
		return log, nil
	}
	done := func(ctx context.Context) (bool, error) {
		st, err := c.RequestStatus(ctx, id)
		if err != nil {
			return false, fmt.Errorf("request %d: %w", id, err)
		}
		return requestFinished(st.State), nil
	}
	return followLog(ctx, e, *lines, *follow, fetch, done)
}

// listFlag is a comma-separated list flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}

func runEvents(ctx context.Context, e *env, args []string) error {
	fs := e.commandFlags()
	var f client.EventFilter
	fs.Var((*listFlag)(&f.Kind), "kind", "only events of these kinds (device, request; comma-separated)")
	fs.Var((*listFlag)(&f.Device), "device", "only events of these devices (or of requests holding them)")
	fs.Var((*listFlag)(&f.Request), "request", "only events of these requests (or of devices they hold)")
	fs.Var((*listFlag)(&f.ImagingServer), "imaging-server", "only events of these imaging servers")
	fs.Var((*listFlag)(&f.State), "state", "only events entering these states")
	since := fs.String("since", "", "start after this log `index` or event id (default: the oldest event kept; with --follow, now)")
	follow := fs.Bool("follow", false, "keep printing events as they happen, reconnecting, until interrupted")
	if _, err := e.parse(fs, args); err != nil {
		return err
	}
	last := ""
	if *since != "" {
		if _, err := strconv.ParseUint(strings.SplitN(*since, "-", 2)[0], 10, 64); err != nil {
			return usagef("--since must be a log index or an event id (INDEX-SEQ)")
		}
		last = *since
	}
	f.Once = !*follow
	if !*follow && last == "" {
		last = "0"
	}
	c := e.client()
	var t *table
	if !e.json {
		t = e.table("ID", "AT", "KIND", "NAME", "STATE", "IMAGING SERVER", "DEVICE/REQUEST")
	}
	print := func(ev api.Event) error {
		if e.json {
			b, err := json.Marshal(ev)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(e.stdout, "%s\n", b)
			return err
		}
		other := ev.Device
		if ev.Kind == "device" {
			other = requestID(&ev.Request)
		}
		t.row(ev.ID(), ev.At, ev.Kind, ev.Name, ev.State, orDash(ev.ImagingServer), orDash(other))
		if *follow {
			return t.flush()
		}
		return nil
	}
	wait := 250 * time.Millisecond
	for {
		var err error
		got := last
		last, err = c.Events(ctx, f, last, print)
		if !*follow {
			if t != nil {
				if ferr := t.flush(); err == nil {
					err = ferr
				}
			}
			return err
		}
		if interrupted(ctx, err) {
			return nil
		}
		// The stream ended (the node stopped, or this reader fell
		// behind): resume after the last event printed.
		if err != nil {
			fmt.Fprintf(e.stderr, "mozpoolctl: events: %v; reconnecting\n", err)
		}
		if last != got {
			wait = 250 * time.Millisecond
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		wait = min(2*wait, 10*time.Second)
	}
}

func runRaftListPeers(ctx context.Context, e *env, args []string) error {
	if _, err := e.parse(e.commandFlags(), args); err != nil {
		return err
	}
	st, err := e.client().ClusterStatus(ctx)
	if err != nil {
		return err
	}
	if e.json {
		return e.printJSON(st.Servers)
	}
	t := e.table("NODE", "ID", "ADDRESS", "STATE", "VOTER", "HEALTHY")
	for _, s := range st.Servers {
		state := "follower"
		if s.Leader {
			state = "leader"
		}
		t.row(orDash(s.Name), s.ID, s.RaftAddr, state, yesNo(s.Suffrage == "voter"), yesNo(s.Healthy))
	}
	return t.flush()
}

func runRaftRemovePeer(ctx context.Context, e *env, args []string) error {
	fs := e.commandFlags()
	id := fs.String("id", "", "the node id to remove (or give it as the argument)")
	pos, err := e.parse(fs, args)
	if err != nil {
		if _, ok := err.(*usageError); !ok {
			return err
		}
		if pos, err = e.parse(e.commandFlags(), args, "ID"); err != nil {
			return err
		}
		return runRemove(ctx, e, pos)
	}
	if *id == "" {
		return usagef("missing ID (or --id)")
	}
	return runRemove(ctx, e, []string{*id})
}

func runRaftTransferLeader(ctx context.Context, e *env, args []string) error {
	fs := e.commandFlags()
	id := fs.String("id", "", "the node id to hand leadership to (default: the most up-to-date voter)")
	if _, err := e.parse(fs, args); err != nil {
		return err
	}
	c := e.client()
	before, err := c.ClusterStatus(ctx)
	if err != nil {
		return err
	}
	if err := c.TransferLeader(ctx, *id); err != nil {
		return fmt.Errorf("transfer leadership: %w", err)
	}
	from := ""
	if before.Leader != nil {
		from = before.Leader.ID
	}
	if e.json {
		return e.printJSON(map[string]string{"from": from, "to": *id})
	}
	if *id == "" {
		fmt.Fprintf(e.stdout, "leadership transferred from %s\n", orDash(from))
	} else {
		fmt.Fprintf(e.stdout, "leadership transferred from %s to %s\n", orDash(from), *id)
	}
	return nil
}
