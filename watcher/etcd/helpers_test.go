package etcd

import (
	"context"
	"log/slog"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/discodns/discodns/cache"
	"github.com/discodns/discodns/config"
	"github.com/discodns/discodns/etcdembed"
	"github.com/discodns/discodns/watcher"
	"github.com/discodns/discodns/watcher/internal/watchertest"
)

// startEtcd starts an embedded etcd that the test closes when it ends.
func startEtcd(t *testing.T) *etcdembed.Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := etcdembed.Start(ctx, etcdembed.Options{Dir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return srv
}

// newClient returns an etcd client for the test's own reads and writes.
func newClient(t *testing.T, endpoints []string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

func newHarness(t *testing.T, cfg Config) *watchertest.Harness {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "etcd"
	}
	if cfg.Prefix == "" && cfg.Format != "gozero" {
		cfg.Prefix = "/services"
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = config.DefaultSource(config.TypeEtcd).DialTimeout
	}
	return watchertest.New(t, cfg.Name, func(m *watcher.Metrics, log *slog.Logger) (watcher.Source, error) {
		return New(cfg, m, log)
	})
}

func put(t *testing.T, cli *clientv3.Client, key, value string, opts ...clientv3.OpOption) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, key, value, opts...); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

func del(t *testing.T, cli *clientv3.Client, key string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Delete(ctx, key); err != nil {
		t.Fatalf("delete %s: %v", key, err)
	}
}

// listedRun returns a run of the harness's source writing to sink,
// connected and listed once, and the revision listed; its client is
// closed when the test ends.
func listedRun(ctx context.Context, t *testing.T, h *watchertest.Harness, sink cache.Sink) (*run, int64) {
	t.Helper()
	r := h.Src.(*Source).newRun(sink)
	cli, err := r.connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	r.cli = cli
	rev, ok := r.list(ctx, watcher.ReasonInitial)
	if !ok {
		t.Fatal("list failed")
	}
	return r, rev
}
