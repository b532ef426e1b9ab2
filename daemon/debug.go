package daemon

import (
	"net/http"
	"net/http/pprof"
)

// debugHandler serves Go's profiler: /debug/pprof/ lists the profiles,
// /debug/pprof/profile?seconds=N takes a CPU profile, and so on. It is
// mounted on a listener of its own (Config.PprofAddr), never on the API:
// profiles are not behind the API's tokens.
func pprofHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
