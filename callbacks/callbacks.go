// Package callbacks delivers request callbacks. A request created with a
// callback_url owes a notification each time it enters ready, a failure or
// closed (fsm.Callback records, part of the replicated state). The
// Deliverer runs on the leader only (a cluster leader task): it POSTs each
// record not yet done, retrying with exponential backoff until the receiver
// answers 2xx or MaxAge has passed since the record was made, then proposes
// fsm.CmdCallbackDone. A new leader picks up the records its predecessor
// did not mark done, so a notification is delivered at least once; the
// X-Mozpool-Callback-ID header (and the body's id) lets a receiver drop
// repeats.
package callbacks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mozpool/mozpool/fsm"
)

// HeaderID carries a callback's id ("REQUEST-SEQ").
const HeaderID = "X-Mozpool-Callback-ID"

// Notification is the JSON body POSTed to a callback URL.
type Notification struct {
	// ID is "REQUEST-SEQ": the same for every delivery of one callback.
	ID        string `json:"id"`
	RequestID int64  `json:"request_id"`
	Seq       int    `json:"seq"`
	// State is the state the request entered (ready, closed, expired,
	// failed_*), At when (RFC 3339).
	State string `json:"state"`
	At    string `json:"at"`
	// Device and ImagingResult are the request's at that moment.
	Device        string `json:"device,omitempty"`
	ImagingResult string `json:"imaging_result,omitempty"`
	// RequestURL is the request's API URL on the delivering node.
	RequestURL string `json:"request_url,omitempty"`
}

// Config configures a Deliverer.
type Config struct {
	// FSM is the local replica. Required.
	FSM *fsm.FSM
	// Propose applies a command through the cluster. Required.
	Propose func(ctx context.Context, t fsm.CommandType, cmd fsm.Command) (fsm.Result, error)
	// BaseURL is this node's API URL, for Notification.RequestURL.
	BaseURL string
	// Client sends the POSTs. Default: a client with Timeout.
	Client *http.Client
	// Timeout bounds one POST. Default 10 s.
	Timeout time.Duration
	// MaxAge is how long after the request entered its state delivery is
	// attempted; then the callback is marked done, undelivered. Default 1 h.
	MaxAge time.Duration
	// MinBackoff and MaxBackoff bound the wait between attempts, which
	// doubles from MinBackoff. Defaults 1 s and 1 min.
	MinBackoff, MaxBackoff time.Duration
	// Poll is how often the state is scanned for new callbacks besides
	// the wake-ups from Notify. Default 1 s.
	Poll time.Duration
	// Logger is the parent logger. Default: null logger.
	Logger hclog.Logger
}

// Deliverer delivers callbacks while its Run runs.
type Deliverer struct {
	cfg    Config
	logger hclog.Logger
	wake   chan struct{}

	// While Run runs, Notify collects the requests commands changed in
	// dirty, and Run looks at those alone: a scan of every request at
	// every command would cost a busy leader a sixth of its CPU. Run
	// scans everything when it starts and every Poll.
	running atomic.Bool
	dirtyMu sync.Mutex
	dirty   map[int64]struct{}
}

// New returns a Deliverer.
func New(cfg Config) (*Deliverer, error) {
	if cfg.FSM == nil || cfg.Propose == nil {
		return nil, errors.New("callbacks: FSM and Propose are required")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: cfg.Timeout}
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = time.Hour
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = time.Second
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(time.Minute, cfg.MinBackoff)
	}
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	return &Deliverer{cfg: cfg, logger: cfg.Logger.Named("callbacks"), wake: make(chan struct{}, 1)}, nil
}

// Notify wakes Run when a command changed requests (call it from
// fsm.Config.Notify; it does not block).
func (d *Deliverer) Notify(n fsm.Notification) {
	if len(n.Requests) == 0 || !d.running.Load() {
		return
	}
	d.dirtyMu.Lock()
	if d.dirty == nil {
		d.dirty = map[int64]struct{}{}
	}
	for _, id := range n.Requests {
		d.dirty[id] = struct{}{}
	}
	d.dirtyMu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

type key struct {
	id  int64
	seq int
}

// Run delivers callbacks until ctx ends (the node stops leading), then
// waits for its deliveries to stop.
func (d *Deliverer) Run(ctx context.Context) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	inflight := map[key]bool{}
	t := time.NewTicker(d.cfg.Poll)
	defer t.Stop()
	d.running.Store(true)
	defer d.running.Store(false)
	full := true // a scan of every request, at the start and every Poll
	for {
		d.dirtyMu.Lock()
		dirty := d.dirty
		d.dirty = nil
		d.dirtyMu.Unlock()
		var pending []fsm.PendingCallback
		if full {
			d.cfg.FSM.Read(func(s *fsm.State) { pending = s.PendingCallbacks() })
		} else if len(dirty) > 0 {
			ids := make([]int64, 0, len(dirty))
			for id := range dirty {
				ids = append(ids, id)
			}
			d.cfg.FSM.Read(func(s *fsm.State) { pending = s.PendingCallbacksOf(ids) })
		}
		for _, p := range pending {
			k := key{p.RequestID, p.Seq}
			mu.Lock()
			busy := inflight[k]
			inflight[k] = true
			mu.Unlock()
			if busy {
				continue
			}
			wg.Add(1)
			// Exits when the callback is marked done or ctx ends.
			go func() {
				defer wg.Done()
				d.deliver(ctx, p)
				mu.Lock()
				delete(inflight, k)
				mu.Unlock()
			}()
		}
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case <-d.wake:
			full = false
		case <-t.C:
			full = true
		}
	}
}

// deliver POSTs one callback until it is acknowledged or too old, then
// marks it done.
func (d *Deliverer) deliver(ctx context.Context, p fsm.PendingCallback) {
	id := strconv.FormatInt(p.RequestID, 10) + "-" + strconv.Itoa(p.Seq)
	body, _ := json.Marshal(Notification{
		ID: id, RequestID: p.RequestID, Seq: p.Seq, State: p.State, At: p.At.UTC().Format(time.RFC3339Nano),
		Device: p.Device, ImagingResult: p.ImagingResult, RequestURL: d.requestURL(p.RequestID),
	})
	wait := d.cfg.MinBackoff
	delivered := false
	for attempt := 1; ; attempt++ {
		err := d.post(ctx, p.URL, id, body)
		if err == nil {
			delivered = true
			break
		}
		if ctx.Err() != nil {
			return
		}
		if time.Since(p.At)+wait > d.cfg.MaxAge {
			d.logger.Warn("giving up a callback", "id", id, "attempts", attempt, "error", err)
			break
		}
		d.logger.Debug("callback failed, will retry", "id", id, "attempt", attempt, "in", wait, "error", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, d.cfg.MaxBackoff)
	}
	// Mark it done; a failure here (leadership lost) leaves the record to
	// the next leader, which delivers it again.
	for wait := d.cfg.MinBackoff; ; wait = min(2*wait, d.cfg.MaxBackoff) {
		cmd := &fsm.CallbackDone{Header: fsm.Header{At: time.Now().UTC()}, ID: p.RequestID, Seq: p.Seq, Delivered: delivered}
		// Safe to skip for a node that predates callbacks (it keeps no
		// callback records), so a cluster can be upgraded one node at a
		// time.
		res, err := d.cfg.Propose(ctx, fsm.CmdCallbackDone|fsm.IgnoreUnknown, cmd)
		if err == nil {
			err = res.Error()
		}
		if err == nil {
			return
		}
		d.logger.Debug("could not mark a callback done", "id", id, "error", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

func (d *Deliverer) requestURL(id int64) string {
	if d.cfg.BaseURL == "" {
		return ""
	}
	return strings.TrimRight(d.cfg.BaseURL, "/") + "/api/request/" + strconv.FormatInt(id, 10) + "/"
}

func (d *Deliverer) post(ctx context.Context, url, id string, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(HeaderID, id)
	req.Header.Set("User-Agent", "mozpool-callbacks")
	resp, err := d.cfg.Client.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("callback answered %s", resp.Status)
	}
	return nil
}
