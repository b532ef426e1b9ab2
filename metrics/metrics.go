package metrics

import (
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mozpool/mozpool/fsm"
)

// Namespace prefixes every metric name.
const Namespace = "mozpool"

// BMM operation kinds, the values of the kind label.
const (
	KindRelay = "relay"
	KindPXE   = "pxe"
	KindPing  = "ping"
	KindSUT   = "sut"
)

// Metrics is one node's instrumentation. Its methods are safe for
// concurrent use.
type Metrics struct {
	// Registry holds the node's own metrics; Gatherer adds Raft's.
	Registry *prometheus.Registry

	httpDuration    *prometheus.HistogramVec
	bmmOps          *prometheus.CounterVec
	bmmFailures     *prometheus.CounterVec
	imagingDuration *prometheus.HistogramVec
	deviceFailures  *prometheus.CounterVec

	server  string
	started time.Time

	mu      sync.Mutex
	imaging map[string]imagingStart // device -> when its imaging started
}

type imagingStart struct {
	at    time.Time
	image string
}

// New returns the metrics of the node serving as imaging server server,
// with the Go runtime and process collectors registered. The first call
// installs the process's Raft bridge, so create the node's Metrics before
// its Raft node: what Raft reports earlier (its first election) is lost.
func New(server string) *Metrics {
	raftOnce.Do(setupRaft)
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		server:   server,
		started:  time.Now(),
		imaging:  map[string]imagingStart{},
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Subsystem: "http", Name: "request_duration_seconds",
			Help:    "Time to answer an API request, by method, registered route pattern and status code.",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"method", "route", "code"}),
		bmmOps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "bmm", Name: "operations_total",
			Help: "Hardware operations this node ran, by kind (relay, pxe, ping, sut).",
		}, []string{"kind"}),
		bmmFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "bmm", Name: "operation_failures_total",
			Help: "Hardware operations this node ran that failed, by kind (relay, pxe, ping, sut).",
		}, []string{"kind"}),
		imagingDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Subsystem: "imaging", Name: "duration_seconds",
			Help:    "Time from the start of a network boot to ready, for this node's devices, by image and hardware type.",
			Buckets: []float64{1, 5, 15, 30, 60, 120, 180, 300, 450, 600, 900, 1200, 1800, 3600},
		}, []string{"image", "hardware_type"}),
		deviceFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "device", Name: "failures_total",
			Help: "Entries of this node's devices into a failed_* state, by imaging server.",
		}, []string{"imaging_server"}),
	}
	for _, kind := range []string{KindRelay, KindPXE, KindPing, KindSUT} {
		m.bmmOps.WithLabelValues(kind)
		m.bmmFailures.WithLabelValues(kind)
	}
	m.deviceFailures.WithLabelValues(server)
	m.Registry.MustRegister(m.httpDuration, m.bmmOps, m.bmmFailures, m.imagingDuration, m.deviceFailures,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Gatherer gathers the node's metrics and Raft's.
func (m *Metrics) Gatherer() prometheus.Gatherer {
	return prometheus.Gatherers{m.Registry, RaftGatherer()}
}

// Handler serves the exposition format at /metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Gatherer(), promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// ObserveHTTP records one answered API request.
func (m *Metrics) ObserveHTTP(method, route string, code int, d time.Duration) {
	m.httpDuration.WithLabelValues(method, route, statusText(code)).Observe(d.Seconds())
}

// ObserveBMM records one hardware operation of kind and whether it failed.
func (m *Metrics) ObserveBMM(kind string, err error) {
	m.bmmOps.WithLabelValues(kind).Inc()
	if err != nil {
		m.bmmFailures.WithLabelValues(kind).Inc()
	}
}

// Imaging states: a network boot starts in one of start; it ends in ready
// (observed) or in any of the others of end (dropped).
var (
	imagingStartStates = map[string]bool{"start_pxe_boot": true, "start_self_test": true, "start_maintenance": true}
	imagingDropStates  = map[string]bool{"new": true, "locked_out": true, "troubleshooting": true, "maintenance_mode": true}
)

// Notify follows the device transitions of one applied command (call it
// from fsm.Config.Notify, after the command is applied: it reads state).
// It times the imaging of this node's devices and counts their failures.
// Commands from before the node started (a log replayed at start) are
// skipped, so a restart does not count them twice.
func (m *Metrics) Notify(state *fsm.FSM, n fsm.Notification) {
	if len(n.Transitions) == 0 || n.At.Before(m.started) {
		return
	}
	devs := map[string]deviceInfo{}
	state.Read(func(s *fsm.State) {
		for _, t := range n.Transitions {
			if d, ok := s.Devices[t.Device]; ok {
				devs[t.Device] = deviceInfo{d.ImagingServer, d.NextImage, d.HardwareType}
			}
		}
	})
	m.follow(n, devs)
}

// deviceInfo is what follow needs of a device after a command.
type deviceInfo struct{ server, nextImage, hardwareType string }

func (m *Metrics) follow(n fsm.Notification, devs map[string]deviceInfo) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, t := range n.Transitions {
		d, ok := devs[t.Device]
		if !ok || d.server != m.server {
			continue
		}
		switch {
		case imagingStartStates[t.State]:
			if d.nextImage != "" {
				m.imaging[t.Device] = imagingStart{at: n.At, image: d.nextImage}
			} else {
				delete(m.imaging, t.Device)
			}
		case t.State == "ready":
			if st, ok := m.imaging[t.Device]; ok {
				delete(m.imaging, t.Device)
				m.imagingDuration.WithLabelValues(st.image, d.hardwareType).Observe(n.At.Sub(st.at).Seconds())
			}
		case strings.HasPrefix(t.State, "failed_"):
			delete(m.imaging, t.Device)
			m.deviceFailures.WithLabelValues(d.server).Inc()
		case imagingDropStates[t.State]:
			delete(m.imaging, t.Device)
		}
	}
}

func statusText(code int) string {
	if code < 100 || code > 999 {
		return "other"
	}
	return string([]byte{byte('0' + code/100), byte('0' + code/10%10), byte('0' + code%10)})
}
