package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"time"

	"github.com/pin/tftp/v3"

	"github.com/mozpool/mozpool/lifeguard"
)

var (
	// errBadBootConfig ends a b2g imaging whose bootconfig/ is not a JSON
	// object with a b2gbase key; the board reboots, as Mozpool's fake did.
	errBadBootConfig = errors.New("bootconfig has no b2gbase")
	// errNoServer is recorded for an event that could not be posted
	// because the board's imaging server is not known.
	errNoServer = errors.New("imaging server not known")
)

// maxPXEFile bounds a PXE file read over TFTP.
const maxPXEFile = 64 << 10

// secondStageRE finds the second-stage script in a PXE file's kernel
// command line: Mozpool's fake device used the same rule.
var secondStageRE = regexp.MustCompile(`mobile-imaging-url=\S*/([\w-]+)\.sh`)

// secondStage returns the second stage a PXE file names, or "" for none
// (which boots the SD card).
func secondStage(pxeFile string) string {
	m := secondStageRE.FindStringSubmatch(pxeFile)
	if m == nil {
		return ""
	}
	return m[1]
}

// pxeFileName is the board's pxelinux config path in the TFTP root.
func (b *board) pxeFileName() string {
	m := b.mac
	return fmt.Sprintf("pxelinux.cfg/01-%s-%s-%s-%s-%s-%s", m[0:2], m[2:4], m[4:6], m[6:8], m[8:10], m[10:12])
}

// fetchPXE reads the board's PXE file from its imaging server's TFTP
// server, as u-boot's "pxe get" does. It returns "" when there is none:
// no server known, no file, or no answer in time.
//
// pin/tftp's client always sends from the wildcard address (it has no
// option for a local address), so unlike the board's HTTP requests its
// TFTP requests do not come from the board's own IP.
func (b *board) fetchPXE(ctx context.Context) string {
	srv, ok := b.lab.boardServer(b)
	if !ok || srv.TFTP == "" {
		b.logger.Debug("no TFTP server known; booting the SD card", "imaging_server", b.server)
		return ""
	}
	name := b.pxeFileName()
	if b.lab.TFTPDown(b.server) {
		// Nobody answers: the boot loader's requests time out, as
		// TFTPRetries of TFTPTimeout each.
		if sleep(ctx, b.lab.cfg.TFTPTimeout*time.Duration(b.lab.cfg.TFTPRetries)) != nil {
			return ""
		}
		b.logger.Debug("TFTP does not answer; booting the SD card", "tftp", srv.TFTP, "file", name)
		return ""
	}
	type result struct {
		data []byte
		err  error
	}
	ch := make(chan result, 1)
	b.lab.wg.Add(1) // the board's own goroutine holds the count above zero
	// Exits when the transfer ends: pin/tftp bounds every packet by
	// TFTPTimeout × TFTPRetries. The buffered channel lets it finish after
	// the board has given up (power off); Shutdown waits for it.
	go func() {
		defer b.lab.wg.Done()
		data, err := b.receive(srv.TFTP, name)
		ch <- result{data, err}
	}()
	select {
	case <-ctx.Done():
		return ""
	case r := <-ch:
		if r.err != nil {
			b.logger.Debug("no PXE file; booting the SD card", "tftp", srv.TFTP, "file", name, "error", r.err)
			return ""
		}
		b.mu.Lock()
		b.tftpFetches++
		b.mu.Unlock()
		b.logger.Debug("fetched PXE file", "tftp", srv.TFTP, "file", name, "bytes", len(r.data))
		return string(r.data)
	}
}

// receive reads one file over TFTP.
func (b *board) receive(addr, name string) ([]byte, error) {
	c, err := tftp.NewClient(addr)
	if err != nil {
		return nil, err
	}
	c.SetTimeout(b.lab.cfg.TFTPTimeout)
	c.SetRetries(b.lab.cfg.TFTPRetries)
	wt, err := c.Receive(name, "octet")
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if _, err := wt.WriteTo(&limitedWriter{w: &buf, n: maxPXEFile}); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// limitedWriter fails writes past n bytes.
type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if len(p) > l.n {
		return 0, fmt.Errorf("PXE file larger than %d bytes", maxPXEFile)
	}
	l.n -= len(p)
	return l.w.Write(p)
}

// EventPost is one event a board sent to its imaging server.
type EventPost struct {
	Event string    `json:"event"`
	At    time.Time `json:"at"`
	// Status is the HTTP status of the answer, 0 if there was none.
	Status int `json:"status"`
	// Error says why there was no answer or why it was not a 200.
	Error string `json:"error,omitempty"`
}

// post sends an event to the board's imaging server, as the live image's
// scripts do (GET /api/device/<name>/event/<event>/), and records it. A
// failed post is logged and recorded; it does not stop the second stage.
func (b *board) post(ctx context.Context, event lifeguard.Event) {
	ep := EventPost{Event: string(event), At: time.Now()}
	status, _, err := b.get(ctx, "/api/device/"+url.PathEscape(b.name)+"/event/"+url.PathEscape(string(event))+"/")
	ep.Status = status
	switch {
	case err != nil:
		ep.Error = err.Error()
	case status != http.StatusOK:
		ep.Error = http.StatusText(status)
	}
	if ep.Error != "" && ctx.Err() == nil {
		b.logger.Warn("event not accepted", "event", event, "status", status, "error", ep.Error)
	} else {
		b.logger.Debug("event", "event", event, "status", status)
	}
	if ctx.Err() != nil {
		return // powered off mid-post: the board never saw an answer
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.events = append(b.events, ep)
	if n := len(b.events) - b.lab.cfg.EventHistory; n > 0 {
		b.events = append(b.events[:0:0], b.events[n:]...)
	}
}

// checkBootConfig reads the board's boot config, as the b2g second stage
// does, checks that it is a JSON object with b2gbase and returns b2gbase
// (what the stage would download).
func (b *board) checkBootConfig(ctx context.Context) (string, error) {
	status, body, err := b.get(ctx, "/api/device/"+url.PathEscape(b.name)+"/bootconfig/")
	switch {
	case err != nil:
		return "", fmt.Errorf("%w: %v", errBadBootConfig, err)
	case status != http.StatusOK:
		return "", fmt.Errorf("%w: status %d", errBadBootConfig, status)
	}
	var bc map[string]any
	if err := json.Unmarshal(body, &bc); err != nil {
		return "", fmt.Errorf("%w: %v", errBadBootConfig, err)
	}
	base, ok := bc["b2gbase"]
	if !ok {
		return "", errBadBootConfig
	}
	return fmt.Sprint(base), nil
}

// get sends a GET to the board's imaging server and returns the status
// and (up to 1 MiB of) the body.
func (b *board) get(ctx context.Context, path string) (int, []byte, error) {
	srv, ok := b.lab.boardServer(b)
	if !ok {
		return 0, nil, fmt.Errorf("%w: %q", errNoServer, b.server)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.HTTP+path, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := b.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, body, err
}
