package watcher

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Event operations, the op label of discodns_watcher_events_total.
const (
	OpPut    = "put"
	OpDelete = "delete"
)

// Re-list reasons, the reason label of discodns_watcher_relists_total.
const (
	// ReasonInitial is the first list of a run.
	ReasonInitial = "initial"
	// reasonCompacted: the watch start revision had been compacted away.
	reasonCompacted = "compacted"
	// reasonWatchClosed: the watch ended without an error.
	reasonWatchClosed = "watch_closed"
	// ReasonReconnect: the connection to the registry was lost.
	ReasonReconnect = "reconnect"
	// ReasonPeriodic: the resync interval elapsed.
	ReasonPeriodic = "periodic"
	// ReasonError: the watch failed with an error.
	ReasonError = "error"
)

// Metrics counts what every source does. A nil *Metrics is valid and counts
// nothing.
type Metrics struct {
	events       *prometheus.CounterVec
	decodeErrors *prometheus.CounterVec
	relists      *prometheus.CounterVec
	errors       *prometheus.CounterVec

	// Consul's HTTP API, by source and endpoint.
	consulRequests      *prometheus.HistogramVec
	consulRequestErrors *prometheus.CounterVec
	consulConnections   *prometheus.GaugeVec
}

// NewMetrics creates the watcher metrics and registers them with reg, which
// may be nil. Registering twice with the same registry reuses the
// collectors already registered; any other registration error panics, as
// prometheus.MustRegister does.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "discodns_watcher_events_total",
			Help: "Registry change events applied to the table, by source and operation (put or delete).",
		}, []string{"source", "op"}),
		decodeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "discodns_watcher_decode_errors_total",
			Help: "Registry entries that did not decode and whose instance was skipped, by source.",
		}, []string{"source"}),
		relists: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "discodns_watcher_relists_total",
			Help: "Full lists of a registry, by source and what caused them (initial, compacted, watch_closed, reconnect, periodic, error). Retries of a failed list are not counted again.",
		}, []string{"source", "reason"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "discodns_watcher_errors_total",
			Help: "Registry errors (failed lists and watches, lost connections), by source.",
		}, []string{"source"}),
		consulRequests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "discodns_watcher_consul_request_duration_seconds",
			Help:    "Consul HTTP API requests by source and endpoint (catalog_services and health_state block until a change; health_service does not).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
		}, []string{"source", "endpoint"}),
		consulRequestErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "discodns_watcher_consul_request_errors_total",
			Help: "Consul HTTP API requests that failed, by source and endpoint.",
		}, []string{"source", "endpoint"}),
		consulConnections: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "discodns_watcher_consul_connections",
			Help: "Open TCP connections to the Consul agent, by source (bounded by max_connections).",
		}, []string{"source"}),
	}
	if reg != nil {
		m.events = register(reg, m.events)
		m.decodeErrors = register(reg, m.decodeErrors)
		m.relists = register(reg, m.relists)
		m.errors = register(reg, m.errors)
		m.consulRequests = register(reg, m.consulRequests)
		m.consulRequestErrors = register(reg, m.consulRequestErrors)
		m.consulConnections = register(reg, m.consulConnections)
	}
	return m
}

// register registers c with reg, or returns the equal collector that reg
// already holds.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	err := reg.Register(c)
	if err == nil {
		return c
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
	}
	panic(err)
}

// InitSource creates the source's series at zero, so they are exported
// before anything happens: the events, decode errors and registry errors
// of source, and its re-lists for each of reasons.
func (m *Metrics) InitSource(source string, reasons ...string) {
	if m == nil {
		return
	}
	m.events.WithLabelValues(source, OpPut)
	m.events.WithLabelValues(source, OpDelete)
	m.decodeErrors.WithLabelValues(source)
	m.errors.WithLabelValues(source)
	for _, r := range reasons {
		m.relists.WithLabelValues(source, r)
	}
}

// Event counts a change of source applied to the table; op is OpPut or
// OpDelete.
func (m *Metrics) Event(source, op string) {
	if m != nil {
		m.events.WithLabelValues(source, op).Inc()
	}
}

// DecodeError counts an entry of source that did not decode and was
// skipped.
func (m *Metrics) DecodeError(source string) {
	if m != nil {
		m.decodeErrors.WithLabelValues(source).Inc()
	}
}

// Relist counts a full list of source, caused by reason.
func (m *Metrics) Relist(source, reason string) {
	if m != nil {
		m.relists.WithLabelValues(source, reason).Inc()
	}
}

// RegistryError counts an error of source's registry: a failed list or
// watch, a lost connection.
func (m *Metrics) RegistryError(source string) {
	if m != nil {
		m.errors.WithLabelValues(source).Inc()
	}
}

// consulRequest records one Consul API request that started at start.
func (m *Metrics) consulRequest(source, endpoint string, start time.Time, err error) {
	if m == nil {
		return
	}
	m.consulRequests.WithLabelValues(source, endpoint).Observe(time.Since(start).Seconds())
	if err != nil {
		m.consulRequestErrors.WithLabelValues(source, endpoint).Inc()
	}
}

// consulConnectionsGauge is the open-connections gauge of source, or nil.
func (m *Metrics) consulConnectionsGauge(source string) prometheus.Gauge {
	if m == nil {
		return nil
	}
	return m.consulConnections.WithLabelValues(source)
}
