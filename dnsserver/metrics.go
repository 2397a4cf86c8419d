package dnsserver

import (
	"net"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// Labels of the request counter are bounded: a fixed list of query types
// and rcodes, everything else is "other". The query name is never a label.
var (
	metricTypes  = []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeSRV, dns.TypeTXT, dns.TypePTR, dns.TypeSOA, dns.TypeNS, dns.TypeCNAME, dns.TypeANY}
	metricRcodes = []int{dns.RcodeSuccess, dns.RcodeFormatError, dns.RcodeServerFailure, dns.RcodeNameError, dns.RcodeNotImplemented, dns.RcodeRefused, dns.RcodeBadVers}
	protoNames   = [2]string{"udp", "tcp"}
)

// Metrics are the DNS server's Prometheus metrics.
type Metrics struct {
	requests  *prometheus.CounterVec
	duration  [2]prometheus.Observer
	truncated [2]prometheus.Counter
	rejected  *prometheus.CounterVec
	evictions prometheus.Counter
	clients   prometheus.GaugeFunc

	// limiter is the client rate limiter in force, for the gauge of the
	// clients it tracks; nil when there is none.
	limiter atomic.Pointer[clientLimiter]

	wireRenewals prometheus.Counter // wire caches started afresh when full

	localAnswers [3]prometheus.Counter  // by localResult; none is not counted
	skydnsCuts   *prometheus.CounterVec // skydns answers cut short at a bound
	compiles     [2]prometheus.Counter  // snapshots compiled: following the changes, comparing
	setsBuilds   [2]prometheus.Counter  // services' record sets built, by byQuery, byFollow

	tcpConns    prometheus.Gauge       // open TCP connections
	tcpClosedBy *prometheus.CounterVec // TCP connections closed at a bound

	// udpInodes name the UDP sockets whose kernel drops are counted.
	udpInodes atomic.Pointer[map[uint64]bool]

	// cells caches the request counter of each (proto, type, rcode), so
	// the hot path does no label hashing.
	cells [2][10][8]atomic.Pointer[prometheus.Counter]
}

// NewMetrics creates the DNS metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "discodns_dns_requests_total",
			Help: "DNS requests answered, by transport, query type and response code.",
		}, []string{"proto", "type", "rcode"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "discodns_dns_rejected_total",
			Help: "DNS messages rejected: by their header, with the response sent (FORMERR, NOTIMP) or none (ignored); because they do not parse (malformed: FORMERR when the header does, else no response); or over the client rate limit (rate_limited), counted here alone.",
		}, []string{"reason"}),
		evictions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "discodns_dns_rate_limit_evictions_total",
			Help: "Clients the rate limiter forgot, the least recently heard from, to make room for a new one (dns.client_rate_limit_clients).",
		}),
	}
	m.tcpConns = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "discodns_dns_tcp_connections",
		Help: "Open DNS TCP connections, at most dns.max_tcp_connections.",
	})
	m.tcpClosedBy = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "discodns_dns_tcp_closed_total",
		Help: "DNS TCP connections the server closed at a bound, by reason: client_limit (over dns.max_tcp_connections_per_client, closed at once), server_limit (over dns.max_tcp_connections with none idle, closed at once), idle_evicted (the one idle longest, closed to admit a new one at dns.max_tcp_connections), write_timeout (did not read its answers).",
	}, []string{"reason"})
	for _, r := range []string{closedClientLimit, closedServerLimit, closedIdleEvicted, closedWriteTimeout} {
		m.tcpClosedBy.WithLabelValues(r)
	}
	m.clients = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "discodns_dns_rate_limit_clients",
		Help: "Clients the rate limiter tracks, at most dns.client_rate_limit_clients.",
	}, func() float64 {
		if l := m.limiter.Load(); l != nil {
			return float64(l.len())
		}
		return 0
	})
	udpDropped := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "discodns_dns_udp_dropped_total",
		Help: "UDP queries the kernel dropped because every worker was busy and the socket's receive buffer was full (Linux).",
	}, func() float64 {
		if inodes := m.udpInodes.Load(); inodes != nil {
			return udpDrops(*inodes)
		}
		return 0
	})
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "discodns_dns_request_duration_seconds",
		Help:    "Time to answer a DNS request, by transport.",
		Buckets: []float64{.00001, .000025, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .05, .25, 1, 2.5},
	}, []string{"proto"})
	truncated := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "discodns_dns_truncated_total",
		Help: "DNS responses sent with TC=1 because the answer did not fit, by transport.",
	}, []string{"proto"})
	for i, p := range protoNames {
		m.duration[i] = duration.WithLabelValues(p)
		m.truncated[i] = truncated.WithLabelValues(p)
	}
	m.wireRenewals = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "discodns_dns_wire_cache_renewals_total",
		Help: "Times the cache of packed answers spent its 16 MiB and started afresh.",
	})
	locality := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "discodns_dns_locality_answers_total",
		Help: "A, AAAA and SRV answers of services with locality data, by result: local (same-zone instances alone, or first) or spilled (too few in the zone, locality.min_local: every instance alike).",
	}, []string{"result"})
	m.localAnswers[localLocal] = locality.WithLabelValues("local")
	m.localAnswers[localSpilled] = locality.WithLabelValues("spilled")
	m.skydnsCuts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "discodns_dns_skydns_cut_total",
		Help: "skydns answers cut short at a bound, by bound: wildcard_records (a wildcard question matched more than 10,000 records, or looked at 10,000 names; the records found answer), alias_follows (an answer followed 100 aliases and left the rest unfollowed).",
	}, []string{"bound"})
	for _, b := range []string{cutWildRecords, cutAliasFollows} {
		m.skydnsCuts.WithLabelValues(b)
	}
	compiles := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "discodns_dns_compiles_total",
		Help: "Snapshots compiled into answers, by how the changed services were found: changes (the snapshot listed them), compared (more than 64 publications since the last compiled snapshot, one that changed more than 4,096 services, or another table's: every service of a changed shard compared).",
	}, []string{"how"})
	m.compiles[0] = compiles.WithLabelValues("changes")
	m.compiles[1] = compiles.WithLabelValues("compared")
	setsBuilds := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "discodns_dns_record_sets_built_total",
		Help: "Services' record sets (their A, AAAA and SRV answers, by tag and named port) built after a change, by who built them: follow (after the snapshot was in force, before a newer one came) or query (the first query that needed them, which waited for them).",
	}, []string{"by"})
	m.setsBuilds[byQuery] = setsBuilds.WithLabelValues("query")
	m.setsBuilds[byFollow] = setsBuilds.WithLabelValues("follow")
	reg.MustRegister(m.requests, duration, truncated, m.rejected, m.evictions, m.clients, m.tcpConns, m.tcpClosedBy, udpDropped, m.wireRenewals, locality, m.skydnsCuts, compiles, setsBuilds)
	return m
}

// observe counts one query answered over TCP or UDP; one dropped or over
// its client's rate limit is not (rateLimited counts those).
func (m *Metrics) observe(tcp bool, o Outcome, took time.Duration) {
	if m == nil || o.Dropped || o.RateLimited {
		return
	}
	qtype, rcode, truncated := o.Qtype, o.Rcode, o.Truncated
	p := 0
	if tcp {
		p = 1
	}
	t := len(metricTypes)
	for i, mt := range metricTypes {
		if mt == qtype {
			t = i
			break
		}
	}
	r := len(metricRcodes)
	for i, mr := range metricRcodes {
		if mr == rcode {
			r = i
			break
		}
	}
	cell := &m.cells[p][t][r]
	c := cell.Load()
	if c == nil {
		typeName, rcodeName := "other", "other"
		if t < len(metricTypes) {
			typeName = dns.TypeToString[metricTypes[t]]
		}
		if r < len(metricRcodes) {
			rcodeName = rcodeString(metricRcodes[r])
		}
		counter := m.requests.WithLabelValues(protoNames[p], typeName, rcodeName)
		c = &counter
		cell.Store(c)
	}
	(*c).Inc()
	m.duration[p].Observe(took.Seconds())
	if truncated {
		m.truncated[p].Inc()
	}
	if o.Locality != localNone {
		m.localAnswers[o.Locality].Inc()
	}
}

// rcodeString names an rcode; miekg/dns's table names 16 BADSIG, which is
// its meaning in a TSIG record, not in an OPT record's extended rcode: the
// only place discodns sends it.
func rcodeString(rcode int) string {
	if rcode == dns.RcodeBadVers {
		return "BADVERS"
	}
	return dns.RcodeToString[rcode]
}

// invalid counts a message that does not parse, miekg/dns's
// MsgInvalidFunc.
func (m *Metrics) invalid([]byte, error) {
	if m != nil {
		m.rejected.WithLabelValues("malformed").Inc()
	}
}

// acceptFunc wraps miekg/dns's message filter to count what it rejects.
func (m *Metrics) acceptFunc(dh dns.Header) dns.MsgAcceptAction {
	action := dns.DefaultMsgAcceptFunc(dh)
	if m != nil {
		switch action {
		case dns.MsgReject:
			m.rejected.WithLabelValues("FORMERR").Inc()
		case dns.MsgRejectNotImplemented:
			m.rejected.WithLabelValues("NOTIMP").Inc()
		case dns.MsgIgnore:
			m.rejected.WithLabelValues("ignored").Inc()
		}
	}
	return action
}

// rateLimited counts a query over its client's rate limit.
func (m *Metrics) rateLimited() {
	if m != nil {
		m.rejected.WithLabelValues("rate_limited").Inc()
	}
}

// rateLimitEvicted counts a client the rate limiter forgot for a new one.
func (m *Metrics) rateLimitEvicted() {
	if m != nil {
		m.evictions.Inc()
	}
}

// trackLimiter makes l (nil: none) the limiter whose clients are shown.
func (m *Metrics) trackLimiter(l *clientLimiter) {
	if m != nil {
		m.limiter.Store(l)
	}
}

// trackUDP makes conns the UDP sockets whose drops are counted.
func (m *Metrics) trackUDP(conns []*net.UDPConn) {
	if m == nil {
		return
	}
	inodes := make(map[uint64]bool, len(conns))
	for _, c := range conns {
		if ino := socketInode(c); ino != 0 {
			inodes[ino] = true
		}
	}
	m.udpInodes.Store(&inodes)
}

// Bounds a skydns answer may be cut at (discodns_dns_skydns_cut_total).
const (
	cutWildRecords  = "wildcard_records"
	cutAliasFollows = "alias_follows"
)

// compiled counts a snapshot compiled from an earlier one, following its
// list of changes or comparing.
func (m *Metrics) compiled(followed bool) {
	switch {
	case m == nil:
	case followed:
		m.compiles[0].Inc()
	default:
		m.compiles[1].Inc()
	}
}

// Who builds a service's record sets (setsBuilt).
const (
	byQuery = iota
	byFollow
)

// setsBuilt counts a service's record sets built by who.
func (m *Metrics) setsBuilt(who int) {
	if m != nil {
		m.setsBuilds[who].Inc()
	}
}

// skydnsCut counts a skydns answer cut short at bound.
func (m *Metrics) skydnsCut(bound string) {
	if m != nil {
		m.skydnsCuts.WithLabelValues(bound).Inc()
	}
}

// wireRenewed counts a wire cache started afresh.
func (m *Metrics) wireRenewed() {
	if m != nil {
		m.wireRenewals.Inc()
	}
}

// tcpConnOpened and tcpConnClosed count a TCP connection in the open
// connections gauge.
func (m *Metrics) tcpConnOpened() {
	if m != nil {
		m.tcpConns.Inc()
	}
}

func (m *Metrics) tcpConnClosed() {
	if m != nil {
		m.tcpConns.Dec()
	}
}

// tcpClosed counts a TCP connection the server closed for reason.
func (m *Metrics) tcpClosed(reason string) {
	if m != nil {
		m.tcpClosedBy.WithLabelValues(reason).Inc()
	}
}
