// Package etcdembed runs a single-member etcd server inside the process, on
// loopback, for discodns -dev, tests and benchmarks.
//
// The server trades durability for speed: it never fsyncs and never
// compacts on its own. It is not meant to hold data anyone cares about.
package etcdembed

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"sync"
	"sync/atomic"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap/zapcore"
)

// memberName is the name of the only member; a restart on the same data
// directory must use the same name.
const memberName = "discodns"

// Options configure Start.
type Options struct {
	// Dir is the data directory. Empty means a new temporary directory,
	// which Close keeps; Options reports where it is.
	Dir string
	// ClientAddr and PeerAddr are loopback host:port addresses to listen
	// on. Empty means a free loopback port.
	ClientAddr, PeerAddr string
	// Logger receives etcd's errors; nil discards them.
	Logger *slog.Logger
}

// Server is a running embedded etcd.
type Server struct {
	opts      Options
	etcd      *embed.Etcd
	closeOnce sync.Once
	// closing silences etcd's log: stopping makes every listener and
	// server report an error.
	closing atomic.Bool
}

// Start starts an etcd server and waits until it serves clients or ctx is
// done. To restart a closed server on the same ports and data, call Start
// with the closed server's Options.
func Start(ctx context.Context, opts Options) (*Server, error) {
	var err error
	if opts.Dir == "" {
		if opts.Dir, err = os.MkdirTemp("", "discodns-etcd-"); err != nil {
			return nil, fmt.Errorf("etcd data dir: %w", err)
		}
	}
	if opts.ClientAddr, err = loopbackAddr(opts.ClientAddr); err != nil {
		return nil, fmt.Errorf("etcd client address: %w", err)
	}
	if opts.PeerAddr, err = loopbackAddr(opts.PeerAddr); err != nil {
		return nil, fmt.Errorf("etcd peer address: %w", err)
	}

	s := &Server{opts: opts}
	e, err := embed.StartEtcd(config(opts, &s.closing))
	if err != nil {
		return nil, fmt.Errorf("start etcd on %s: %w", opts.ClientAddr, err)
	}
	select {
	case <-e.Server.ReadyNotify():
		s.etcd = e
		return s, nil
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("start etcd on %s: %w", opts.ClientAddr, err)
	case <-e.Server.StopNotify():
		e.Close()
		return nil, fmt.Errorf("start etcd on %s: server stopped before it was ready", opts.ClientAddr)
	case <-ctx.Done():
		e.Close()
		return nil, fmt.Errorf("start etcd on %s: %w", opts.ClientAddr, ctx.Err())
	}
}

// config builds the embed configuration for a single loopback member.
func config(opts Options, mute *atomic.Bool) *embed.Config {
	cfg := embed.NewConfig()
	cfg.Name = memberName
	cfg.Dir = opts.Dir
	client := url.URL{Scheme: "http", Host: opts.ClientAddr}
	peer := url.URL{Scheme: "http", Host: opts.PeerAddr}
	cfg.ListenClientUrls = []url.URL{client}
	cfg.AdvertiseClientUrls = []url.URL{client}
	cfg.ListenPeerUrls = []url.URL{peer}
	cfg.AdvertisePeerUrls = []url.URL{peer}
	cfg.InitialCluster = memberName + "=" + peer.String()
	// A restart binds the same ports at once, while old connections may
	// still be in TIME_WAIT.
	cfg.SocketOpts = transport.SocketOpts{ReuseAddress: true}

	// One member elects itself; short ticks make start-up quick and keep
	// the request timeout (5 s plus two election timeouts), which bounds
	// how long Close waits for open watch streams, near its minimum.
	cfg.TickMs = 10
	cfg.ElectionMs = 100
	cfg.UnsafeNoFsync = true
	cfg.AutoCompactionRetention = "0"
	cfg.SnapshotCount = 10000

	cfg.Logger = "zap"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(newZapLogger(opts.Logger, zapcore.ErrorLevel, mute))
	return cfg
}

// loopbackAddr returns addr, or a free port on 127.0.0.1 when addr is
// empty. The port is free when checked; another process could take it
// before etcd binds it, which Start then reports.
func loopbackAddr(addr string) (string, error) {
	if addr != "" {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return "", err
		}
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			return "", fmt.Errorf("%s is not a loopback address", addr)
		}
		return addr, nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// Endpoints returns the client addresses (host:port) to give to an etcd
// client.
func (s *Server) Endpoints() []string { return []string{s.opts.ClientAddr} }

// Options returns the options the server runs with, with the data directory
// and ports filled in; Start(ctx, s.Options()) restarts a closed server.
func (s *Server) Options() Options { return s.opts }

// Close stops the server and waits until its ports are released. It keeps
// the data directory. Open watch streams can make it wait up to the
// request timeout (about 5 s). Closing a closed server does nothing.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		s.closing.Store(true)
		s.etcd.Close()
	})
}
