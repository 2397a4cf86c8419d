package test

import (
	"bufio"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/discodns/discodns/test/registries"
)

// BenchmarkFleet runs a fleet of discodns processes (10, then 50) against
// one registry of each kind, changes one registration per iteration, waits
// until every discodns serves it, and reports what reached the registry
// per change, counted on the registry's side:
//
//   - consul (a dev agent with 100 or 500 nodes registered through the
//     catalog API, behind a counting proxy): server-requests/change, the
//     requests the agent turns into RPCs to the servers; view-reads/change,
//     those it answers from its streaming views; bytes/change, what the
//     agent answered; conns/discodns. consul-unwatched has max_connections
//     = 3: no service watched, each one read from the agent's views when
//     the service list changes (the fallback past the watch bound).
//   - etcd (embedded), directly and behind its gRPC proxy: events/change,
//     the watch events etcd sent (etcd_debugging_mvcc_events_total);
//     bytes/change (etcd_network_client_grpc_sent_bytes_total);
//     watches/discodns (etcd_debugging_mvcc_watcher_total); conns/discodns.
//   - zookeeper: packets/change, the packets the server sent (mntr
//     zk_packets_sent); watches/discodns (zk_watch_count); conns/discodns.
//
// In a real fleet each discodns talks to the Consul agent of its own host;
// here they share one, which is also the server. Run:
//
//	go test -run XXX -bench BenchmarkFleet -benchtime 3x -timeout 60m ./test/
func BenchmarkFleet(b *testing.B) {
	for _, fleet := range []int{10, 50} {
		for _, nodes := range []int{100, 500} {
			b.Run(fmt.Sprintf("registry=consul/nodes=%d/discodns=%d", nodes, fleet), func(b *testing.B) {
				benchFleetConsul(b, fleet, nodes, 8)
			})
		}
		// max_connections = 3: no service watched, every one fetched from
		// the agent's views when the service list changes.
		b.Run(fmt.Sprintf("registry=consul-unwatched/nodes=100/discodns=%d", fleet), func(b *testing.B) {
			benchFleetConsul(b, fleet, 100, 3)
		})
		b.Run(fmt.Sprintf("registry=etcd/discodns=%d", fleet), func(b *testing.B) { benchFleetEtcd(b, fleet, false) })
		b.Run(fmt.Sprintf("registry=etcd-grpc-proxy/discodns=%d", fleet), func(b *testing.B) { benchFleetEtcd(b, fleet, true) })
		b.Run(fmt.Sprintf("registry=zookeeper/discodns=%d", fleet), func(b *testing.B) { benchFleetZooKeeper(b, fleet) })
	}
}

// fleetConfig is the configuration of one small discodns of the fleet:
// one source, warnings only.
func fleetConfig(source string) string {
	return `[log]
level = "warn"
[http]
listen = "{{HTTP}}"
[dns]
zone = "svc.internal."
listen = ["{{DNS}}"]
[[source]]
name = "fleet"
` + source
}

// startFleet launches n discodns on config and waits until all are ready.
func startFleet(b *testing.B, n int, config string) []*discodns {
	b.Helper()
	ds := make([]*discodns, n)
	for i := range ds {
		ds[i] = launchDiscodns(b, config)
	}
	// 50 start at once on a few cores: longer than waitReady allows one.
	for _, d := range ds {
		eventually(b, 5*time.Minute, "discodns ready", func() error {
			if code, body, err := d.get("/readyz"); err != nil || code != 200 {
				return fmt.Errorf("/readyz %d %s %v", code, body, err)
			}
			return nil
		})
	}
	return ds
}

// fleetCounters are the registry-side counters a fleet benchmark reads
// before and after each change.
type fleetCounters func() map[string]float64

// runFleet changes one registration per iteration (change(i) returns the
// check that a discodns serves it), waits until every discodns of ds
// serves it and then until quiet returns, and reports the growth of each
// of counters per change.
func runFleet(b *testing.B, ds []*discodns, counters fleetCounters, quiet func(), change func(i int) func(*discodns) error) {
	b.Helper()
	total := map[string]float64{}
	b.ResetTimer()
	for i := range b.N {
		quiet()
		before := counters()
		check := change(i)
		for j, d := range ds {
			eventually(b, 2*time.Minute, fmt.Sprintf("discodns %d serves change %d", j, i), func() error { return check(d) })
		}
		quiet()
		for k, v := range counters() {
			total[k] += v - before[k]
		}
	}
	b.StopTimer()
	for k, v := range total {
		b.ReportMetric(v/float64(b.N), k+"/change")
		b.ReportMetric(v/float64(b.N)/float64(len(ds)), k+"/change/discodns")
	}
}

// fleetConns reports the established connections from the fleet to port,
// per discodns.
func fleetConns(b *testing.B, ds []*discodns, port int) {
	b.Helper()
	n := 0
	for _, d := range ds {
		c, err := connections(d.cmd.Process.Pid, port)
		if err != nil {
			b.Fatal(err)
		}
		n += c
	}
	b.ReportMetric(float64(n)/float64(len(ds)), "conns/discodns")
}

func portOf(b *testing.B, addr string) int {
	b.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		b.Fatal(err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		b.Fatal(err)
	}
	return port
}

func benchFleetConsul(b *testing.B, fleet, nodes, maxConns int) {
	agent := registries.StartConsul(b)
	client := consulClient(b, agent)
	registerNodes(b, client, nodes)
	counter := startConsulCounter(b, agent.Addr())
	ds := startFleet(b, fleet, fleetConfig(fmt.Sprintf("type = \"consul\"\naddress = %q\nmax_connections = %d\n", counter.addr(), maxConns)))
	for _, d := range ds {
		eventually(b, 2*time.Minute, "web on every node", func() error {
			svcs, err := d.services()
			if err != nil || len(svcs["web.svc.internal."]) != nodes {
				return fmt.Errorf("web has %d instances, want %d (%v)", len(svcs["web.svc.internal."]), nodes, err)
			}
			return nil
		})
	}
	counters := func() map[string]float64 {
		return map[string]float64{
			"server-requests": float64(counter.servers.Load()),
			"view-reads":      float64(counter.views.Load()),
			"bytes":           float64(counter.bytes.Load()),
		}
	}
	runFleet(b, ds, counters, func() { quiet(b, counter) }, func(i int) func(*discodns) error {
		host, port := fmt.Sprintf("host-%d", i%nodes), 10000+i
		_, err := client.Catalog().Register(&api.CatalogRegistration{
			Node: host, Address: fmt.Sprintf("10.20.%d.%d", (i%nodes)/250, (i%nodes)%250+1),
			Service: &api.AgentService{ID: "web", Service: "web", Port: port},
		}, nil)
		if err != nil {
			b.Fatal(err)
		}
		return func(d *discodns) error {
			if p, err := srvPort(d, "web.svc.internal.", host+"-web."); err != nil || int(p) != port {
				return fmt.Errorf("%s port %d, want %d (%v)", host, p, port, err)
			}
			return nil
		}
	})
	// The discodns connect to the counting proxy.
	fleetConns(b, ds, portOf(b, counter.addr()))
}

// defaultCounter returns the sum of the samples of counter or gauge name
// in the default registry, where the embedded etcd of this process
// registers its metrics.
func defaultCounter(b *testing.B, name string) float64 {
	b.Helper()
	families, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		b.Fatal(err)
	}
	sum := 0.0
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}

// servesWeb returns the check that a discodns serves want instances of
// web.
func servesWeb(want int) func(*discodns) error {
	return func(d *discodns) error {
		svcs, err := d.services()
		if err != nil || len(svcs["web.svc.internal."]) != want {
			return fmt.Errorf("web has %d instances, want %d (%v)", len(svcs["web.svc.internal."]), want, err)
		}
		return nil
	}
}

// noWait is the quiet of registries that push changes: nothing to wait
// for once every discodns serves the change.
func noWait() {}

func benchFleetEtcd(b *testing.B, fleet int, proxied bool) {
	e := startEtcd(b)
	const base = 10
	for i := range base {
		e.put(fmt.Sprintf("/services/web/10.30.0.%d:80", i+1), "")
	}
	endpoint := e.endpoint()
	if proxied {
		endpoint = startGRPCProxy(b, e.endpoint()).addr
	}
	ds := startFleet(b, fleet, fleetConfig(fmt.Sprintf("type = \"etcd\"\nendpoints = [%q]\nprefix = \"/services\"\n", endpoint)))
	for _, d := range ds {
		eventually(b, time.Minute, "web listed", func() error { return servesWeb(base)(d) })
	}
	counters := func() map[string]float64 {
		return map[string]float64{
			"events": defaultCounter(b, "etcd_debugging_mvcc_events_total"),
			"bytes":  defaultCounter(b, "etcd_network_client_grpc_sent_bytes_total"),
		}
	}
	runFleet(b, ds, counters, noWait, func(i int) func(*discodns) error {
		e.put(fmt.Sprintf("/services/web/10.31.%d.%d:80", i/250, i%250+1), "")
		return servesWeb(base + i + 1)
	})
	b.ReportMetric(defaultCounter(b, "etcd_debugging_mvcc_watcher_total")/float64(fleet), "watches/discodns")
	fleetConns(b, ds, portOf(b, endpoint))
}

// mntr returns ZooKeeper's mntr figures by name.
func mntr(b *testing.B, addr string) map[string]float64 {
	b.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte("mntr")); err != nil {
		b.Fatal(err)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(conn)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "\t")
		if f, err := strconv.ParseFloat(v, 64); ok && err == nil {
			out[k] = f
		}
	}
	return out
}

func benchFleetZooKeeper(b *testing.B, fleet int) {
	server := registries.StartZooKeeper(b)
	conn := registries.ZKClient(b, server.Addr())
	const base = 10
	for i := range base {
		registries.ZKPut(b, conn, fmt.Sprintf("/services/web/10.30.0.%d:80", i+1), "", 0)
	}
	ds := startFleet(b, fleet, fleetConfig(fmt.Sprintf("type = \"zookeeper\"\nservers = [%q]\nprefix = \"/services\"\n", server.Addr())))
	for _, d := range ds {
		eventually(b, time.Minute, "web listed", func() error { return servesWeb(base)(d) })
	}
	counters := func() map[string]float64 {
		return map[string]float64{"packets": mntr(b, server.Addr())["zk_packets_sent"]}
	}
	runFleet(b, ds, counters, noWait, func(i int) func(*discodns) error {
		registries.ZKPut(b, conn, fmt.Sprintf("/services/web/10.31.%d.%d:80", i/250, i%250+1), "", 0)
		return servesWeb(base + i + 1)
	})
	b.ReportMetric(mntr(b, server.Addr())["zk_watch_count"]/float64(fleet), "watches/discodns")
	fleetConns(b, ds, portOf(b, server.Addr()))
}
