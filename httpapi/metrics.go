package httpapi

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"
)

// RequestObserver records one answered request: its method, the route
// pattern it matched ("unmatched" when none did), its status and how long
// it took (metrics.Metrics.ObserveHTTP).
type RequestObserver func(method, route string, code int, d time.Duration)

// InstrumentedHandler is Handler with every request reported to observe.
// Requests are labelled by the pattern they were routed by, e.g.
// "/api/device/:id/state/", never by their path, so the label set stays
// bounded whatever the clients send.
func (s *Server) InstrumentedHandler(observe RequestObserver) http.Handler {
	next := s.Handler()
	// A router of our own to look patterns up in (httprouter v1.3.0 does
	// not tell a handler the pattern it matched).
	router, _ := s.routes().(*httprouter.Router)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		observe(methodLabel(r.Method), routePattern(router, r.Method, r.URL.Path), rec.status, time.Since(start))
	})
}

func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
		return m
	}
	return "other"
}

// routePattern returns the pattern of router's route for method and path,
// or "unmatched". It rebuilds the pattern from the path and the matched
// parameters: each parameter's value replaces the path segment that held
// it, and a candidate counts only if the router routes it back with the
// same parameters (httprouter allows no static segment beside a parameter
// at one position, so exactly one does).
func routePattern(router *httprouter.Router, method, path string) string {
	if router == nil {
		return "all"
	}
	h, ps, _ := router.Lookup(method, path)
	if h == nil {
		return "unmatched"
	}
	if len(ps) == 0 {
		return path
	}
	prefix, tail := path, ""
	last := ps[len(ps)-1]
	if strings.HasPrefix(last.Value, "/") { // a catch-all
		if !strings.HasSuffix(path, last.Value) {
			return "unmatched"
		}
		prefix, tail = strings.TrimSuffix(path, last.Value), "/*"+last.Key
		ps = ps[:len(ps)-1]
	}
	segs := strings.Split(prefix, "/")
	var try func(i, from int) string
	try = func(i, from int) string {
		if i == len(ps) {
			pattern := strings.Join(segs, "/") + tail
			if checkPattern(router, method, pattern) {
				return pattern
			}
			return ""
		}
		for j := from; j < len(segs); j++ {
			if segs[j] != ps[i].Value {
				continue
			}
			segs[j] = ":" + ps[i].Key
			if p := try(i+1, j+1); p != "" {
				return p
			}
			segs[j] = ps[i].Value
		}
		return ""
	}
	if p := try(0, 0); p != "" {
		return p
	}
	return "unmatched"
}

// checkPattern reports whether router routes pattern, with each parameter
// replaced by a distinct sentinel, back to those parameters.
func checkPattern(router *httprouter.Router, method, pattern string) bool {
	segs := strings.Split(pattern, "/")
	var want []httprouter.Param
	for i, s := range segs {
		switch {
		case strings.HasPrefix(s, ":"):
			v := "\x00" + strconv.Itoa(i)
			want = append(want, httprouter.Param{Key: s[1:], Value: v})
			segs[i] = v
		case strings.HasPrefix(s, "*"):
			v := "/\x00" + strconv.Itoa(i)
			want = append(want, httprouter.Param{Key: s[1:], Value: v})
			segs[i] = v[1:]
		}
	}
	h, got, _ := router.Lookup(method, strings.Join(segs, "/"))
	if h == nil || len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i] != want[i] {
			return false
		}
	}
	return true
}
