package forward

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the Forwarder's Prometheus collectors. None of them carries
// the query name as a label.
type metrics struct {
	requests      *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	healthy       *prometheus.GaugeVec
	cacheHits     prometheus.Counter
	cacheMisses   prometheus.Counter
	cacheTooLarge prometheus.Counter
	stale         prometheus.Counter
	refused       prometheus.Counter
	local         prometheus.Counter
	inFlight      prometheus.Gauge
	overload      prometheus.Counter
}

// newMetrics creates the collectors and registers them with reg unless reg
// is nil.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "discodns_forward_requests_total",
			Help: "Replies from upstream servers by rcode; \"error\" counts timeouts, network errors and bad replies.",
		}, []string{"upstream", "rcode"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "discodns_forward_upstream_duration_seconds",
			Help:    "Duration of one query to an upstream server.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 15),
		}, []string{"upstream"}),
		healthy: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "discodns_forward_upstream_healthy",
			Help: "Whether an upstream server is considered healthy (1) or skipped (0).",
		}, []string{"upstream"}),
		cacheHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "discodns_forward_cache_hits_total",
			Help: "Forwarded queries answered from the response cache.",
		}),
		cacheMisses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "discodns_forward_cache_misses_total",
			Help: "Forwarded queries not found fresh in the response cache.",
		}),
		cacheTooLarge: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "discodns_forward_cache_too_large_total",
			Help: "Upstream responses answered but not cached because they would take more than 16 KiB of memory.",
		}),
		stale: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "discodns_forward_stale_answers_total",
			Help: "Expired cached answers served because no upstream server answered, or the query was over forward.max_in_flight (RFC 8767).",
		}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "discodns_forward_refused_total",
			Help: "Queries refused because the client may not use forwarding.",
		}),
		local: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "discodns_forward_local_answers_total",
			Help: "Queries for special-use names answered locally.",
		}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "discodns_forward_in_flight_queries",
			Help: "Forwarded queries waiting on upstream servers, at most forward.max_in_flight.",
		}),
		overload: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "discodns_forward_overload_total",
			Help: "Forwarded queries over forward.max_in_flight, answered stale or SERVFAIL at once.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	// A Forwarder made again (a configuration reload) counts on in the
	// collectors registered by the first.
	var err error
	reuse(reg, &m.requests, &err)
	reuse(reg, &m.duration, &err)
	reuse(reg, &m.healthy, &err)
	reuse(reg, &m.cacheHits, &err)
	reuse(reg, &m.cacheMisses, &err)
	reuse(reg, &m.cacheTooLarge, &err)
	reuse(reg, &m.stale, &err)
	reuse(reg, &m.refused, &err)
	reuse(reg, &m.local, &err)
	reuse(reg, &m.inFlight, &err)
	reuse(reg, &m.overload, &err)
	if err != nil {
		return nil, fmt.Errorf("forward: register metrics: %w", err)
	}
	return m, nil
}

// reuse registers *c with reg, or replaces *c with the equal collector reg
// already holds; other errors go to *err.
func reuse[C prometheus.Collector](reg prometheus.Registerer, c *C, err *error) {
	e := reg.Register(*c)
	var are prometheus.AlreadyRegisteredError
	switch {
	case e == nil:
	case errors.As(e, &are):
		if existing, ok := are.ExistingCollector.(C); ok {
			*c = existing
			return
		}
		*err = e
	default:
		*err = e
	}
}
