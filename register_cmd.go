package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/discodns/discodns/config"
	"github.com/discodns/discodns/register"
	"github.com/discodns/discodns/registry"
)

// metaFlag collects repeated -meta key=value flags.
type metaFlag map[string]string

func (m metaFlag) String() string { return fmt.Sprint(map[string]string(m)) }

func (m metaFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q: want key=value", s)
	}
	m[k] = v
	return nil
}

// runRegister is `discodns register`: it keeps one instance registered
// until SIGTERM or SIGINT, then deregisters it.
func runRegister(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("discodns register", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "take the registry's address from this configuration `file` (its first source of the -source type, or -source-name)")
	sourceType := fs.String("source", "", "registry `type`: etcd, consul or zookeeper (required)")
	sourceName := fs.String("source-name", "", "with -config, the `name` of the source to take the address from")
	endpoints := fs.String("endpoints", "", "etcd endpoints, comma-separated `host:port` list")
	address := fs.String("address", "", "Consul agent `address` (host:port or URL)")
	servers := fs.String("servers", "", "ZooKeeper servers, comma-separated `host:port` list")
	prefix := fs.String("prefix", "", "etcd key or ZooKeeper node `prefix` (default from the config, else /services)")
	service := fs.String("service", "", "service `name` (required)")
	addr := fs.String("addr", "", "the instance's `host:port` (required)")
	ttl := fs.Duration("ttl", 10*time.Second, "how long the registry keeps the instance after this process dies (etcd lease, Consul TTL check)")
	weight := fs.Int("weight", 0, "SRV `weight` (0: the registry's default)")
	tags := fs.String("tags", "", "comma-separated `tags`")
	check := fs.String("check", "", "Consul: an HTTP `URL` the agent polls instead of a TTL check")
	meta := metaFlag{}
	fs.Var(meta, "meta", "metadata `key=value` (repeatable)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: discodns register -source etcd|consul|zookeeper -service NAME -addr HOST:PORT [flags]")
		fs.PrintDefaults()
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "discodns register: "+format+"\n", a...)
		return 2
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		return fail("unexpected argument %q", fs.Arg(0))
	}
	host, port, err := net.SplitHostPort(*addr)
	if *addr == "" || err != nil {
		return fail("-addr %q: want host:port", *addr)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return fail("-addr %q: port %q is not a number", *addr, port)
	}
	in := register.Instance{Service: *service, Host: host, Port: p, TTL: *ttl, Weight: *weight, Meta: meta, Check: *check}
	if *tags != "" {
		in.Tags = strings.Split(*tags, ",")
	}
	if err := in.Validate(); err != nil {
		return fail("%v", err)
	}

	src := config.DefaultSource(*sourceType)
	switch *sourceType {
	case config.TypeEtcd, config.TypeConsul, config.TypeZooKeeper:
	case "":
		return fail("-source is required: etcd, consul or zookeeper")
	default:
		return fail("-source %q: want etcd, consul or zookeeper", *sourceType)
	}
	if *configPath != "" {
		cfg, err := config.Load(*configPath)
		if err != nil {
			return fail("%v", err)
		}
		found := false
		for _, s := range cfg.Sources {
			if s.Type == *sourceType && (*sourceName == "" || s.Name == *sourceName) {
				src, found = s, true
				break
			}
		}
		if !found {
			return fail("%s has no %s source%s", *configPath, *sourceType, map[bool]string{true: " named " + *sourceName}[*sourceName != ""])
		}
	}
	if *prefix != "" {
		src.Prefix = *prefix
	}
	if *check != "" && *sourceType != config.TypeConsul {
		return fail("-check is for -source consul only")
	}
	if src.Format != "" && src.Format != config.FormatDiscox && *sourceType != config.TypeConsul {
		return fail("the %s source reads format %q; register writes the discox layout", *sourceType, src.Format)
	}

	switch {
	case *endpoints != "" && *sourceType == config.TypeEtcd:
		src.Endpoints = strings.Split(*endpoints, ",")
	case *address != "" && *sourceType == config.TypeConsul:
		src.Address = *address
	case *servers != "" && *sourceType == config.TypeZooKeeper:
		src.Servers = strings.Split(*servers, ",")
	}
	typ, err := registry.Lookup(*sourceType)
	if err != nil {
		return fail("-source %q: %v", *sourceType, err)
	}
	r := typ.NewRegistrar(src, config.Log{Level: "info"}.NewLogger(stderr))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := r.Keep(ctx, in); err != nil {
		fmt.Fprintln(stderr, "discodns register:", err)
		return 1
	}
	return 0
}
