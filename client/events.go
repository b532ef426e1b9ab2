package client

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/mozpool/mozpool/api"
)

// EventFilter selects events of GET /api/events/; empty fields match
// everything.
type EventFilter struct {
	Kind, Device, Request, ImagingServer, State []string
	// Once asks for the stored events only: the stream ends after them.
	Once bool
}

func (f EventFilter) values() url.Values {
	q := url.Values{}
	add := func(k string, vs []string) {
		if len(vs) > 0 {
			q.Set(k, strings.Join(vs, ","))
		}
	}
	add("kind", f.Kind)
	add("device", f.Device)
	add("request", f.Request)
	add("imaging_server", f.ImagingServer)
	add("state", f.State)
	if f.Once {
		q.Set("once", "")
	}
	return q
}

// Events reads the node's event stream, calling fn for each event, until
// ctx ends, fn returns an error, or the stream ends (the node stops or the
// reader fell behind: resume with the last event's ID). lastID, when not
// "", resumes after that event (it is sent as Last-Event-ID). It returns
// the ID of the last event read.
func (c *Client) Events(ctx context.Context, f EventFilter, lastID string, fn func(api.Event) error) (string, error) {
	u := c.base + "/api/events/"
	if q := f.values(); len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return lastID, err
	}
	req.Header.Set("Accept", "text/event-stream")
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	if c.token != "" {
		req.Header.Set(api.HeaderToken, c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return lastID, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
		return lastID, errorFrom(resp.StatusCode, b)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var id, data string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if data != "" {
				var e api.Event
				if err := json.Unmarshal([]byte(data), &e); err != nil {
					return lastID, fmt.Errorf("event %s: %w", id, err)
				}
				if err := fn(e); err != nil {
					return lastID, err
				}
				if id != "" {
					lastID = id
				}
			}
			id, data = "", ""
		case strings.HasPrefix(line, "id:"):
			id = strings.TrimSpace(strings.TrimPrefix(line, "id:"))
		case strings.HasPrefix(line, "data:"):
			data += strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " ")
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		return lastID, err
	}
	return lastID, ctx.Err()
}
