package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"syscall"
	"time"

	"github.com/discodns/discodns/config"
	"github.com/discodns/discodns/layouts"
)

// runLayouts is `discodns layouts`: it scans the registries named by its
// flags and prints the layouts found and the [[source]] blocks that serve
// them.
func runLayouts(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("discodns layouts", flag.ContinueOnError)
	fs.SetOutput(stderr)
	etcdAddr := fs.String("etcd", "", "scan the etcd at `host:port`")
	zkAddr := fs.String("zookeeper", "", "scan the ZooKeeper server at `host:port`")
	consulAddr := fs.String("consul", "", "scan the Consul agent at `host:port`")
	maxEntries := fs.Int("max-keys", 10000, "read at most this many `entries` of each registry (etcd keys, ZooKeeper nodes, Consul instances)")
	timeout := fs.Duration("timeout", 5*time.Second, "time limit of the scan of each registry")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: discodns layouts [-etcd HOST:PORT] [-zookeeper HOST:PORT] [-consul HOST:PORT] [flags]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	switch {
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "discodns layouts: unexpected argument %q\n", fs.Arg(0))
		return 2
	case *etcdAddr == "" && *zkAddr == "" && *consulAddr == "":
		fmt.Fprintln(stderr, "discodns layouts: name a registry: -etcd, -zookeeper or -consul")
		fs.Usage()
		return 2
	case *maxEntries < 1 || *maxEntries > 1000000:
		fmt.Fprintf(stderr, "discodns layouts: -max-keys must be 1 to 1000000, got %d\n", *maxEntries)
		return 2
	case *timeout <= 0 || *timeout > time.Hour:
		fmt.Fprintf(stderr, "discodns layouts: -timeout must be more than 0 and at most 1h, got %v\n", *timeout)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	lim := layouts.Limits{MaxEntries: *maxEntries, Timeout: *timeout}
	table := layouts.Table()
	status := 0
	for _, r := range []struct {
		typ, addr string
		scan      func(context.Context, string, layouts.Limits) (layouts.Scan, error)
	}{
		{config.TypeEtcd, *etcdAddr, layouts.ScanEtcd},
		{config.TypeZooKeeper, *zkAddr, layouts.ScanZooKeeper},
		{config.TypeConsul, *consulAddr, layouts.ScanConsul},
	} {
		if r.addr == "" {
			continue
		}
		s, err := r.scan(ctx, r.addr, lim)
		if err != nil {
			fmt.Fprintln(stderr, "discodns layouts:", err)
			status = 1
			if len(s.Entries) == 0 {
				continue
			}
		}
		layouts.Print(stdout, layouts.Registry{Type: r.typ, Address: r.addr},
			layouts.Find(table, r.typ, s.Entries), len(s.Entries), s.Truncated)
		fmt.Fprintln(stdout)
	}
	return status
}
