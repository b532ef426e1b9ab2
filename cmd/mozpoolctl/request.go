package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/user"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mozpool/mozpool/api"
	"github.com/mozpool/mozpool/client"
	"github.com/mozpool/mozpool/requests"
)

// Defaults of the request command.
const (
	defaultRequestDuration = 3600 // seconds
	defaultWaitInterval    = time.Second
	defaultLogLines        = 10
	// longPollWait is how long one blocking status call waits on the
	// server while the request is queued.
	longPollWait = 30 * time.Second
	// detailsConcurrency bounds the details lookups of request list.
	detailsConcurrency = 8
)

// bootConfigFlag collects repeated --boot-config KEY=VALUE flags.
type bootConfigFlag map[string]any

func (f bootConfigFlag) String() string {
	keys := make([]string, 0, len(f))
	for k := range f {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%v", k, f[k]))
	}
	return strings.Join(parts, ",")
}

func (f bootConfigFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q is not KEY=VALUE", s)
	}
	f[k] = v
	return nil
}

// defaultAssignee is $USER@hostname, as people are named in the request
// list.
func defaultAssignee() string {
	name := os.Getenv("USER")
	if name == "" {
		if u, err := user.Current(); err == nil {
			name = u.Username
		}
	}
	host, _ := os.Hostname()
	switch {
	case name == "":
		return host
	case host == "":
		return name
	}
	return name + "@" + host
}

// parseRequestID parses a request id argument.
func parseRequestID(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, usagef("request id %q is not a positive integer", s)
	}
	return id, nil
}

// runRequest creates a request and, with --wait, follows it until it is
// ready (exit 0) or ends (exit 1):
//
//	request any|NAME --image I [--env E] [--duration S] [--boot-config K=V ...] [--assignee A] [--wait]
func runRequest(ctx context.Context, e *env, args []string) error {
	fs := e.commandFlags()
	image := fs.String("image", "", "`image` to install (required)")
	envName := fs.String("env", "any", "only devices of this `environment`")
	duration := fs.Int("duration", defaultRequestDuration, "request lifetime in `seconds`")
	bootConfig := bootConfigFlag{}
	fs.Var(bootConfig, "boot-config", "boot config `KEY=VALUE` the image needs (repeatable; b2g needs b2gbase)")
	assignee := fs.String("assignee", defaultAssignee(), "who holds the device")
	wait := fs.Bool("wait", false, "follow the request until it is ready (exit 0) or fails (exit 1)")
	priority := fs.Int("priority", 0, "queue `priority` (higher first, -100 to 100)")
	group := fs.String("group", "", "fair-share `group` (default: the assignee)")
	hwType := fs.String("hardware-type", "", "only boards of this hardware `type`")
	hwModel := fs.String("hardware-model", "", "only boards of this hardware `model`")
	tags := bootConfigFlag{}
	fs.Var(tags, "tag", "only boards with tag `KEY=VALUE` (repeatable)")
	maxWait := fs.Int("max-wait", 0, "how long the request may wait for a board, in `seconds` (default: the server's)")
	noWait := fs.Bool("no-wait", false, "fail at once unless a suitable board is free")
	interval := fs.Duration("interval", defaultWaitInterval, "how often --wait polls")
	pos, err := e.parse(fs, args, "DEVICE")
	if err != nil {
		return err
	}
	switch {
	case *image == "":
		return usagef("missing --image")
	case *duration < 0:
		return usagef("--duration must not be negative")
	case *interval <= 0:
		return usagef("--interval must be positive")
	case *maxWait < 0:
		return usagef("--max-wait must not be negative")
	}
	spec := client.RequestSpec{
		Assignee: *assignee, Duration: time.Duration(*duration) * time.Second,
		Image: *image, Environment: *envName, BootConfig: bootConfig,
		Group: *group, HardwareType: *hwType, HardwareModel: *hwModel,
		MaxWait: time.Duration(*maxWait) * time.Second, NoWait: *noWait,
	}
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "priority" {
			spec.Priority = priority
		}
	})
	if len(tags) > 0 {
		spec.Tags = map[string]string{}
		for k, v := range tags {
			spec.Tags[k] = fmt.Sprint(v)
		}
	}
	c := e.client()
	req, err := c.CreateRequest(ctx, pos[0], spec)
	if err != nil {
		return fmt.Errorf("request %s: %w", pos[0], err)
	}
	if !*wait {
		if e.json {
			return e.printJSON(req)
		}
		return e.printCreated(req)
	}
	// With --json, stdout carries only the final details; progress goes to
	// stderr.
	out := e.stdout
	if e.json {
		out = e.stderr
	} else if err := e.printCreated(req); err != nil {
		return err
	}
	return e.waitRequest(ctx, c, req.ID, *interval, newProgress(out, isTerminal(out)))
}

// printCreated prints a new request's id, device and URL.
func (e *env) printCreated(req api.Request) error {
	t := e.table("request:", strconv.FormatInt(req.ID, 10))
	t.row("device:", orDash(req.AssignedDevice))
	t.row("url:", req.URL)
	return t.flush()
}

// isTerminal reports whether w is a character device (a terminal), where
// the progress line is rewritten in place.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// progress shows where a request is: on a terminal one line rewritten in
// place, elsewhere one line per change.
type progress struct {
	w      io.Writer
	tty    bool
	last   string // the last state shown, without the elapsed time
	width  int    // the width of the line on screen (tty)
	inLine bool   // a tty line is open
}

func newProgress(w io.Writer, tty bool) *progress { return &progress{w: w, tty: tty} }

// show displays the request's state, its place in the queue while it
// waits, its device and the device's state.
func (p *progress) show(id int64, st api.RequestStatus, device, devState string, elapsed time.Duration) {
	key := fmt.Sprintf("request %d: %s", id, st.State)
	if st.QueuePosition > 0 {
		key += fmt.Sprintf(", position %d of %d", st.QueuePosition, st.QueueLength)
		if st.ETA != "" {
			key += ", eta " + st.ETA
		}
	}
	if device == "" {
		key += ", no device yet"
	} else {
		key += ", device " + device
		if devState != "" {
			key += " (" + devState + ")"
		}
	}
	line := fmt.Sprintf("%s, %s", key, elapsed.Round(time.Second))
	if !p.tty {
		if key != p.last {
			fmt.Fprintln(p.w, line)
		}
		p.last = key
		return
	}
	pad := ""
	if n := p.width - len(line); n > 0 {
		pad = strings.Repeat(" ", n)
	}
	fmt.Fprintf(p.w, "\r%s%s", line, pad)
	p.width, p.last, p.inLine = len(line), key, true
}

// done ends the progress line.
func (p *progress) done() {
	if p.tty && p.inLine {
		fmt.Fprintln(p.w)
		p.inLine = false
	}
}

// finalState reports whether a request state is final: ready (success) or
// closed and the failed_* states (failure).
func finalState(state string) bool {
	switch s := requests.State(state); s {
	case requests.StateReady, requests.StateClosed, requests.StateExpired:
		return true
	default:
		return s.Failed()
	}
}

// waitRequest follows the request until it is ready (nil) or ends (an
// error after printing its last log lines). While the request waits in the
// queue it blocks on the server (a long poll) until its state or position
// changes; once it has a device it polls every interval to follow the
// device's imaging. A 503 (an election) is waited out.
func (e *env) waitRequest(ctx context.Context, c *client.Client, id int64, interval time.Duration, p *progress) error {
	start := time.Now()
	defer p.done()
	var index uint64
	queued := false
	for {
		var st api.RequestStatus
		var device, devState string
		var err error
		if queued {
			st, index, err = c.WaitRequestStatus(ctx, id, index, longPollWait)
			if err == nil && st.QueuePosition == 0 {
				st, device, devState, err = pollRequest(ctx, c, id)
			}
		} else {
			st, device, devState, err = pollRequest(ctx, c, id)
			index = c.LastIndex()
		}
		queued = err == nil && st.QueuePosition > 0
		var ce *client.Error
		switch {
		case err == nil:
			p.show(id, st, device, devState, time.Since(start))
		case errors.As(err, &ce) && ce.Status == http.StatusServiceUnavailable:
			// The cluster is electing a leader; try again.
		default:
			return fmt.Errorf("request %d: %w", id, err)
		}
		if err == nil && finalState(st.State) {
			p.done()
			if requests.State(st.State) == requests.StateReady {
				if e.json {
					req, err := c.Request(ctx, id)
					if err != nil {
						return fmt.Errorf("request %d: %w", id, err)
					}
					return e.printJSON(req)
				}
				fmt.Fprintf(e.stdout, "request %d is ready: device %s\n", id, device)
				return nil
			}
			fmt.Fprintf(e.stderr, "request %d ended in %s; its last log lines:\n", id, st.State)
			printLog(e.stderr, lastLines(st.Log, defaultLogLines))
			return fmt.Errorf("request %d ended in %s", id, st.State)
		}
		if queued {
			continue // the next call blocks on the server
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("request %d: stopped waiting: %w", id, ctx.Err())
		case <-time.After(interval):
		}
	}
}

// pollRequest reads a request's status, its device and the device's state.
func pollRequest(ctx context.Context, c *client.Client, id int64) (st api.RequestStatus, device, devState string, err error) {
	if st, err = c.RequestStatus(ctx, id); err != nil {
		return st, "", "", err
	}
	req, err := c.Request(ctx, id)
	if err != nil {
		return st, "", "", err
	}
	if req.AssignedDevice == "" {
		return st, "", "", nil
	}
	devState, err = c.DeviceState(ctx, req.AssignedDevice)
	return st, req.AssignedDevice, devState, err
}

// lastLines returns the last n entries of log.
func lastLines(log []api.LogEntry, n int) []api.LogEntry {
	if len(log) > n {
		return log[len(log)-n:]
	}
	return log
}

// printLog writes log lines as "TIMESTAMP SOURCE MESSAGE", indented.
func printLog(w io.Writer, log []api.LogEntry) {
	if len(log) == 0 {
		fmt.Fprintln(w, "  (no log lines)")
		return
	}
	for _, l := range log {
		fmt.Fprintf(w, "  %s  %-12s  %s\n", l.Timestamp, l.Source, l.Message)
	}
}

func runRequestRenew(ctx context.Context, e *env, args []string) error {
	pos, err := e.parse(e.commandFlags(), args, "ID", "SECONDS")
	if err != nil {
		return err
	}
	id, err := parseRequestID(pos[0])
	if err != nil {
		return err
	}
	secs, err := strconv.Atoi(pos[1])
	if err != nil || secs < 0 {
		return usagef("SECONDS %q is not a non-negative integer", pos[1])
	}
	c := e.client()
	if err := c.RenewRequest(ctx, id, time.Duration(secs)*time.Second); err != nil {
		return fmt.Errorf("renew request %d: %w", id, err)
	}
	req, err := c.Request(ctx, id)
	if err != nil {
		return fmt.Errorf("request %d: %w", id, err)
	}
	if e.json {
		return e.printJSON(req)
	}
	fmt.Fprintf(e.stdout, "renewed request %d: expires %s UTC\n", id, req.Expires)
	return nil
}

func runRequestReturn(ctx context.Context, e *env, args []string) error {
	pos, err := e.parse(e.commandFlags(), args, "ID")
	if err != nil {
		return err
	}
	id, err := parseRequestID(pos[0])
	if err != nil {
		return err
	}
	if err := e.client().ReturnRequest(ctx, id); err != nil {
		return fmt.Errorf("return request %d: %w", id, err)
	}
	if e.json {
		return e.printJSON(map[string]any{"id": id, "returned": true})
	}
	fmt.Fprintf(e.stdout, "returned request %d\n", id)
	return nil
}

func runRequestList(ctx context.Context, e *env, args []string) error {
	fs := e.commandFlags()
	all := fs.Bool("all", false, "include closed requests")
	if _, err := e.parse(fs, args); err != nil {
		return err
	}
	c := e.client()
	reqs, err := c.Requests(ctx, *all)
	if err != nil {
		return err
	}
	fillImages(ctx, c, reqs)
	if e.json {
		return e.printJSON(reqs)
	}
	t := e.table("ID", "STATE", "DEVICE", "DEVICE STATE", "ASSIGNEE", "IMAGE", "EXPIRES")
	for _, r := range reqs {
		t.row(r.ID, r.State, orDash(r.AssignedDevice), orDash(r.DeviceState), orDash(r.Assignee), orDash(r.Image), r.Expires)
	}
	return t.flush()
}

// fillImages looks up the image of the listed requests that lack one: the
// original's request list has no image key. A request that cannot be read
// (compacted meanwhile) keeps an empty image.
func fillImages(ctx context.Context, c *client.Client, reqs []api.RequestSummary) {
	sem := make(chan struct{}, detailsConcurrency)
	var wg sync.WaitGroup
	for i := range reqs {
		if reqs[i].Image != "" {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		// Exits after one lookup, bounded by the client's timeout.
		go func(r *api.RequestSummary) {
			defer func() { <-sem; wg.Done() }()
			if d, err := c.Request(ctx, r.ID); err == nil {
				r.Image = d.Image
			}
		}(&reqs[i])
	}
	wg.Wait()
}

func runRequestShow(ctx context.Context, e *env, args []string) error {
	fs := e.commandFlags()
	lines := fs.Int("lines", defaultLogLines, "how many of the newest log `lines` to show")
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
	req, err := c.Request(ctx, id)
	if err != nil {
		return fmt.Errorf("request %d: %w", id, err)
	}
	st, err := c.RequestStatus(ctx, id)
	if err != nil {
		return fmt.Errorf("request %d: %w", id, err)
	}
	log := lastLines(st.Log, *lines)
	if e.json {
		return e.printJSON(struct {
			api.Request
			State string         `json:"state"`
			Log   []api.LogEntry `json:"log"`
		}{req, st.State, log})
	}
	t := e.table("id:", strconv.FormatInt(req.ID, 10))
	t.row("state:", st.State)
	t.row("requested device:", req.RequestedDevice)
	t.row("assigned device:", orDash(req.AssignedDevice))
	t.row("assignee:", orDash(req.Assignee))
	t.row("image:", req.Image)
	t.row("boot config:", orDash(req.BootConfig))
	t.row("environment:", orDash(req.Environment))
	t.row("expires:", req.Expires+" UTC")
	t.row("url:", req.URL)
	if st.QueuePosition > 0 {
		t.row("queue position:", fmt.Sprintf("%d of %d", st.QueuePosition, st.QueueLength))
		t.row("eta:", orDash(st.ETA))
	}
	if st.Reason != "" {
		t.row("reason:", st.Reason)
	}
	if err := t.flush(); err != nil {
		return err
	}
	if *lines > 0 {
		fmt.Fprintln(e.stdout, "log:")
		printLog(e.stdout, log)
	}
	return nil
}

// Interface check: bootConfigFlag is a flag.Value.
var _ flag.Value = bootConfigFlag{}
