// Command discodns is a DNS server for service discovery: it mirrors service
// registries into memory and answers SRV, A, AAAA and TXT for their services.
//
//	discodns [serve] -config FILE   serve with a configuration file
//	discodns -dev                   serve with an embedded etcd and a demo service
//	discodns register -source ...   keep one instance registered (see -h)
//	discodns version                print the version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
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
	"github.com/discodns/discodns/watcher"
	"github.com/discodns/discodns/watcher/consul"
	"github.com/discodns/discodns/watcher/etcd"
	"github.com/discodns/discodns/watcher/zookeeper"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without the exit, for tests.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "version":
			fmt.Fprintln(stdout, "discodns", version())
			return 0
		case "serve":
			args = args[1:]
		case "register":
			return runRegister(args[1:], stderr)
		}
	}
	fs := flag.NewFlagSet("discodns", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "configuration `file` (TOML)")
	dev := fs.Bool("dev", false, "start an embedded etcd with a demo service; no set-up needed")
	dnsListen := fs.String("dns-listen", "", "override dns.listen with one `address` (IP:port)")
	httpListen := fs.String("http-listen", "", "override http.listen (`address`, \"\" keeps the config's)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: discodns [serve] -config FILE | discodns -dev | discodns register ... | discodns version\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "discodns: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return 2
	}
	if !*dev && *configPath == "" {
		fmt.Fprintln(stderr, "discodns: -config FILE or -dev is required")
		fs.Usage()
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	var cfg *config.Config
	if *configPath != "" {
		var err error
		if cfg, err = config.Load(*configPath); err != nil {
			fmt.Fprintln(stderr, "discodns:", err)
			return 1
		}
	} else {
		cfg = config.Default()
	}
	if *dnsListen != "" {
		cfg.DNS.Listen = []string{*dnsListen}
	}
	if *httpListen != "" {
		cfg.HTTP.Listen = *httpListen
	}
	log := newLogger(cfg.Log, stderr)

	if *dev {
		closeDev, err := startDev(ctx, cfg, stdout, log)
		if err != nil {
			fmt.Fprintln(stderr, "discodns -dev:", err)
			return 1
		}
		defer closeDev()
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintln(stderr, "discodns:", err)
		return 1
	}
	var load func() (*config.Config, error)
	if *configPath != "" && !*dev {
		load = func() (*config.Config, error) {
			c, err := config.Load(*configPath)
			if err != nil {
				return nil, err
			}
			if *dnsListen != "" {
				c.DNS.Listen = []string{*dnsListen}
			}
			if *httpListen != "" {
				c.HTTP.Listen = *httpListen
			}
			return c, c.Validate()
		}
	}
	if err := serve(ctx, cfg, load, log); err != nil {
		fmt.Fprintln(stderr, "discodns:", err)
		return 1
	}
	return 0
}

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

func newLogger(cfg config.Log, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.SlogLevel()}
	if cfg.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// serve runs discodns until ctx ends, then drains in-flight queries.
// load, when not nil, reads the configuration again for a reload (SIGHUP).
func serve(ctx context.Context, cfg *config.Config, load func() (*config.Config, error), log *slog.Logger) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	table := cache.NewTable(log)
	reg.MustRegister(admin.NewCollector(table))
	watcherMetrics := watcher.NewMetrics(reg)
	dnsMetrics := dnsserver.NewMetrics(reg)

	opts, err := dnsOptions(cfg, nil, nil, reg, log)
	if err != nil {
		return err
	}
	handler := dnsserver.NewHandler(opts, dnsMetrics, log)

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { handler.Follow(runCtx, table) })
	sources := newSourceSet(runCtx, table, watcherMetrics, log)
	if err := sources.apply(cfg.Sources); err != nil {
		cancel()
		wg.Wait()
		return err
	}
	wg.Go(func() { <-runCtx.Done(); sources.wait() })
	hup := make(chan os.Signal, 1)
	if load != nil {
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
	}
	reloads := &reloader{load: load, cfg: cfg, opts: opts, sources: sources, handler: handler,
		reg: reg, log: log, result: newReloadMetric(reg)}

	// HTTP first, so that /readyz and /metrics show the start-up.
	var dnsUp atomic.Bool
	var httpSrv *http.Server
	httpErr := make(chan error, 1)
	if cfg.HTTP.Listen != "" {
		l, err := net.Listen("tcp", cfg.HTTP.Listen)
		if err != nil {
			cancel()
			wg.Wait()
			return fmt.Errorf("http listen %s: %w", cfg.HTTP.Listen, err)
		}
		serving := func() bool { return dnsUp.Load() && handler.Ready() }
		httpSrv = admin.NewServer(cfg.HTTP.Listen, admin.Handler(table, reg, serving))
		log.Info("http listening", "addr", l.Addr().String())
		go func() {
			if err := httpSrv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
				httpErr <- err
			}
		}()
	}
	stopHTTP := func(ctx context.Context) {
		if httpSrv != nil {
			httpSrv.Shutdown(ctx)
		}
	}

	// Answering before the sources have listed would give NXDOMAIN for
	// services that exist, which clients cache: wait for them, a while.
	if !waitReady(ctx, handler, cfg.DNS.StartupWait, log) && ctx.Err() != nil {
		cancel()
		stopHTTP(context.Background())
		wg.Wait()
		return nil
	}
	dnsSrv, err := dnsserver.Listen(dnsserver.ListenConfig{
		Addrs:             cfg.DNS.Listen,
		TCPIdleTimeout:    cfg.DNS.TCPIdleTimeout,
		MaxTCPConnections: cfg.DNS.MaxTCPConnections,
	}, handler, dnsMetrics, log)
	if err != nil {
		cancel()
		stopHTTP(context.Background())
		wg.Wait()
		return err
	}
	dnsUp.Store(true)

	var runErr error
wait:
	for {
		select {
		case <-ctx.Done():
			log.Info("shutting down: draining in-flight queries")
			break wait
		case <-hup:
			log.Info("SIGHUP: reloading the configuration")
			reloads.reload()
		case err := <-dnsSrv.Errors():
			runErr = fmt.Errorf("dns server: %w", err)
			break wait
		case err := <-httpErr:
			runErr = fmt.Errorf("http server: %w", err)
			break wait
		}
	}
	drain, cancelDrain := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancelDrain()
	if err := dnsSrv.Shutdown(drain); err != nil {
		log.Warn("dns shutdown", "err", err)
	}
	stopHTTP(drain)
	cancel()
	wg.Wait()
	return runErr
}

// newSource builds the watcher for one configured source.
func newSource(sc config.Source, metrics *watcher.Metrics, log *slog.Logger) (watcher.Source, error) {
	switch sc.Type {
	case "etcd":
		return etcd.New(etcd.Config{
			Name:           sc.Name,
			Endpoints:      sc.Endpoints,
			Prefix:         sc.Prefix,
			Format:         sc.Format,
			Zone:           sc.Zone,
			Username:       sc.Username,
			Password:       string(sc.Password),
			DialTimeout:    sc.DialTimeout,
			ResyncInterval: sc.ResyncInterval,
		}, metrics, log)
	case "consul":
		return consul.New(consul.Config{
			Name:           sc.Name,
			Address:        sc.Address,
			Datacenter:     sc.Datacenter,
			Token:          string(sc.Token),
			CAFile:         sc.CAFile,
			CertFile:       sc.CertFile,
			KeyFile:        sc.KeyFile,
			IncludeWarning: sc.IncludeWarning,
			Tags:           sc.Tags,
			MaxConnections: sc.MaxConnections,
			RateLimit:      sc.RateLimit,
			ResyncInterval: sc.ResyncInterval,
		}, metrics, log)
	case "zookeeper":
		return zookeeper.New(zookeeper.Config{
			Name:           sc.Name,
			Servers:        sc.Servers,
			Prefix:         sc.Prefix,
			Format:         sc.Format,
			SessionTimeout: sc.SessionTimeout,
			Auth:           string(sc.Auth),
		}, metrics, log)
	default:
		return nil, fmt.Errorf("source %q: type %s is not supported by this build yet", sc.Name, sc.Type)
	}
}

// waitReady waits until answers come from a snapshot in which every source
// has listed, at most for wait. It reports whether that happened.
func waitReady(ctx context.Context, handler *dnsserver.Handler, wait time.Duration, log *slog.Logger) bool {
	deadline := time.Now().Add(wait)
	logged := false
	for !handler.Ready() {
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
