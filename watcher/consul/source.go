// Package consul mirrors the healthy service instances of a Consul
// datacenter into the table: the Source, its sessions (a list, then
// blocking queries that follow the catalog, the health checks and each
// watched service on the agent's streaming views), the work queue of
// services to fetch, and the decoding of Consul's entries.
package consul

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/discodns/discodns/cache"
	"github.com/discodns/discodns/watcher"
)

// DefaultWait is how long a blocking query waits for a change, when
// Config.Wait is zero (it is no setting of the configuration file).
// Consul's own default is 5 minutes; a shorter wait notices an agent that
// stopped answering (no RST, no FIN) sooner, at the cost of one request per
// minute per blocking query.
const DefaultWait = time.Minute

// Config configures a Consul source, as a config.Source of type consul
// says: config owns each setting's default and check.
type Config struct {
	// Name names the source in the table, in metrics and in logs.
	Name string
	// Address is the agent, host:port or http(s)://host:port.
	Address string
	// Datacenter is the datacenter to read; "" means the agent's.
	Datacenter string
	// Token is the ACL token.
	Token string
	// CAFile, CertFile and KeyFile configure TLS to the agent.
	CAFile, CertFile, KeyFile string
	// IncludeWarning keeps instances whose aggregated health is warning.
	IncludeWarning bool
	// Tags, when not empty, keeps only instances carrying one of them.
	Tags []string
	// MaxConnections bounds the TCP connections to the agent: two carry
	// the blocking queries on the catalog and the checks, up to
	// MaxConnections-3 the blocking queries of watched services, the rest
	// fetch changed services; at least 3. Over HTTPS the agent speaks
	// HTTP/2, where blocking queries share connections: when it does,
	// (MaxConnections-3) × StreamsPerConnection services are watched.
	MaxConnections int
	// RateLimit bounds requests per second; > 0.
	RateLimit int
	// ResyncInterval is how often every service is fetched again, to
	// repair anything missed; > 0.
	ResyncInterval time.Duration
	// Wait is the blocking query wait; zero means DefaultWait.
	Wait time.Duration
}

// StreamsPerConnection is how many watched services each connection that
// MaxConnections allows for watches counts for when the agent speaks
// HTTP/2. Consul's HTTP/2 server takes 250 concurrent streams on a
// connection, so the watches fill at most two fifths of those connections,
// and the fetches always find room.
const StreamsPerConnection = 100

// Source is a watcher.Source that mirrors the services of a Consul
// datacenter, keeping only healthy instances.
//
// What it costs the Consul servers per change does not grow with the
// number of nodes or services: it reads services from the local agent's
// materialized views (the streaming backend: the agent subscribes to each
// service once and the servers push it the changes). A blocking query on
// the service list (/v1/catalog/services) learns the set of services, and
// each service is followed by a blocking /v1/health/service/<name> on the
// agent's view of it, up to MaxConnections-3 of them (HTTP/1.1 needs a
// connection per blocking query, and an agent allows 200 per client
// address by default), or StreamsPerConnection times that over HTTPS,
// where HTTP/2 carries many on one connection. The services past that
// bound are unwatched: a
// blocking query on the checks that are not passing (/v1/health/state/any,
// filtered, made only while some service is unwatched) has those whose
// checks changed fetched, and a change of the service list has those it
// changed fetched, from the agent's views, by a pool of workers (the
// remaining connections), again a moment later (settle). The list does not
// say which services changed: every unwatched service is fetched from the
// agent's views, or, when the agent is a server and there are more
// unwatched services than nodes, a scan of every node's services (1 +
// nodes requests, the server's own) compared with the previous one finds
// them (see lookup). From a client agent the cost of a change to the
// servers never grows with the nodes.
// Everything is read from the servers when a session starts and again
// every ResyncInterval; after any error of a blocking query the source is
// stale meanwhile and keeps its last instances.
type Source struct {
	cfg     Config
	probe   *http.Client // over HTTPS, asks whether the agent speaks HTTP/2 (see watchBound)
	client  *api.Client
	limiter *rate.Limiter
	metrics *watcher.Metrics
	agent   *agentMetrics
	log     *slog.Logger
}

// New checks cfg and returns a Consul source. metrics may be nil; log
// nil means slog.Default().
func New(cfg Config, metrics *watcher.Metrics, log *slog.Logger) (*Source, error) {
	if cfg.Name == "" {
		return nil, errors.New("consul source: no name")
	}
	switch {
	case cfg.MaxConnections < 3:
		return nil, fmt.Errorf("consul source %s: max connections %d, want at least 3", cfg.Name, cfg.MaxConnections)
	case cfg.RateLimit <= 0 || cfg.ResyncInterval <= 0:
		return nil, fmt.Errorf("consul source %s: rate limit %d and resync interval %v, want more than 0", cfg.Name, cfg.RateLimit, cfg.ResyncInterval)
	}
	if cfg.Wait <= 0 {
		cfg.Wait = DefaultWait
	}
	if log == nil {
		log = slog.Default()
	}
	log = log.With("source", cfg.Name)

	tlsConfig, err := api.SetupTLSConfig(&api.TLSConfig{CAFile: cfg.CAFile, CertFile: cfg.CertFile, KeyFile: cfg.KeyFile})
	if err != nil {
		return nil, fmt.Errorf("consul source %s: tls: %w", cfg.Name, err)
	}
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 15 * time.Second}
	agent := newAgentMetrics(metrics, cfg.Name)
	gauge := agent.connectionsGauge()
	transport := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := dialer.DialContext(ctx, network, addr)
			if err != nil || gauge == nil {
				return conn, err
			}
			gauge.Inc()
			return &countedConn{Conn: conn, gauge: gauge}, nil
		},
		TLSClientConfig: tlsConfig,
		// HTTP/2 where the agent offers it (its HTTPS API): blocking
		// queries share connections.
		ForceAttemptHTTP2:   true,
		MaxConnsPerHost:     cfg.MaxConnections,
		MaxIdleConnsPerHost: cfg.MaxConnections,
		MaxIdleConns:        cfg.MaxConnections,
		IdleConnTimeout:     90 * time.Second,
	}
	client, err := api.NewClient(&api.Config{
		Address:    cfg.Address,
		Datacenter: cfg.Datacenter,
		Token:      cfg.Token,
		// Consul adds up to wait/16 of jitter to a blocking query; the
		// margin covers a slow response after that.
		HttpClient: &http.Client{Transport: transport, Timeout: cfg.Wait + cfg.Wait/16 + 15*time.Second},
	})
	if err != nil {
		return nil, fmt.Errorf("consul source %s: %w", cfg.Name, err)
	}
	c := &Source{
		cfg:     cfg,
		client:  client,
		limiter: rate.NewLimiter(rate.Limit(cfg.RateLimit), cfg.RateLimit),
		metrics: metrics,
		agent:   agent,
		log:     log,
	}
	if scheme, _, ok := strings.Cut(cfg.Address, "://"); ok && strings.EqualFold(scheme, "https") {
		c.probe = &http.Client{Transport: transport, Timeout: 15 * time.Second}
	}
	return c, nil
}

// watchBound returns how many services a session watches: MaxConnections
// - 3, each on a connection of its own, or StreamsPerConnection times that
// when the agent answers over HTTP/2 (asked at each session: an agent, or
// a proxy in front of it, that speaks HTTP/1.1 over TLS would otherwise
// have the watches queue for connections, and the fetches behind them).
func (c *Source) watchBound(ctx context.Context) int {
	bound := c.cfg.MaxConnections - 3
	if c.probe == nil {
		return bound
	}
	if err := c.limiter.Wait(ctx); err != nil {
		return bound
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(c.cfg.Address, "/")+"/v1/status/leader", nil)
	if err != nil {
		return bound
	}
	resp, err := c.probe.Do(req)
	if err != nil {
		c.log.Debug("consul agent: asking whether it speaks HTTP/2", "err", err, "watched_at_most", bound)
		return bound
	}
	resp.Body.Close()
	if resp.ProtoMajor == 2 {
		bound *= StreamsPerConnection
	}
	c.log.Info("consul agent", "protocol", resp.Proto, "watched_at_most", bound)
	return bound
}

// agentIsServer reports whether the agent is a Consul server, asked at each
// session (/v1/agent/self): only there does a node scan stay off the
// servers' network (see lookup). An agent that does not say, as when the
// token may not read it (agent:read), counts as a client.
func (c *Source) agentIsServer(ctx context.Context) bool {
	if err := c.limiter.Wait(ctx); err != nil {
		return false
	}
	var self struct{ Config struct{ Server bool } }
	start := time.Now()
	_, err := c.client.Raw().Query("/v1/agent/self", &self, (&api.QueryOptions{}).WithContext(ctx))
	c.agent.request(endpointAgentSelf, start, err)
	if err != nil {
		c.log.Debug("consul agent: asking whether it is a server; taken for a client", "err", err)
		return false
	}
	return self.Config.Server
}

// countedConn decrements gauge once when closed.
type countedConn struct {
	net.Conn
	gauge prometheus.Gauge
	once  sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(c.gauge.Dec)
	return c.Conn.Close()
}

// Name implements watcher.Source.
func (c *Source) Name() string { return c.cfg.Name }

// Run implements watcher.Source.
func (c *Source) Run(ctx context.Context, sink cache.Sink) error {
	c.metrics.InitSource(c.cfg.Name, watcher.ReasonInitial, watcher.ReasonReconnect, watcher.ReasonPeriodic)
	bo := watcher.NewBackoff(watcher.MinBackoff, watcher.MaxBackoff)
	// Logged once per outage: a session that listed ends the outage.
	outage := &watcher.Outage{Source: c.cfg.Name, Sink: sink, Metrics: c.metrics, Log: c.log,
		Down:  "consul unavailable; serving the last known instances",
		Still: "consul still unavailable"}
	decodes := &watcher.DecodeLog{Source: c.cfg.Name, Metrics: c.metrics, Log: c.log, Msg: "consul instance skipped"}
	reason := watcher.ReasonInitial
	for {
		err := c.runSession(ctx, sink, reason, bo, outage, decodes)
		if ctx.Err() != nil {
			return nil
		}
		outage.Fail(err)
		reason = watcher.ReasonReconnect
		if !bo.Wait(ctx) {
			return nil
		}
	}
}
