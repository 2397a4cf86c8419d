// Package etcd mirrors an etcd key prefix into the table: the Source, and
// the decoders of the layouts only etcd holds (grpc, skydns, gozero,
// gomicro, rpcx, kitex). The discox and kratos layouts, which ZooKeeper
// holds too, are decoded in package watcher.
package etcd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/discodns/discodns/cache"
	"github.com/discodns/discodns/watcher"
)

// Re-list reasons of etcd alone (see watcher.ReasonInitial for the
// others).
const (
	// reasonCompacted: the watch start revision had been compacted away.
	reasonCompacted = "compacted"
	// reasonWatchClosed: the watch ended without an error.
	reasonWatchClosed = "watch_closed"
)

const (
	// listTimeout bounds one Get of the whole prefix once connected.
	listTimeout = 30 * time.Second
	// A connection that silently stops carrying packets (no RST, no FIN)
	// is declared dead after keepAliveTime plus keepAliveTimeout. etcd
	// refuses pings more often than every 5 s by default.
	keepAliveTime    = 10 * time.Second
	keepAliveTimeout = 5 * time.Second
)

// Config configures an etcd source, as a config.Source of type etcd
// says: config owns each setting's default and check.
type Config struct {
	// Name names the source in the table, in metrics and in logs.
	Name string
	// Endpoints are the etcd client addresses, host:port or URLs.
	Endpoints []string
	// Prefix is the key prefix that holds the services; a trailing slash
	// is optional ("/services" and "/services/" are the same and neither
	// matches "/services2/..."). Only format gozero takes "": the whole
	// keyspace.
	Prefix string
	// Format is the data layout: "discox" (the default when empty),
	// "grpc", "skydns" (CoreDNS etcd plugin records; needs Zone), "dubbo"
	// (<prefix>/<interface>/providers/<provider URL>), "gozero", "kratos",
	// "gomicro", "rpcx" or "kitex".
	Format string
	// Zone is the source's zone: the skydns layout reads the names of
	// services from the keys below it.
	Zone string
	// Username and Password enable etcd authentication when both are set.
	Username, Password string
	// DialTimeout bounds connecting and authenticating; > 0.
	DialTimeout time.Duration
	// ResyncInterval is how often the source re-lists the prefix even when
	// the watch looks healthy, since etcd has lost watch events in real
	// bugs. Zero or less disables it.
	ResyncInterval time.Duration
}

// Source is a watcher.Source that mirrors one etcd key prefix.
//
// It lists the prefix, replaces the source's instances in the sink, and
// watches from the revision after the list. It lists again, replacing
// everything, when the watch's revision was compacted, when the watch ends
// or fails, after the connection to etcd was lost, and every
// ResyncInterval. While etcd is unreachable it marks the source stale and
// keeps the last instances in the sink.
type Source struct {
	cfg    Config
	prefix string // with a trailing slash
	decode watcher.Decoder
	// split turns a key into service and id; errOtherKey for a key that
	// is not the source's, another error for a malformed one.
	split          func(key string) (service, id string, err error)
	metrics        *watcher.Metrics
	backlogMetrics backlogMetrics
	// maxBacklog bounds the events read ahead of the table (maxBacklog
	// but in tests).
	maxBacklog int
	log        *slog.Logger
}

// New checks cfg and returns an etcd source. metrics may be nil; log
// nil means slog.Default().
func New(cfg Config, metrics *watcher.Metrics, log *slog.Logger) (*Source, error) {
	if cfg.Name == "" {
		return nil, errors.New("etcd source: no name")
	}
	if len(cfg.Endpoints) == 0 {
		return nil, fmt.Errorf("etcd source %s: no endpoints", cfg.Name)
	}
	if cfg.Prefix == "" && cfg.Format != "gozero" {
		return nil, fmt.Errorf("etcd source %s: no prefix", cfg.Name)
	}
	if (cfg.Username == "") != (cfg.Password == "") {
		return nil, fmt.Errorf("etcd source %s: username and password must be set together", cfg.Name)
	}
	var decode watcher.Decoder
	switch cfg.Format {
	case "", "discox":
		decode = watcher.DecodeDiscox
	case "grpc":
		decode = DecodeGRPC
	case "skydns":
		if cfg.Zone == "" {
			return nil, fmt.Errorf("etcd source %s: format skydns needs the zone", cfg.Name)
		}
		decode = DecodeSkyDNS
	case "dubbo":
		decode = watcher.DecodeDubbo
	case "gozero":
		decode = DecodeGoZero
	case "kratos":
		decode = watcher.DecodeKratos
	case "gomicro":
		decode = DecodeGoMicro
	case "rpcx":
		decode = DecodeRPCX
	case "kitex":
		decode = DecodeKitex
	default:
		return nil, fmt.Errorf("etcd source %s: unknown format %q (want discox, grpc, skydns, dubbo, gozero, kratos, gomicro, rpcx or kitex)", cfg.Name, cfg.Format)
	}
	if cfg.DialTimeout <= 0 {
		return nil, fmt.Errorf("etcd source %s: dial timeout %v, want more than 0", cfg.Name, cfg.DialTimeout)
	}
	if log == nil {
		log = slog.Default()
	}
	metrics.InitSource(cfg.Name, watcher.ReasonInitial, reasonCompacted, reasonWatchClosed,
		watcher.ReasonReconnect, watcher.ReasonPeriodic, watcher.ReasonError)
	e := &Source{
		cfg:            cfg,
		prefix:         strings.TrimRight(cfg.Prefix, "/") + "/",
		decode:         watcher.LimitSize(decode),
		metrics:        metrics,
		backlogMetrics: newBacklogMetrics(metrics, cfg.Name),
		maxBacklog:     maxBacklog,
		log:            log.With("source", cfg.Name),
	}
	e.split = func(key string) (string, string, error) { return watcher.SplitKey(e.prefix, key) }
	switch cfg.Format {
	case "skydns":
		e.split = SkyDNSSplitter(e.prefix, cfg.Zone)
	case "dubbo":
		e.split = DubboSplitter(e.prefix)
	case "gozero":
		if cfg.Prefix == "" {
			e.prefix = ""
			e.decode = anyKeyspace(e.decode)
		}
		e.split = GoZeroSplitter(e.prefix)
	case "gomicro":
		e.decode = watcher.LimitSizeTo(decode, gomicroMaxValue)
	case "rpcx":
		e.split = rpcxSplitter(e.prefix)
	}
	return e, nil
}

// Name implements watcher.Source.
func (e *Source) Name() string { return e.cfg.Name }

// Run implements watcher.Source. It returns an error only when the etcd
// client cannot be configured; it retries everything else until ctx is
// done.
func (e *Source) Run(ctx context.Context, sink cache.Sink) error {
	r := e.newRun(sink)
	cli, err := r.connect(ctx)
	if err != nil || cli == nil {
		return err
	}
	defer cli.Close()
	r.cli = cli
	r.loop(ctx, watcher.ReasonInitial)
	return nil
}

func (e *Source) newRun(sink cache.Sink) *run {
	return &run{
		Source: e,
		sink:   sink,
		bo:     watcher.NewBackoff(watcher.MinBackoff, watcher.MaxBackoff),
		outage: &watcher.Outage{Source: e.cfg.Name, Sink: sink, Metrics: e.metrics, Log: e.log,
			Down:  "etcd source unavailable; serving its last known instances",
			Still: "etcd source still unavailable"},
		decodes: &watcher.DecodeLog{Source: e.cfg.Name, Metrics: e.metrics, Log: e.log,
			Msg: "skipping registry entry that does not decode"},
	}
}

// run is the state of one Run.
type run struct {
	*Source
	sink cache.Sink
	cli  *clientv3.Client
	bo   *watcher.Backoff
	// outage marks the source stale on a registry error; it logs once from
	// the first error until the next successful list.
	outage *watcher.Outage
	// decodes counts and logs a key that does not decode once, until it
	// decodes again, is deleted or a list no longer finds it; its keys
	// are in one group.
	decodes *watcher.DecodeLog
}

// loop lists, counted under reason, then follows the changes and lists
// again whenever follow asks to, until ctx is done.
func (r *run) loop(ctx context.Context, reason string) {
	for {
		r.metrics.Relist(r.cfg.Name, reason)
		rev, ok := r.list(ctx, reason)
		if !ok {
			return
		}
		reason = r.follow(ctx, rev)
		if ctx.Err() != nil {
			return
		}
		if reason == watcher.ReasonError || reason == reasonWatchClosed {
			// A watch that keeps failing must not turn into a busy loop
			// of lists.
			if !r.bo.Wait(ctx) {
				return
			}
		}
	}
}
