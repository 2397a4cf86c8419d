package test

import (
	"context"
	"fmt"
	"io"
	"log"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/proxy/grpcproxy"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/discodns/discodns/test/registries"
)

// consulCounter is an HTTP proxy in front of a Consul agent that counts
// the answers passing through it: those an agent gives from its streaming
// views (?cached, or a blocking query on /v1/health/service) and those it
// gets by RPCs to the servers (every other one). A blocking query whose
// wait ended with no change (the same index as asked) is counted apart:
// it is the periodic cost of following, not the cost of a change. It is
// what reaches the registry, counted outside discodns.
type consulCounter struct {
	srv       *httptest.Server
	mu        sync.Mutex
	paths     map[string]int // first two path elements after /v1/ -> answers from the servers
	servers   atomic.Int64   // answers the agent got by RPCs to the servers
	views     atomic.Int64   // answers the agent gave from its views
	expired   atomic.Int64   // blocking queries that ended with no change
	streaming atomic.Int64   // answers that say X-Consul-Query-Backend: streaming
	bytes     atomic.Int64   // bytes of the counted answers' bodies
}

// countingBody counts the bytes read from a body.
type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

// startConsulCounter starts a counting proxy in front of the agent at addr
// and stops it when the test ends.
func startConsulCounter(t testing.TB, addr string) *consulCounter {
	t.Helper()
	target, err := url.Parse("http://" + addr)
	if err != nil {
		t.Fatal(err)
	}
	c := &consulCounter{paths: map[string]int{}}
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ErrorLog = log.New(io.Discard, "", 0) // blocking queries cut short when discodns stops
	// A fleet shares this agent, where each discodns would have its own:
	// the proxy's connections come from 64 loopback addresses in turn, so
	// that the agent's limit per client address (200) is one discodns's.
	var turn atomic.Uint32
	proxy.Transport = &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			local := &net.TCPAddr{IP: net.IPv4(127, 0, 1, byte(1+turn.Add(1)%64))}
			return (&net.Dialer{LocalAddr: local}).DialContext(ctx, network, addr)
		},
		MaxIdleConnsPerHost: 1000,
	}
	proxy.ModifyResponse = func(resp *http.Response) error {
		r := resp.Request
		if resp.Header.Get("X-Consul-Query-Backend") == "streaming" {
			c.streaming.Add(1)
		}
		if index := r.URL.Query().Get("index"); index != "" && index == resp.Header.Get("X-Consul-Index") {
			c.expired.Add(1)
			return nil
		}
		resp.Body = countingBody{resp.Body, &c.bytes}
		if viewRead(r) {
			c.views.Add(1)
			return nil
		}
		c.servers.Add(1)
		parts := strings.SplitN(strings.TrimPrefix(r.URL.Path, "/v1/"), "/", 3)
		c.mu.Lock()
		c.paths[strings.Join(parts[:min(2, len(parts))], "/")]++
		c.mu.Unlock()
		return nil
	}
	c.srv = httptest.NewServer(proxy)
	t.Cleanup(c.srv.Close)
	return c
}

// viewRead reports whether an agent with the streaming backend answers r
// from its materialized view of a service rather than by an RPC.
func viewRead(r *http.Request) bool {
	q := r.URL.Query()
	_, cached := q["cached"]
	return strings.HasPrefix(r.URL.Path, "/v1/health/service/") && (cached || q.Get("index") != "")
}

// addr is the proxy's host:port.
func (c *consulCounter) addr() string { return strings.TrimPrefix(c.srv.URL, "http://") }

// serverPaths returns the requests to the servers by path since the last
// call, and forgets them.
func (c *consulCounter) serverPaths() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.paths
	c.paths = map[string]int{}
	return p
}

// cost runs change (which waits for its effect), waits until the agent is
// quiet again, and returns what passed meanwhile: the answers from the
// agent's views, and the requests to the servers, also by path.
func (c *consulCounter) cost(t testing.TB, change func()) (views, servers int64, paths map[string]int) {
	t.Helper()
	quiet(t, c)
	c.serverPaths()
	v, s := c.views.Load(), c.servers.Load()
	change()
	quiet(t, c)
	return c.views.Load() - v, c.servers.Load() - s, c.serverPaths()
}

// registerNodes registers nodes catalog nodes with an instance of web on
// each, port 8080, and of db on every tenth, through the catalog API.
func registerNodes(t testing.TB, client *api.Client, nodes int) {
	t.Helper()
	for n := range nodes {
		reg := &api.CatalogRegistration{
			Node: fmt.Sprintf("host-%d", n), Address: fmt.Sprintf("10.20.%d.%d", n/250, n%250+1),
			Service: &api.AgentService{ID: "web", Service: "web", Port: 8080},
		}
		if _, err := client.Catalog().Register(reg, nil); err != nil {
			t.Fatal(err)
		}
		if n%10 == 0 {
			reg.Service = &api.AgentService{ID: "db", Service: "db", Port: 5432}
			if _, err := client.Catalog().Register(reg, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// srvPort returns the port the SRV answer for name gives target, or 0.
func srvPort(d *discodns, name, target string) (uint16, error) {
	m, err := d.exchange(name, dns.TypeSRV, "tcp") // every record: UDP truncates
	if err != nil {
		return 0, err
	}
	for _, rr := range m.Answer {
		if srv, ok := rr.(*dns.SRV); ok && strings.HasPrefix(srv.Target, target) {
			return srv.Port, nil
		}
	}
	return 0, nil
}

// TestFleetConsulCostPerChange registers 80 nodes, runs discodns on the
// agent through a counting proxy, and changes one registration, then one
// check: what reaches the Consul servers for it must not grow with the
// nodes (the source listed every node's services on each change, 1 + nodes
// requests), and the agent answers the service reads from its streaming
// views. With max_connections = 3 no service is watched: with fewer
// services than nodes, the fallback reads every service from the views
// (TestFleetConsulUnwatchedChange has more) and follows the checks.
func TestFleetConsulCostPerChange(t *testing.T) {
	for _, tc := range []struct {
		maxConns int
		check    int64 // requests to the servers when a check changes
	}{
		{8, 0}, // every service watched: a watch sees its checks
		{3, 1}, // the blocking query on the checks returns and is made again
	} {
		t.Run(fmt.Sprintf("max_connections=%d", tc.maxConns), func(t *testing.T) {
			testFleetConsulCostPerChange(t, tc.maxConns, tc.check)
		})
	}
}

func testFleetConsulCostPerChange(t *testing.T, maxConns int, checkRequests int64) {
	const nodes = 80
	agent := registries.StartConsul(t)
	client := consulClient(t, agent)
	registerNodes(t, client, nodes)
	counter := startConsulCounter(t, agent.Addr())
	d := startDiscodns(t, consulConfig(counter.addr(), fmt.Sprintf("max_connections = %d", maxConns)))
	eventually(t, 30*time.Second, "web on every node", func() error {
		svcs, err := d.services()
		if err != nil || len(svcs["web.svc.internal."]) != nodes {
			return fmt.Errorf("web has %d instances, want %d (%v)", len(svcs["web.svc.internal."]), nodes, err)
		}
		return nil
	})

	for i, port := range []int{9001, 9002, 9003} {
		quiet(t, counter)
		counter.serverPaths()
		before := counter.servers.Load()
		host := fmt.Sprintf("host-%d", 7+i)
		_, err := client.Catalog().Register(&api.CatalogRegistration{
			Node: host, Address: fmt.Sprintf("10.20.0.%d", 8+i),
			Service: &api.AgentService{ID: "web", Service: "web", Port: port},
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, 30*time.Second, host+" web on its new port", func() error {
			if p, err := srvPort(d, "web.svc.internal.", host+"-web."); err != nil || int(p) != port {
				return fmt.Errorf("port %d, want %d (%v)", p, port, err)
			}
			return nil
		})
		quiet(t, counter)
		n := counter.servers.Load() - before
		paths := counter.serverPaths()
		t.Logf("change %d: %d requests to the servers through the agent %v", i+1, n, paths)
		// The service list's blocking query returns and is made again:
		// one or two requests, never one per node.
		if n > 4 {
			t.Errorf("one registration changed with %d nodes: %d requests reached the servers %v, want at most 4", nodes, n, paths)
		}
	}
	// A check change.
	quiet(t, counter)
	counter.serverPaths()
	before := counter.servers.Load()
	_, err := client.Catalog().Register(&api.CatalogRegistration{
		Node: "host-20", Address: "10.20.0.21", SkipNodeUpdate: true,
		Check: &api.AgentCheck{Node: "host-20", CheckID: "web-alive", Name: "alive", Status: api.HealthCritical, ServiceID: "web"},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "host-20 web left out, critical", func() error {
		if p, err := srvPort(d, "web.svc.internal.", "host-20-web."); err != nil || p != 0 {
			return fmt.Errorf("port %d, want none (%v)", p, err)
		}
		return nil
	})
	quiet(t, counter)
	if n, paths := counter.servers.Load()-before, counter.serverPaths(); n > checkRequests {
		t.Errorf("one check went critical: %d requests reached the servers %v, want at most %d", n, paths, checkRequests)
	}
	if counter.streaming.Load() == 0 || counter.views.Load() == 0 {
		t.Errorf("%d requests read the agent's views, %d answers came from its streaming backend: want both", counter.views.Load(), counter.streaming.Load())
	}
}

// quiet waits until no answer with a change has passed the counter for
// two seconds (the settle pass comes a second after a change).
func quiet(t testing.TB, c *consulCounter) {
	t.Helper()
	last := c.servers.Load() + c.views.Load()
	eventually(t, 2*time.Minute, "no answer from the agent for two seconds", func() error {
		time.Sleep(2 * time.Second)
		now := c.servers.Load() + c.views.Load()
		if now != last {
			last = now
			return fmt.Errorf("%d requests", now)
		}
		return nil
	})
}

// grpcProxy is etcd's gRPC proxy (what `etcd grpc-proxy start` serves,
// built as etcdmain builds it: KV, watch, lease, cluster, maintenance and
// auth proxies) in front of an etcd, on a fixed address so that it can be
// stopped and started again.
type grpcProxy struct {
	t        testing.TB
	addr     string
	endpoint string
	cli      *clientv3.Client
	srv      *grpc.Server
	done     chan struct{}
}

// startGRPCProxy starts a gRPC proxy to the etcd at endpoint and stops it
// when the test ends.
func startGRPCProxy(t testing.TB, endpoint string) *grpcProxy {
	t.Helper()
	p := &grpcProxy{t: t, addr: fmt.Sprintf("127.0.0.1:%d", registries.FreePort(t)), endpoint: endpoint}
	p.start()
	t.Cleanup(func() {
		if p.srv != nil {
			p.stop()
		}
	})
	return p
}

func (p *grpcProxy) start() {
	p.t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{p.endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		p.t.Fatal(err)
	}
	lg := zap.NewNop()
	kvp, _ := grpcproxy.NewKvProxy(cli)
	watchp, _ := grpcproxy.NewWatchProxy(cli.Ctx(), lg, cli)
	clusterp, _ := grpcproxy.NewClusterProxy(lg, cli, "http://"+p.addr, "")
	leasep, _ := grpcproxy.NewLeaseProxy(cli.Ctx(), cli)
	srv := grpc.NewServer(grpc.MaxConcurrentStreams(math.MaxUint32))
	pb.RegisterKVServer(srv, kvp)
	pb.RegisterWatchServer(srv, watchp)
	pb.RegisterClusterServer(srv, clusterp)
	pb.RegisterLeaseServer(srv, leasep)
	pb.RegisterMaintenanceServer(srv, grpcproxy.NewMaintenanceProxy(cli))
	pb.RegisterAuthServer(srv, grpcproxy.NewAuthProxy(cli))
	var l net.Listener
	eventually(p.t, 30*time.Second, "the proxy's address free again", func() error {
		l, err = net.Listen("tcp", p.addr)
		return err
	})
	p.cli, p.srv, p.done = cli, srv, make(chan struct{})
	go func() { defer close(p.done); srv.Serve(l) }()
}

// stop stops the proxy: its clients lose their connections.
func (p *grpcProxy) stop() {
	p.srv.Stop()
	<-p.done
	p.cli.Close()
	p.srv = nil
}

// gaugeValue returns the value of the gauge name in the default registry,
// where the embedded etcd and the proxy of this process register theirs.
func gaugeValue(t testing.TB, name string) float64 {
	t.Helper()
	families, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name {
			sum := 0.0
			for _, m := range f.GetMetric() {
				sum += m.GetGauge().GetValue()
			}
			return sum
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// TestFleetEtcdGRPCProxy runs three discodns behind etcd's gRPC proxy: etcd
// holds one watch for the three (the proxy coalesces identical watches),
// and each converges exactly through a restart of the proxy, during which
// etcd changed.
func TestFleetEtcdGRPCProxy(t *testing.T) {
	const fleet = 3
	e := startEtcd(t)
	e.put("/services/web/10.0.0.1:80", "")
	e.put("/services/web/10.0.0.2:80", "")
	e.put("/services/db/10.0.1.1:5432", "")
	proxy := startGRPCProxy(t, e.endpoint())
	var ds []*discodns
	var watchers []float64 // watchers on etcd with 1, then fleet discodns
	for i := range fleet {
		d := startDiscodns(t, etcdConfig(proxy.addr))
		d.waitInstances("web.svc.internal.", 2)
		d.waitInstances("db.svc.internal.", 1)
		ds = append(ds, d)
		if i == 0 || i == fleet-1 {
			watchers = append(watchers, gaugeValue(t, "etcd_debugging_mvcc_watcher_total"))
		}
	}
	e.put("/services/web/10.0.0.3:80", "")
	for _, d := range ds {
		d.waitInstances("web.svc.internal.", 3)
	}
	coalesced := gaugeValue(t, "etcd_grpc_proxy_watchers_coalescing_total")
	// etcdConfig has two sources, each a watch: the proxy coalesces each
	// of the later discodns' two into the first one's.
	t.Logf("watchers on etcd: %v with 1 discodns behind the proxy, %v with %d; %v watches coalesced by the proxy",
		watchers[0], watchers[1], fleet, coalesced)
	// The proxy holds one watch per distinct range (and one of its own
	// that tells it etcd lost its leader): more discodns, no more watches.
	if watchers[1] != watchers[0] || coalesced != 2*(fleet-1) {
		t.Errorf("%d discodns behind the proxy: %v watchers on etcd (%v with one), %v coalesced: want as many as with one, and %d coalesced",
			fleet, watchers[1], watchers[0], coalesced, 2*(fleet-1))
	}

	proxy.stop()
	for _, d := range ds {
		eventually(t, 30*time.Second, "discodns stale while the proxy is down", func() error {
			if v := d.gauge(`discodns_source_state{source="etcd",state="stale"}`); v != 1 {
				return fmt.Errorf("etcd source stale %v", v)
			}
			return nil
		})
	}
	// Meanwhile: an instance goes, one comes, a service goes.
	e.del("/services/web/10.0.0.1:80")
	e.put("/services/web/10.0.0.4:80", "")
	e.del("/services/db/10.0.1.1:5432")
	for _, d := range ds {
		if got, err := d.services(); err != nil || len(got["web.svc.internal."]) != 3 {
			t.Fatalf("while the proxy is down: %v %v, want the last 3 instances of web served", got, err)
		}
	}
	proxy.start()
	for i, d := range ds {
		eventually(t, 60*time.Second, fmt.Sprintf("discodns %d converged after the proxy restart", i), func() error {
			got, err := d.services()
			if err != nil {
				return err
			}
			web := slices.Sorted(slices.Values(got["web.svc.internal."]))
			if want := []string{"10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80"}; !slices.Equal(web, want) || len(got["db.svc.internal."]) != 0 {
				return fmt.Errorf("web %v db %v, want web %v and no db", web, got["db.svc.internal."], want)
			}
			return nil
		})
	}
	// And follows changes again.
	e.put("/services/db/10.0.1.2:5432", "")
	for _, d := range ds {
		d.waitInstances("db.svc.internal.", 1)
	}
}

// TestFleetConsulUnwatchedChange runs discodns with no service watched
// (max_connections = 3) on 300 services of 3 instances on 3 nodes, and
// registers then deregisters one instance: the source must find the one
// service that changed, not read all 300 from the agent's views (twice,
// with the settle pass) for each change, which made a new instance wait
// for a rate-limited sweep (p50 5.2 s with 2,000 services). With more
// services than nodes a node scan finds it: 1 + nodes requests to the
// servers, and a read of the changed service's view and its settle.
func TestFleetConsulUnwatchedChange(t *testing.T) {
	need(t, "dig")
	const services, perService = 300, 3
	svc7 := []string{"10.9.0.8", "10.10.0.8", "10.11.0.8"}
	agent := registries.StartConsul(t)
	client := consulClient(t, agent)
	registerMany(t, client, services, perService)
	nodes, _, err := client.Catalog().Nodes(nil)
	if err != nil {
		t.Fatal(err)
	}
	counter := startConsulCounter(t, agent.Addr())
	d := startDiscodns(t, consulConfig(counter.addr(), "max_connections = 3"))
	waitAnswers(t, d, "A", "svc-299.svc.internal.", "10.9.1.50", "10.10.1.50", "10.11.1.50")

	for i, step := range []struct {
		what string
		want []string
		do   func() error
	}{
		{"registered", append(slices.Clone(svc7), "10.99.0.1"), func() error {
			_, err := client.Catalog().Register(&api.CatalogRegistration{
				Node: "node-0", Address: "10.8.0.1",
				Service: &api.AgentService{ID: "extra", Service: "svc-7", Address: "10.99.0.1", Port: 9999},
			}, nil)
			return err
		}},
		{"deregistered", svc7, func() error {
			_, err := client.Catalog().Deregister(&api.CatalogDeregistration{Node: "node-0", ServiceID: "extra"}, nil)
			return err
		}},
	} {
		views, servers, paths := counter.cost(t, func() {
			if err := step.do(); err != nil {
				t.Fatal(err)
			}
			waitAnswers(t, d, "A", "svc-7.svc.internal.", step.want...)
		})
		t.Logf("change %d (%s): %d view reads, %d requests to the servers %v", i+1, step.what, views, servers, paths)
		// The changed service and its settle pass; the service list's
		// blocking query, the node scan, perhaps the checks' query.
		if views > 4 {
			t.Errorf("one instance %s among %d unwatched services: %d reads of the agent's views, want at most 4", step.what, services, views)
		}
		if limit := int64(len(nodes)) + 4; servers > limit {
			t.Errorf("one instance %s on %d nodes: %d requests to the servers %v, want at most %d", step.what, len(nodes), servers, paths, limit)
		}
	}
	if v := d.gauge(`discodns_watcher_consul_catalog_changes_total{lookup="node_scan",source="consul"}`); v < 2 {
		t.Errorf("discodns_watcher_consul_catalog_changes_total{lookup=\"node_scan\"} = %v, want at least 2", v)
	}
}

// TestFleetConsulDefaultWatchesAll runs discodns with the default
// max_connections on 60 services (and Consul's own): every one is watched,
// so that a registration costs the servers the service list's blocking
// query and no node scan nor sweep of the views, however many nodes. With
// the old default (8) 56 of them were unwatched.
func TestFleetConsulDefaultWatchesAll(t *testing.T) {
	need(t, "dig")
	const services = 60
	agent := registries.StartConsul(t)
	client := consulClient(t, agent)
	registerMany(t, client, services, 1)
	counter := startConsulCounter(t, agent.Addr())
	d := startDiscodns(t, consulConfig(counter.addr(), ""))
	waitAnswers(t, d, "A", "svc-59.svc.internal.", "10.9.0.60")
	checkFollowed(t, "", d, services+1, 0)

	views, servers, paths := counter.cost(t, func() {
		registerExtra(t, client, "svc-42")
		waitAnswers(t, d, "A", "svc-42.svc.internal.", "10.9.0.43", "10.99.0.1")
	})
	t.Logf("one registration: %d view reads, %d requests to the servers %v", views, servers, paths)
	// The service list's blocking query, and the answer of svc-42's watch.
	if servers > 2 || views > 1 {
		t.Errorf("one registration with every service watched: %d requests to the servers %v and %d answers from the views, want at most 2 and 1 (the watch's)", servers, paths, views)
	}
	// The answer may come from svc-42's watch before the service list's
	// blocking query, which counts the catalog change, returns.
	eventually(t, 10*time.Second, "the catalog change counted, every service watched", func() error {
		if v := d.gauge(`discodns_watcher_consul_catalog_changes_total{lookup="none",source="consul"}`); v < 1 {
			return fmt.Errorf(`discodns_watcher_consul_catalog_changes_total{lookup="none"} = %v, want at least 1`, v)
		}
		return nil
	})
}

// TestFleetConsulHTTP2WatchesAll reads Consul through the agent's HTTPS
// API, where it speaks HTTP/2: blocking queries share connections, so
// with max_connections = 8 every one of 150 services is watched (over
// HTTP/1.1 the same bound watches 5, each on a connection of its own), a
// change is answered from its watch, and the connections stay within the
// bound.
func TestFleetConsulHTTP2WatchesAll(t *testing.T) {
	need(t, "dig")
	const services = 150
	agent := registries.StartConsulTLS(t)
	client := consulClient(t, agent)
	registerMany(t, client, services, 1)
	overTLS := startDiscodns(t, consulConfig("https://"+agent.HTTPSAddr(), fmt.Sprintf("ca_file = %q\nmax_connections = 8", agent.CAFile())))
	plain := startDiscodns(t, consulConfig(agent.Addr(), "max_connections = 8"))
	last := fmt.Sprintf("svc-%d.svc.internal.", services-1)
	waitAnswers(t, overTLS, "A", last, fmt.Sprintf("10.9.0.%d", services))
	waitAnswers(t, plain, "A", last, fmt.Sprintf("10.9.0.%d", services))
	checkFollowed(t, "https (HTTP/2): ", overTLS, services+1, 0) // and the agent's own "consul" service
	checkFollowed(t, "http (HTTP/1.1): ", plain, 5, services+1-5)

	registerExtra(t, client, "svc-142")
	waitAnswers(t, overTLS, "A", "svc-142.svc.internal.", "10.9.0.143", "10.99.0.1")
	// The answer comes from svc-142's own watch; the service list's
	// blocking query, which counts the catalog change, may return after it.
	eventually(t, 10*time.Second, "https: the catalog change counted, every service watched", func() error {
		if v := overTLS.gauge(`discodns_watcher_consul_catalog_changes_total{lookup="none",source="consul"}`); v < 1 {
			return fmt.Errorf(`discodns_watcher_consul_catalog_changes_total{lookup="none"} = %v, want at least 1`, v)
		}
		return nil
	})
	conns := overTLS.gauge(`discodns_watcher_consul_connections{source="consul"}`)
	t.Logf("https: %v connections to the agent carry %d watches", conns, services+1)
	if conns < 1 || conns > 8 {
		t.Errorf("https: discodns_watcher_consul_connections = %v, want 1 to 8", conns)
	}
}

// registerExtra registers one more instance of service, "extra" at
// 10.99.0.1:9999 on node-0 (registerMany's first node).
func registerExtra(t *testing.T, client *api.Client, service string) {
	t.Helper()
	_, err := client.Catalog().Register(&api.CatalogRegistration{
		Node: "node-0", Address: "10.8.0.1",
		Service: &api.AgentService{ID: "extra", Service: service, Address: "10.99.0.1", Port: 9999},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
}

// checkFollowed checks how many services d's Consul source watches and
// leaves unwatched; prefix starts each error.
func checkFollowed(t *testing.T, prefix string, d *discodns, watched, unwatched float64) {
	t.Helper()
	for followed, want := range map[string]float64{"watched": watched, "unwatched": unwatched} {
		metric := fmt.Sprintf(`discodns_watcher_consul_services{followed=%q,source="consul"}`, followed)
		if v := d.gauge(metric); v != want {
			t.Errorf("%s%s = %v, want %v", prefix, metric, v, want)
		}
	}
}
