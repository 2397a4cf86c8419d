package consul

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/discodns/discodns/watcher"
)

// Consul API endpoints, the endpoint label of the request metrics.
const (
	endpointCatalogServices     = "catalog_services"
	endpointHealthState         = "health_state"
	endpointHealthService       = "health_service"        // read from the servers
	endpointHealthServiceCached = "health_service_cached" // read from the agent's view
	endpointHealthServiceWatch  = "health_service_watch"  // blocking on the agent's view
)

// agentMetrics counts one source's requests to the Consul agent and its
// connections. A nil *agentMetrics counts nothing.
type agentMetrics struct {
	source      string
	requests    *prometheus.HistogramVec
	errors      *prometheus.CounterVec
	connections prometheus.Gauge
	watched     prometheus.Gauge
	unwatched   prometheus.Gauge
}

// newAgentMetrics registers the Consul metrics with the registry of m, and
// creates the connections gauge of source at zero. It returns nil for a
// nil m.
func newAgentMetrics(m *watcher.Metrics, source string) *agentMetrics {
	if m == nil {
		return nil
	}
	connections := watcher.Register(m, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "discodns_watcher_consul_connections",
		Help: "Open TCP connections to the Consul agent, by source (bounded by max_connections).",
	}, []string{"source"}))
	services := watcher.Register(m, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "discodns_watcher_consul_services",
		Help: "Services by source and how they are followed: watched (a blocking query each on the agent's view) or unwatched (past max_connections minus 3: fetched when the catalog or their checks change).",
	}, []string{"source", "followed"}))
	return &agentMetrics{
		source: source,
		requests: watcher.Register(m, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "discodns_watcher_consul_request_duration_seconds",
			Help:    "Consul HTTP API requests by source and endpoint (catalog_services and health_state block until a change; health_service does not).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
		}, []string{"source", "endpoint"})),
		errors: watcher.Register(m, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "discodns_watcher_consul_request_errors_total",
			Help: "Consul HTTP API requests that failed, by source and endpoint.",
		}, []string{"source", "endpoint"})),
		connections: connections.WithLabelValues(source),
		watched:     services.WithLabelValues(source, "watched"),
		unwatched:   services.WithLabelValues(source, "unwatched"),
	}
}

// request records one request to endpoint that started at start.
func (a *agentMetrics) request(endpoint string, start time.Time, err error) {
	if a == nil {
		return
	}
	a.requests.WithLabelValues(a.source, endpoint).Observe(time.Since(start).Seconds())
	if err != nil {
		a.errors.WithLabelValues(a.source, endpoint).Inc()
	}
}

// connectionsGauge is the open-connections gauge, or nil.
func (a *agentMetrics) connectionsGauge() prometheus.Gauge {
	if a == nil {
		return nil
	}
	return a.connections
}

// watching records how many services are watched and how many are not.
func (a *agentMetrics) watching(watched, unwatched int) {
	if a == nil {
		return
	}
	a.watched.Set(float64(watched))
	a.unwatched.Set(float64(unwatched))
}
