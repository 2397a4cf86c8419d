package daemon

import (
	"fmt"
	"log/slog"
	"net/netip"
	"reflect"
	"slices"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/discodns/discodns/config"
	"github.com/discodns/discodns/dnsserver"
	"github.com/discodns/discodns/forward"
)

// dnsOptions builds the DNS answer options of cfg. The forwarder of prev
// is kept when the forwarding configuration did not change, so its cache
// survives a reload.
func dnsOptions(cfg *config.Config, prev *dnsserver.Options, prevForward *config.Forward, reg prometheus.Registerer, log *slog.Logger) (dnsserver.Options, error) {
	var nsAddrs []netip.Addr
	for _, l := range cfg.DNS.Listen {
		if ap, err := netip.ParseAddrPort(l); err == nil {
			nsAddrs = append(nsAddrs, ap.Addr())
		}
	}
	limit, defaulted := cfg.DNS.RateLimit()
	opts := dnsserver.Options{
		Zone:            cfg.DNS.Zone,
		TTL:             cfg.DNS.TTL,
		NegativeTTL:     cfg.DNS.NegativeTTL,
		UDPSize:         cfg.DNS.UDPSize,
		NSAddrs:         nsAddrs,
		ClientRateLimit: limit,

		ClientRateLimitClients: cfg.DNS.ClientRateLimitClients,
		// The default limit is there for spoofed victims, which a
		// loopback client cannot be; a limit set in the file is for all.
		SpareLoopback: defaulted,
		Locality:      locality(cfg),
	}
	if prev == nil || prev.ClientRateLimit != limit {
		logRateLimit(cfg, limit, defaulted, log)
	}
	ups := cfg.Forward.Upstreams
	if len(ups) == 0 {
		return opts, nil
	}
	// Every upstream gets its attempt, within what a stub resolver waits
	// for one try (glibc: 5 s).
	opts.ForwardTimeout = min(cfg.Forward.Timeout*time.Duration(len(ups))+100*time.Millisecond, 4*time.Second)
	if prev != nil && prev.Forwarder != nil && reflect.DeepEqual(*prevForward, cfg.Forward) {
		opts.Forwarder = prev.Forwarder
		return opts, nil
	}
	fwd, err := forward.New(forward.Config{
		Upstreams:   ups,
		Allow:       cfg.Forward.Allow,
		Timeout:     cfg.Forward.Timeout,
		CacheSize:   cfg.Forward.CacheSize,
		MaxStale:    cfg.Forward.MaxStale,
		MaxInFlight: cfg.Forward.MaxInFlight,
	}, reg, log)
	if err != nil {
		return opts, err
	}
	opts.Forwarder = fwd
	log.Info("forwarding", "upstreams", ups, "allow", cfg.Forward.Allow)
	return opts, nil
}

// logRateLimit says what limits clients, when the answer is not obvious:
// a default limit, or none beyond loopback.
func logRateLimit(cfg *config.Config, limit int, defaulted bool, log *slog.Logger) {
	switch {
	case !cfg.DNS.BeyondLoopback():
	case defaulted:
		log.Info("dns.client_rate_limit is not set and a listen address is not loopback: each client beyond loopback gets at most this many queries a second (set the key to change it and to limit loopback clients too, 0 to turn it off)",
			"client_rate_limit", limit, "listen", cfg.DNS.Listen)
	case limit == 0:
		log.Warn("dns.client_rate_limit = 0 on a listen address beyond loopback: no client is limited, so anyone can send queries with a victim's address as their source and have discodns send the victim answers bigger than the queries (amplification); keep it only behind another limit",
			"listen", cfg.DNS.Listen, "udp_size", cfg.DNS.UDPSize)
	}
}

// reloader applies a new configuration to a running server.
type reloader struct {
	load    func() (*config.Config, error)
	file    string // the file load reads
	cfg     *config.Config
	opts    dnsserver.Options
	sources *sourceSet
	handler *dnsserver.Handler
	reg     prometheus.Registerer
	log     *slog.Logger
	result  *prometheus.CounterVec

	// forwarding is whether the configuration in force forwards; read by
	// /readyz, which runs on other goroutines.
	forwarding atomic.Bool
}

// reload loads the configuration again and applies it; a bad one is
// rejected, logged and counted, and the running one stays.
func (r *reloader) reload() {
	cfg, err := r.load()
	if err == nil {
		err = r.apply(cfg)
	}
	if err != nil {
		r.log.Error("configuration reload rejected; the running configuration stays", "err", err)
		r.result.WithLabelValues("error").Inc()
		return
	}
	r.result.WithLabelValues("ok").Inc()
	r.log.Info("configuration reloaded", "sources", len(cfg.Sources))
}

func (r *reloader) apply(cfg *config.Config) error {
	if len(cfg.Sources) == 0 && len(r.cfg.Sources) > 0 {
		return &config.Error{File: r.file, Err: fmt.Errorf("no [[source]], while %d run: a reload that removes every source is refused, since every service would become NXDOMAIN (restart discodns to run forward-only)", len(r.cfg.Sources))}
	}
	opts, err := dnsOptions(cfg, &r.opts, &r.cfg.Forward, r.reg, r.log)
	if err != nil {
		return err
	}
	if err := r.sources.apply(cfg.Sources); err != nil {
		return err
	}
	r.handler.SetOptions(opts)
	if !slices.Equal(cfg.DNS.Listen, r.cfg.DNS.Listen) || cfg.HTTP.Listen != r.cfg.HTTP.Listen ||
		cfg.DNS.TCPIdleTimeout != r.cfg.DNS.TCPIdleTimeout || cfg.DNS.MaxTCPConnections != r.cfg.DNS.MaxTCPConnections ||
		cfg.DNS.MaxTCPConnectionsPerClient != r.cfg.DNS.MaxTCPConnectionsPerClient ||
		cfg.DNS.Sockets != r.cfg.DNS.Sockets {
		r.log.Warn("listen addresses, sockets and TCP limits change at the next restart, not on reload")
	}
	r.cfg, r.opts = cfg, opts
	r.forwarding.Store(len(cfg.Forward.Upstreams) > 0)
	return nil
}

// newReloadMetric registers discodns_config_reloads_total.
func newReloadMetric(reg prometheus.Registerer) *prometheus.CounterVec {
	return newResultCounter(reg, "discodns_config_reloads_total",
		"Configuration reloads (SIGHUP) by result: ok, or error when the new configuration was rejected and the running one stayed.")
}

// newResultCounter registers a counter of name by result, ok or error,
// both shown from the start.
func newResultCounter(reg prometheus.Registerer, name, help string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{"result"})
	c.WithLabelValues("ok")
	c.WithLabelValues("error")
	reg.MustRegister(c)
	return c
}
