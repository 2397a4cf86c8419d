// Command benchetcd is the registry of test/bench/cores.sh: an embedded
// etcd holding the data of BenchmarkCompareDNS (test/compare_bench_test.go),
// 100 services of 10 instances in the skydns layout under /skydns, served
// until SIGINT or SIGTERM.
//
//	benchetcd -addr 127.0.0.1:23790
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/discodns/discodns/etcdembed"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:23790", "etcd client `address`")
	flag.Parse()
	if err := run(*addr); err != nil {
		fmt.Fprintln(os.Stderr, "benchetcd:", err)
		os.Exit(1)
	}
}

func run(addr string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	dir, err := os.MkdirTemp("", "benchetcd-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	srv, err := etcdembed.Start(ctx, etcdembed.Options{Dir: dir, ClientAddr: addr})
	if err != nil {
		return err
	}
	defer srv.Close()
	cli, err := clientv3.New(clientv3.Config{Endpoints: srv.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		return err
	}
	defer cli.Close()
	for s := range 100 {
		for i := range 10 {
			// As compareInstance in test/compare_bench_test.go.
			key := fmt.Sprintf("/skydns/internal/svc/svc-%d/i%d", s, i)
			value := fmt.Sprintf(`{"host":"10.%d.%d.%d","port":%d}`, 1+s/250, s%250, i+1, 8000+i)
			if _, err := cli.Put(ctx, key, value); err != nil {
				return fmt.Errorf("put %s: %w", key, err)
			}
		}
	}
	fmt.Println("ready", addr)
	<-ctx.Done()
	return nil
}
