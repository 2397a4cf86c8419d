// Package daemon is the life of one discodns process: it starts the
// sources, waits for them to list (or seeds them from the state file),
// binds HTTP and DNS (or takes the sockets a hot restart or systemd hands
// over), reloads the configuration on SIGHUP, hands its sockets to a new
// process on SIGUSR2, and on shutdown drains DNS, then HTTP, then stops
// the sources. Answering DNS and decoding registries live elsewhere
// (dnsserver, watcher); main only parses flags and calls Run.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/discodns/discodns/admin"
	"github.com/discodns/discodns/cache"
	"github.com/discodns/discodns/config"
	"github.com/discodns/discodns/dnsserver"
	"github.com/discodns/discodns/registry"
	"github.com/discodns/discodns/state"
	"github.com/discodns/discodns/watcher"
)

const (
	// drainTimeout bounds how long shutdown waits for in-flight queries
	// and HTTP requests.
	drainTimeout = 5 * time.Second
	// handoverDrainTimeout is drainTimeout after a hot restart: the new
	// process serves already, so the old one can let TCP clients that keep
	// their connections busy finish rather than cut their queries.
	handoverDrainTimeout = 30 * time.Second
)

// Daemon is one run of discodns.
type Daemon struct {
	// Config is the configuration to start with, validated.
	Config *config.Config
	// Load, when not nil, reads the configuration again for a reload on
	// SIGHUP; it returns a validated configuration or an error.
	Load func() (*config.Config, error)
	// File is the configuration file Load reads, named in reload errors.
	File string
	// Log receives the daemon's logs.
	Log *slog.Logger
	// NewSource builds a source's watcher; nil means registry.NewSource.
	NewSource func(config.Source, *watcher.Metrics, *slog.Logger) (watcher.Source, error)
	// Started, when not nil, is called with the bound DNS and HTTP
	// addresses once DNS answers (tests).
	Started func(dns []net.Addr, http net.Addr)
	// Version is the binary's version, shown in discodns_build_info.
	Version string
	// Handover, when not nil, gives the sockets handed over by the
	// process before (hot restart) or by systemd, and makes SIGUSR2 a hot
	// restart; nil binds every socket and leaves SIGUSR2 alone.
	Handover *Handover
}

// Run serves until ctx ends, then drains in-flight queries: DNS stops
// accepting and answers what it has, then HTTP, then the sources stop. It
// returns an error for a start-up failure or a listener that failed.
func (d *Daemon) Run(ctx context.Context) error {
	cfg, log := d.Config, d.Log
	newSource := d.NewSource
	if newSource == nil {
		newSource = registry.NewSource
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	table := cache.NewTable(log)
	reg.MustRegister(admin.NewCollector(table))
	dnsMetrics := dnsserver.NewMetrics(reg)

	opts, err := dnsOptions(cfg, nil, nil, reg, log)
	if err != nil {
		return err
	}
	handler := dnsserver.NewHandler(opts, dnsMetrics, log)

	// One shutdown sequence for every way out, in drain order. The sources
	// run on their own context, so that they stop after DNS has drained.
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	// The state file's writer stops last, once the sources have stopped
	// and the table has published what they wrote: its last write holds
	// every change.
	writerCtx, stopWriter := context.WithCancel(context.WithoutCancel(ctx))
	var writer sync.WaitGroup
	var dnsSrv *dnsserver.Server
	var httpSrv *http.Server
	drainFor := drainTimeout
	defer func() {
		drain, cancelDrain := context.WithTimeout(context.Background(), drainFor)
		defer cancelDrain()
		if dnsSrv != nil {
			if err := dnsSrv.Shutdown(drain); err != nil {
				log.Warn("dns shutdown", "err", err)
			}
		}
		if httpSrv != nil {
			httpSrv.Shutdown(drain)
		}
		cancel()
		wg.Wait()
		stopWriter()
		writer.Wait()
	}()

	// Writes to the table are published in batches by its goroutine; once
	// it stops, with the sources, each write publishes before it returns.
	wg.Go(func() { table.Run(runCtx) })
	wg.Go(func() { handler.Follow(runCtx, table) })
	restarts := newResultCounter(reg, "discodns_hot_restarts_total",
		"Hot restarts (SIGUSR2) by result: ok when the new process took over, error when it failed and this one kept serving.")
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "discodns_build_info",
		Help:        "1, labelled with the version of the running binary.",
		ConstLabels: prometheus.Labels{"version": d.Version},
	}, func() float64 { return 1 }))
	watcherMetrics := watcher.NewMetrics(reg)
	sources := newSourceSet(runCtx, table, func(sc config.Source) (watcher.Source, error) {
		return newSource(sc, watcherMetrics, log)
	}, log)
	wg.Go(func() { <-runCtx.Done(); sources.wait() })
	if err := sources.apply(cfg.Sources); err != nil {
		return err
	}
	// The first snapshot that holds every source: the handler may still
	// answer from an older one, without sources and so trivially ready.
	withSources := table.Snapshot().Version
	reloads := &reloader{load: d.Load, file: d.File, cfg: cfg, opts: opts, sources: sources, handler: handler,
		reg: reg, log: log, result: newReloadMetric(reg)}
	reloads.forwarding.Store(len(cfg.Forward.Upstreams) > 0)

	// The state file is read at once, so that a bad one is reported at
	// start, whether or not it is needed.
	var saved *state.File
	if cfg.StateFile != "" {
		saved = state.Load(cfg.StateFile, log)
	}

	// HTTP first, so that /readyz and /metrics show the start-up.
	var dnsUp atomic.Bool
	httpErr := make(chan error, 1)
	var httpAddr net.Addr
	var httpListener net.Listener
	if cfg.HTTP.Listen != "" {
		l, err := d.Handover.Listen(cfg.HTTP.Listen)
		if err != nil {
			return fmt.Errorf("http listen %s: %w", cfg.HTTP.Listen, err)
		}
		httpAddr, httpListener = l.Addr(), l
		if cfg.HTTP.BeyondLoopback() {
			log.Warn("http.listen is not loopback: whoever reaches it can read the service table (/v1/services: every instance's address, tags and metadata), the status page (/), the metrics, and Go's profiler (/debug/pprof/, whose profiles also cost CPU); keep it on loopback, or behind a firewall or an authenticating proxy",
				"addr", cfg.HTTP.Listen)
		}
		state := func() admin.DNSState {
			return admin.DNSState{Serving: dnsUp.Load() && handler.Ready(), Forwarding: reloads.forwarding.Load()}
		}
		httpSrv = admin.NewServer(cfg.HTTP.Listen, admin.Handler(table, reg, state))
		log.Info("http listening", "addr", l.Addr().String())
		go func() {
			if err := httpSrv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
				httpErr <- err
			}
		}()
	}

	// Answering before the sources have listed would give NXDOMAIN for
	// services that exist, which clients cache: wait for them, a while.
	// Without sources (Validate lets that be only with forwarding) there
	// is nothing to wait for.
	if len(cfg.Sources) == 0 {
		log.Info("forward-only: no [[source]], so DNS answers at once; names in the zone are NXDOMAIN, the others are forwarded",
			"zone", cfg.DNS.Zone, "upstreams", cfg.Forward.Upstreams)
	} else if !waitReady(ctx, handler, withSources, cfg.DNS.StartupWait, log) {
		if ctx.Err() != nil {
			return nil
		}
		if len(state.Seed(saved, table, log)) > 0 {
			waitVersion(ctx, handler, table.Snapshot().Version)
		}
	}
	saved = nil // the table has what it needs of it
	if cfg.StateFile != "" {
		w := state.NewWriter(cfg.StateFile, table, reg, log)
		writer.Go(func() { w.Run(writerCtx) })
	}
	var inherited dnsserver.Inherited
	if d.Handover != nil {
		inherited = d.Handover
	}
	dnsSrv, err = dnsserver.Listen(dnsserver.ListenConfig{
		Inherited:         inherited,
		Addrs:             cfg.DNS.Listen,
		TCPIdleTimeout:    cfg.DNS.TCPIdleTimeout,
		MaxTCPConnections: cfg.DNS.MaxTCPConnections,
		Sockets:           cfg.DNS.Sockets,

		MaxTCPConnectionsPerClient: cfg.DNS.MaxTCPConnectionsPerClient,
	}, handler, dnsMetrics, log)
	if err != nil {
		return err
	}
	dnsUp.Store(true)
	if d.Started != nil {
		d.Started(dnsSrv.Addrs(), httpAddr)
	}
	var usr2 <-chan struct{} // nil: no hot restarts
	upgraded := make(chan error, 1)
	if d.Handover != nil {
		if err := d.Handover.Keep(dnsSrv.Sockets(), httpListener, cfg.HTTP.Listen); err != nil {
			log.Error("hot restart: sockets not kept for the next process, which would fail to bind them (this one keeps serving)", "err", err)
		}
		if err := d.Handover.Ready(); err != nil {
			log.Error("hot restart", "err", err)
		}
		defer d.Handover.Stop()
		usr2 = notify(ctx, syscall.SIGUSR2)
	}
	upgrading := false

	var reload <-chan struct{} // nil: no reloads
	if d.Load != nil {
		reload = notify(ctx, syscall.SIGHUP)
	}
	for {
		select {
		case <-ctx.Done():
			log.Info("shutting down: draining in-flight queries")
			return nil
		case <-reload:
			log.Info("SIGHUP: reloading the configuration")
			reloads.reload()
		case <-usr2:
			if upgrading {
				log.Warn("SIGUSR2: a hot restart is under way already")
				continue
			}
			log.Info("SIGUSR2: hot restart: starting a new process with the listening sockets")
			upgrading = true
			go func() { upgraded <- d.Handover.Upgrade() }()
		case err := <-upgraded:
			upgrading = false
			if err != nil {
				restarts.WithLabelValues("error").Inc()
				log.Error("hot restart failed; this process keeps serving", "err", err)
				continue
			}
			restarts.WithLabelValues("ok").Inc()
			drainFor = handoverDrainTimeout
			if httpSrv != nil {
				// The new process serves HTTP on the same socket: this one
				// takes no more requests while DNS drains.
				go httpSrv.Shutdown(context.Background())
			}
			log.Info("hot restart: the new process is ready; this one stops reading, drains its queries and exits")
			return nil
		case err := <-dnsSrv.Errors():
			return fmt.Errorf("dns server: %w", err)
		case err := <-httpErr:
			return fmt.Errorf("http server: %w", err)
		}
	}
}

// notify delivers the signal sig until ctx ends.
func notify(ctx context.Context, signum os.Signal) <-chan struct{} {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, signum)
	out := make(chan struct{})
	go func() {
		defer signal.Stop(sig)
		for {
			select {
			case <-ctx.Done():
				return
			case <-sig:
				select {
				case out <- struct{}{}:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}

// waitVersion waits, for at most a second, until answers come from a
// snapshot of version v or later.
func waitVersion(ctx context.Context, handler *dnsserver.Handler, v uint64) {
	deadline := time.Now().Add(time.Second)
	for handler.Version() < v && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
}

// waitReady waits until answers come from a snapshot, version since or
// later, in which every source has listed, at most for wait. It reports
// whether that happened.
func waitReady(ctx context.Context, handler *dnsserver.Handler, since uint64, wait time.Duration, log *slog.Logger) bool {
	deadline := time.Now().Add(wait)
	logged := false
	for handler.Version() < since || !handler.Ready() {
		if time.Now().After(deadline) {
			log.Warn("answering DNS before every source has listed", "waited", wait)
			return false
		}
		if !logged {
			log.Info("waiting for every source to list before answering DNS", "at_most", wait)
			logged = true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(10 * time.Millisecond):
		}
	}
	return true
}
