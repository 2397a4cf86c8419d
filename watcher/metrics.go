package watcher

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Event operations, the op label of discodns_watcher_events_total.
const (
	OpPut    = "put"
	OpDelete = "delete"
)

// Re-list reasons shared by several registries, the reason label of
// discodns_watcher_relists_total; a registry package may add its own.
const (
	// ReasonInitial is the first list of a run.
	ReasonInitial = "initial"
	// ReasonReconnect: the connection to the registry was lost.
	ReasonReconnect = "reconnect"
	// ReasonPeriodic: the resync interval elapsed.
	ReasonPeriodic = "periodic"
	// ReasonError: the watch failed with an error.
	ReasonError = "error"
)

// Metrics counts what every source does. A nil *Metrics is valid and counts
// nothing. A registry package registers metrics of its own with Register.
type Metrics struct {
	reg          prometheus.Registerer
	events       *prometheus.CounterVec
	decodeErrors *prometheus.CounterVec
	untracked    *prometheus.CounterVec
	relists      *prometheus.CounterVec
	errors       *prometheus.CounterVec
}

// NewMetrics creates the watcher metrics and registers them with reg, which
// may be nil. Registering twice with the same registry reuses the
// collectors already registered; any other registration error panics, as
// prometheus.MustRegister does.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		reg: reg,
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "discodns_watcher_events_total",
			Help: "Registry change events applied to the table, by source and operation (put or delete).",
		}, []string{"source", "op"}),
		decodeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "discodns_watcher_decode_errors_total",
			Help: "Registry entries that do not decode and whose instance is skipped, by source: counted when an entry turns bad or fails differently, not again when a re-list finds it as it was.",
		}, []string{"source"}),
		untracked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "discodns_watcher_decode_untracked_total",
			Help: "Sightings of registry entries that do not decode which the source had no room to remember (over watcher.MaxDecodeFailures keys), by source: each is counted as a decode error every time and not logged.",
		}, []string{"source"}),
		relists: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "discodns_watcher_relists_total",
			Help: "Full lists of a registry, by source and what caused them (initial, compacted, watch_closed, reconnect, periodic, error). Retries of a failed list are not counted again.",
		}, []string{"source", "reason"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "discodns_watcher_errors_total",
			Help: "Registry errors (failed lists and watches, lost connections), by source.",
		}, []string{"source"}),
	}
	m.events = Register(m, m.events)
	m.decodeErrors = Register(m, m.decodeErrors)
	m.untracked = Register(m, m.untracked)
	m.relists = Register(m, m.relists)
	m.errors = Register(m, m.errors)
	return m
}

// Register registers c with the registry of m, for a metric that one
// registry's sources keep, and returns it; if the registry already holds
// an equal collector (a second source of the same kind, or one built
// again on a reload), it returns that one. With a nil m, or an m without a
// registry, it returns c unregistered. Any other registration error
// panics, as prometheus.MustRegister does.
func Register[C prometheus.Collector](m *Metrics, c C) C {
	if m == nil || m.reg == nil {
		return c
	}
	err := m.reg.Register(c)
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
	m.untracked.WithLabelValues(source)
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

// Events counts n changes of source applied to the table; op is OpPut or
// OpDelete.
func (m *Metrics) Events(source, op string, n int) {
	if m != nil && n > 0 {
		m.events.WithLabelValues(source, op).Add(float64(n))
	}
}

// DecodeError counts an entry of source that turned bad (did not decode
// and was skipped) or failed differently.
func (m *Metrics) DecodeError(source string) {
	if m != nil {
		m.decodeErrors.WithLabelValues(source).Inc()
	}
}

// decodeUntracked counts a failure of source that its DecodeLog had no
// room to remember.
func (m *Metrics) decodeUntracked(source string) {
	if m != nil {
		m.untracked.WithLabelValues(source).Inc()
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
