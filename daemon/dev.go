package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/discodns/discodns/config"
	"github.com/discodns/discodns/etcdembed"
)

// devEtcdAddr is where -dev's etcd listens when the port is free, so the
// printed etcdctl line works as is.
const devEtcdAddr = "127.0.0.1:2379"

// StartDev starts an embedded etcd, points cfg at it, registers a demo
// instance and prints what a newcomer can paste. The returned func stops
// etcd and removes its data.
func StartDev(ctx context.Context, cfg *config.Config, out io.Writer, log *slog.Logger) (func(), error) {
	dir, err := os.MkdirTemp("", "discodns-dev-etcd")
	if err != nil {
		return nil, err
	}
	quiet := log.With("component", "etcd")
	srv, err := etcdembed.Start(ctx, etcdembed.Options{Dir: dir, ClientAddr: devEtcdAddr, Logger: quiet})
	if err != nil {
		// 2379 is taken (a real etcd?): use any free port instead.
		srv, err = etcdembed.Start(ctx, etcdembed.Options{Dir: dir, Logger: quiet})
	}
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("embedded etcd: %w", err)
	}
	cleanup := func() {
		srv.Close()
		os.RemoveAll(dir)
	}
	endpoint := srv.Endpoints()[0]
	src := config.DefaultSource("etcd")
	src.Name = "etcd"
	src.Endpoints = []string{endpoint}
	src.Zone = cfg.DNS.Zone
	cfg.Sources = []config.Source{src}

	cli, err := clientv3.New(clientv3.Config{Endpoints: srv.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		cleanup()
		return nil, err
	}
	defer cli.Close()
	putCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := cli.Put(putCtx, src.Prefix+"/demo/127.0.0.1:8080", `{"weight":10,"tags":["blue"],"meta":{"owner":"you"}}`); err != nil {
		cleanup()
		return nil, fmt.Errorf("register demo instance: %w", err)
	}

	host, port, _ := net.SplitHostPort(cfg.DNS.Listen[0])
	zone := cfg.DNS.Zone
	fmt.Fprintf(out, `discodns -dev: embedded etcd at %[1]s, DNS on %[2]s, HTTP on %[3]s
A demo instance is registered. Try:
  dig @%[4]s -p %[5]s SRV _demo._tcp.%[6]s
  dig @%[4]s -p %[5]s A demo.%[6]s
  dig @%[4]s -p %[5]s TXT 127-0-0-1-8080.demo.%[6]s
Register your own (etcdctl from the etcd-client package) and look it up:
  etcdctl --endpoints=%[1]s put %[7]s/web/127.0.0.1:9000 '{"weight":5,"tags":["canary"]}'
  dig @%[4]s -p %[5]s SRV web.%[6]s
  curl http://%[3]s/v1/services
`, endpoint, cfg.DNS.Listen[0], cfg.HTTP.Listen, host, port, zone, src.Prefix)
	return cleanup, nil
}
