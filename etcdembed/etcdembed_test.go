package etcdembed

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

func TestStartStopRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	log := slog.New(slog.DiscardHandler)

	srv, err := Start(ctx, Options{Dir: t.TempDir(), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	opts := srv.Options()
	if opts.ClientAddr == "" || opts.PeerAddr == "" || opts.ClientAddr == opts.PeerAddr {
		t.Fatalf("addresses not filled in: %+v", opts)
	}
	put(ctx, t, srv, "/k", "v1")
	srv.Close()

	// Same options: same ports and data, at once.
	srv, err = Start(ctx, opts)
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	if got := srv.Options(); got.ClientAddr != opts.ClientAddr || got.PeerAddr != opts.PeerAddr {
		t.Fatalf("restart moved: %+v, want %+v", got, opts)
	}
	if got := get(ctx, t, srv, "/k"); got != "v1" {
		t.Fatalf("after restart /k = %q, want v1", got)
	}
	srv.Close()
}

func TestStartRejectsNonLoopback(t *testing.T) {
	_, err := Start(context.Background(), Options{Dir: t.TempDir(), ClientAddr: "0.0.0.0:2379"})
	if err == nil {
		t.Fatal("Start accepted a wildcard client address")
	}
}

// TestStartCanceled: a context canceled before the server is ready makes
// Start fail with the context's error and leaves no server running: its
// ports are free again.
func TestStartCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var opts Options
	for _, addr := range []*string{&opts.ClientAddr, &opts.PeerAddr} {
		var err error
		if *addr, err = loopbackAddr(""); err != nil {
			t.Fatal(err)
		}
	}
	opts.Dir = t.TempDir()
	// Election takes a few ticks, so the canceled context wins.
	srv, err := Start(ctx, opts)
	if err == nil {
		srv.Close()
		t.Fatal("Start with a canceled context returned a server")
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want context.Canceled", err)
	}
	for _, addr := range []string{opts.ClientAddr, opts.PeerAddr} {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Errorf("%s still taken after a canceled Start: %v", addr, err)
			continue
		}
		l.Close()
	}
}

func client(t *testing.T, srv *Server) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: srv.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

func put(ctx context.Context, t *testing.T, srv *Server, key, value string) {
	t.Helper()
	if _, err := client(t, srv).Put(ctx, key, value); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

func get(ctx context.Context, t *testing.T, srv *Server, key string) string {
	t.Helper()
	resp, err := client(t, srv).Get(ctx, key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	if len(resp.Kvs) != 1 {
		t.Fatalf("get %s: %d values", key, len(resp.Kvs))
	}
	return string(resp.Kvs[0].Value)
}
