// Package zookeeper mirrors a ZooKeeper tree into the table: the Source,
// and the decoders of the layouts only ZooKeeper holds (curator,
// serverset). The discox layout, which etcd holds too, is decoded by
// watcher.DecodeDiscox.
package zookeeper

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/discodns/discodns/cache"
	"github.com/discodns/discodns/watcher"
)

// reasonSession is the relist reason for a new ZooKeeper session (after
// the previous one expired).
const reasonSession = "session"

// listWorkers bounds the concurrent requests of a full list; the client
// pipelines them on its one connection.
const listWorkers = 16

// Config configures a ZooKeeper source, as a config.Source of type
// zookeeper says: config owns each setting's default and check.
type Config struct {
	// Name names the source in the table, in metrics and in logs.
	Name string
	// Servers are the ZooKeeper servers, host:port.
	Servers []string
	// Prefix is the path whose children are services; no trailing slash,
	// or "/" for the root, where ZooKeeper's own /zookeeper is skipped.
	Prefix string
	// Format is the layout: "discox" (the default), "curator",
	// "serverset", "dubbo" (instances are the children of
	// <prefix>/<service>/providers; the root is refused) or "kratos".
	Format string
	// SessionTimeout is the requested session timeout; > 0.
	SessionTimeout time.Duration
	// Auth is a digest credential "user:password", or "".
	Auth string
}

// Source is a watcher.Source that mirrors the tree
// <prefix>/<service>/<instance>, or <prefix>/<service>/providers/<instance>
// for the dubbo layout.
//
// go-zookeeper has no persistent watches, so the source arms one-shot
// watches (children of the prefix and of every service, data of every
// instance) and re-arms each one when it fires. Every event, session
// events included, arrives through the client's event callback, which never
// drops one (the client's global event channel does), and is handled in
// order by one goroutine. On every new session (the first, and after an
// expiry) it lists the whole tree again, arming fresh watches, and replaces
// the source's instances. While disconnected the source is stale and keeps
// its instances; on a reconnect within the same session the client re-sets
// the watches and the server fires those whose nodes changed meanwhile.
type Source struct {
	cfg    Config
	decode watcher.Decoder
	member func(node string) bool // which children of a service are instances
	// sub is the node below a service whose children are its instances
	// ("providers" for dubbo), or "" when they are the service's own.
	sub     string
	metrics *watcher.Metrics
	log     *slog.Logger
}

// New checks cfg and returns a ZooKeeper source. metrics may be
// nil; log nil means slog.Default().
func New(cfg Config, metrics *watcher.Metrics, log *slog.Logger) (*Source, error) {
	if cfg.Name == "" {
		return nil, errors.New("zookeeper source: no name")
	}
	if len(cfg.Servers) == 0 {
		return nil, fmt.Errorf("zookeeper source %s: no servers", cfg.Name)
	}
	if cfg.Prefix != "/" {
		cfg.Prefix = strings.TrimRight(cfg.Prefix, "/")
	}
	if !strings.HasPrefix(cfg.Prefix, "/") {
		return nil, fmt.Errorf("zookeeper source %s: prefix %q must start with /", cfg.Name, cfg.Prefix)
	}
	if cfg.SessionTimeout <= 0 {
		return nil, fmt.Errorf("zookeeper source %s: session timeout %v, want more than 0", cfg.Name, cfg.SessionTimeout)
	}
	if log == nil {
		log = slog.Default()
	}
	z := &Source{cfg: cfg, member: func(string) bool { return true }, metrics: metrics, log: log.With("source", cfg.Name)}
	switch cfg.Format {
	case "", "discox":
		z.decode = watcher.DecodeDiscox
	case "curator":
		z.decode = DecodeCurator
	case "serverset":
		z.decode = DecodeServerset
		z.member = IsServersetMember
	case "dubbo":
		if cfg.Prefix == "/" {
			return nil, fmt.Errorf("zookeeper source %s: format dubbo reads a group's root such as /dubbo, not /", cfg.Name)
		}
		z.decode, z.sub = watcher.DecodeDubbo, watcher.DubboProviders
	case "kratos":
		z.decode = watcher.DecodeKratos
	default:
		return nil, fmt.Errorf("zookeeper source %s: unknown format %q", cfg.Name, cfg.Format)
	}
	z.decode = watcher.LimitSize(z.decode)
	return z, nil
}

// Name implements watcher.Source.
func (z *Source) Name() string { return z.cfg.Name }

// isService reports whether a child of the prefix is a service: all are
// but ZooKeeper's own /zookeeper when the prefix is the root.
func (z *Source) isService(name string) bool {
	return z.cfg.Prefix != "/" || name != "zookeeper"
}

// dir is the node whose children are svc's instances.
func (z *Source) dir(svc string) string { return path.Join(z.cfg.Prefix, svc, z.sub) }

// locate places a watched path: the prefix (svc and node ""), a service's
// instance directory (node "") or an instance node. ok is false for any
// other path.
func (z *Source) locate(p string) (svc, node string, ok bool) {
	if p == z.cfg.Prefix {
		return "", "", true
	}
	rel, ok := strings.CutPrefix(p, strings.TrimSuffix(z.cfg.Prefix, "/")+"/")
	if !ok {
		return "", "", false
	}
	parts := strings.Split(rel, "/")
	if z.sub != "" {
		if len(parts) < 2 || parts[1] != z.sub {
			return "", "", false
		}
		parts = append(parts[:1], parts[2:]...)
	}
	if parts[0] == "" || !z.isService(parts[0]) {
		return "", "", false
	}
	switch {
	case len(parts) == 1:
		return parts[0], "", true
	case len(parts) == 2 && parts[1] != "":
		return parts[0], parts[1], true
	}
	return "", "", false
}

// Run implements watcher.Source.
func (z *Source) Run(ctx context.Context, sink cache.Sink) error {
	z.metrics.InitSource(z.cfg.Name, watcher.ReasonInitial, reasonSession, watcher.ReasonError)
	r := z.newRun(sink)
	conn, _, err := zk.Connect(z.cfg.Servers, z.cfg.SessionTimeout,
		zk.WithEventCallback(r.events.push),
		zk.WithLogger(zkLogger{z.log}),
		zk.WithMaxBufferSize(16<<20))
	if err != nil {
		return fmt.Errorf("zookeeper %v: %w", z.cfg.Servers, err)
	}
	defer conn.Close()
	if z.cfg.Auth != "" {
		if err := conn.AddAuth("digest", []byte(z.cfg.Auth)); err != nil {
			return fmt.Errorf("zookeeper %v: auth: %w", z.cfg.Servers, err)
		}
	}
	r.conn = conn
	r.loop(ctx)
	return nil
}

func (z *Source) newRun(sink cache.Sink) *run {
	return &run{
		z:        z,
		sink:     sink,
		events:   newEventQueue(),
		services: map[string]map[string]cache.Instance{},
		outage:   &watcher.Outage{Source: z.cfg.Name, Sink: sink, Metrics: z.metrics},
		decodes: &watcher.DecodeLog{Source: z.cfg.Name, Metrics: z.metrics, Log: z.log,
			Msg: "skipping registry entry that does not decode"},
	}
}

// zkLogger sends the client's own messages to slog at debug level.
type zkLogger struct{ log *slog.Logger }

func (l zkLogger) Printf(format string, args ...any) {
	l.log.Debug(fmt.Sprintf(format, args...), "component", "zk")
}
