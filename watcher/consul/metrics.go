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
	endpointCatalogNodes        = "catalog_nodes"
	endpointCatalogNodeServices = "catalog_node_services"
	endpointHealthService       = "health_service"        // read from the servers
	endpointHealthServiceCached = "health_service_cached" // read from the agent's view
	endpointHealthServiceWatch  = "health_service_watch"  // blocking on the agent's view
	endpointAgentSelf           = "agent_self"            // whether the agent is a server
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
	changes     *prometheus.CounterVec
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
	changes := watcher.Register(m, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "discodns_watcher_consul_catalog_changes_total",
		Help: "Changes of the service list by source and how the unwatched services they changed were found: none (every service watched), node_scan (1 + nodes requests; only on a server agent) or view_sweep (every unwatched service read from the agent's views).",
	}, []string{"source", "lookup"}))
	for _, l := range []string{lookupNone, lookupNodeScan, lookupSweep} {
		changes.WithLabelValues(source, l)
	}
	return &agentMetrics{
		source:  source,
		changes: changes,
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

// catalogChange counts a change of the service list, by how the unwatched
// services it changed were found.
func (a *agentMetrics) catalogChange(lookup string) {
	if a == nil {
		return
	}
	a.changes.WithLabelValues(a.source, lookup).Inc()
}
